/**
 * The inbound side: blackpony listens where port 25 would be and relays every SMTP session, in
 * plaintext or inside an XPONY tunnel, to Postfix's loopback listener (deploy/postfix/), which
 * stays the only queue and policy engine.
 *
 * It advertises only what it relays faithfully (postfix-capabilities.ts): Postfix's SIZE (grown
 * to the sealed form's with inbound.sealed_relay, as a backup MX passes that on), and
 * 8BITMIME, SMTPUTF8 and DSN if Postfix offers them; PIPELINING, ENHANCEDSTATUSCODES and XPONY;
 * STARTTLS for legacy clients when a certificate is configured. Oversized messages are left to
 * Postfix to refuse, with its own reply.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { Keys } from '../crypto/keyfile.js';
import type { ClientNameResolver } from '../dns.js';
import { DEFAULT_CLIENT_LIMITS, type ClientAdmission, type ClientLimits, createXponyServer, xponyOf, type XponyServer } from '../xpony/index.js';
import { endpointAddress, formatReply, GreetedSessions, SmtpClient, type SmtpEndpoint, type SmtpReply, replyVerbatim, SmtpReplyError } from '../smtp/index.js';
import type { AcceptedMessages } from './accepted-messages.js';
import { AgeIdentities } from './age-identities.js';
import { parseRecipient } from '../crypto/age/index.js';
import { advertise, capabilitiesOf, offeredSize, type PostfixCapabilities } from './postfix-capabilities.js';
import { openWithProxyLine } from './proxy-protocol.js';
import type { TraceVia } from './trace-header.js';
import { postfixFailureOf, RelaySession, type ClientIdentity, type PostfixFailure } from './relay-session.js';

/** Waiting for each reply from Postfix, unless `postfix.timeoutMs` says otherwise (inbound.timeouts.postfix_seconds). */
export const DEFAULT_POSTFIX_TIMEOUT_MS = 120_000;

export interface InboundServerOptions {
  keys: Keys;
  /** This host's name: greeting, EHLO to Postfix, Noise payload and trace header. */
  hostName: string;
  /**
   * Where Postfix's listener for blackpony is, loopback TCP (connected to from `localAddress`, when
   * given) or a unix socket (deploy/postfix/master.cf).
   */
  postfix: ({ host: string; port: number; localAddress?: string } | { path: string }) & { timeoutMs?: number };
  /** How that listener learns the real client: XCLIENT (default) or a PROXY line (`smtpd_upstream_proxy_protocol = haproxy`). */
  clientIdentity?: ClientIdentity;
  /** With XCLIENT: looks up each client's host name for Postfix (without it, every client is "unknown"). */
  clientNames?: ClientNameResolver;
  /** A certificate for STARTTLS (PEM); without one STARTTLS is not offered. */
  tls?: { key: Buffer | string; cert: Buffer | string };
  /** smtp-server's idle timeout for client sessions (ms). */
  socketTimeoutMs?: number;
  maxClients?: number;
  /**
   * Messages accepted through tunnels with an XPONY-ID (accepted-messages.ts): with it, XPONY-ID
   * is offered inside tunnels and a peer's retry of an accepted message is answered without a copy.
   */
  acceptedMessages?: AcceptedMessages;
  /** Inside tunnels, offer XPONY-BINARY (default true); false acts as a peer from before it (interop tests). */
  offerBinary?: boolean;
  /** The largest BDAT chunk taken inside tunnels (default MAX_BDAT_CHUNK); BDAT_CHUNK_WITHOUT_SIZE acts as a peer from before chunk sizes (interop tests). */
  maxBdatChunk?: number;
  /** Inside tunnels, offer XPONY-RAW-PAYLOAD beside XPONY-BINARY (default true); false acts as a peer from before it (interop tests). */
  offerRawPayload?: boolean;
  /**
   * Tell senders in each handshake that mail sealed to this host may come through the domain's
   * other MX hosts (the record's `relay=sealed`, said under this host's key for pinned senders).
   */
  announceSealedRelay?: boolean;
  /** Per client address (default DEFAULT_CLIENT_LIMITS); the server emits 'client-limit' when one is reached. */
  clientLimits?: ClientLimits;
  /** Counts shared with the other processes serving this listener (default: this server's own). */
  clientAdmission?: ClientAdmission;
  /** smtp-server's logger option (default: none). */
  logger?: SMTPServerOptions['logger'];
  /** Client sessions opened and closed (metrics). */
  onSession?: (event: 'open' | 'close') => void;
  /** Each message's outcome: Postfix accepted it (2xx), refused it (5xx), or it is to be retried (4xx). */
  onMessage?: (event: InboundMessageEvent) => void;
  /** Each time Postfix cannot be reached or used (the client got a 451 that does not say why), and when the first look at it at listen() fails. */
  onPostfixFailure?: (event: PostfixFailureEvent) => void;
}

export interface PostfixFailureEvent extends PostfixFailure {
  /** Postfix's listener, `host:port`. */
  postfix: string;
}

export interface InboundMessageEvent {
  via: TraceVia;
  sealed: boolean;
  outcome: 'accepted' | 'rejected' | 'deferred';
  /** A retry of a message Postfix had accepted already, answered from acceptedMessages (Postfix got nothing). */
  retry: boolean;
  /** The client's address and HELO name, and its key's fingerprint inside a tunnel. */
  client: string;
  helo: string | undefined;
  peerFingerprint: string | undefined;
  /** The reply the client got (Postfix's, with its queue id, or ours), first line. */
  reply: string;
  /** The message's octets as the client sent them (sealed, if it was). */
  bytes: number;
  seconds: number;
}

export interface InboundServer {
  server: XponyServer;
  /**
   * Learns what Postfix offers (best effort: a Postfix that is down is asked again per session),
   * then listens: on `port` and `host`, or on an inherited listening socket (systemd's `{ fd }`).
   */
  listen(port: number, host?: string): Promise<AddressInfo>;
  listen(socket: { fd: number }): Promise<AddressInfo>;
  close(): Promise<void>;
  /** New sessions use these keys; sealed messages to the age identities of the last few key files still open (age-identities.ts). */
  setKeys(keys: Keys): void;
  /** New sessions use these settings (a reload); sessions in progress keep theirs. */
  reconfigure(settings: InboundSettings): void;
}

/** What a reload may change; the listening socket and the host name stay. */
export type InboundSettings = Pick<
  InboundServerOptions,
  'keys' | 'postfix' | 'clientIdentity' | 'clientNames' | 'tls' | 'socketTimeoutMs' | 'maxClients' | 'clientLimits' | 'announceSealedRelay'
>;

function endpointOf({ timeoutMs, ...where }: InboundServerOptions['postfix']): SmtpEndpoint {
  return { ...where, label: 'postfix', timeoutMs: timeoutMs ?? DEFAULT_POSTFIX_TIMEOUT_MS };
}

/**
 * smtp-server's options for STARTTLS: offered with a certificate; without one, refused outright
 * (hidden alone, smtp-server would still run it with its built-in, publicly known certificate).
 */
function tlsOptions(tls: InboundServerOptions['tls']): Partial<SMTPServerOptions> {
  return tls === undefined
    ? { hideSTARTTLS: true, disabledCommands: ['AUTH', 'STARTTLS'] }
    : { hideSTARTTLS: false, disabledCommands: ['AUTH'], key: tls.key, cert: tls.cert };
}

export function createInboundServer(options: InboundServerOptions): InboundServer {
  // Replaced, not changed, by a reload: a session keeps what it started with.
  let endpoint = endpointOf(options.postfix);
  let clientIdentity = options.clientIdentity ?? 'xclient';
  let clientNames = options.clientNames;
  // Sealed messages are opened with the host's own age keys, and a bounded number of earlier ones.
  const ageIdentities = new AgeIdentities(options.keys);
  const sessions = new Map<string, RelaySession>();
  const greeted = new GreetedSessions(options.onSession);
  /** The messages of sessions that closed while they were relayed. */
  const settling = new Set<Promise<void>>();
  const acceptedMessages = options.acceptedMessages;
  let postfixCapabilities: PostfixCapabilities | undefined;
  // What a sealed message to this host may be sealed to, at its largest: the hybrid recipient.
  let sealedTo = [parseRecipient(options.keys.ageHybridRecipient)];
  const readvertise = (): void => {
    if (postfixCapabilities === undefined) return;
    const relayed = server.xponyOptions.announceSealedRelay === true;
    advertise(server.options, postfixCapabilities, offeredSize(postfixCapabilities.size, relayed ? sealedTo : undefined));
  };
  const learn = (ehloLines: readonly string[]): void => {
    postfixCapabilities = capabilitiesOf(ehloLines);
    readvertise();
  };
  const reportTo = (postfix: SmtpEndpoint) => (failure: PostfixFailure) => options.onPostfixFailure?.({ ...failure, postfix: endpointAddress(postfix) });
  const relayOf = (session: SMTPServerSession): RelaySession => {
    let relay = sessions.get(session.id);
    if (relay === undefined) {
      const onPostfixFailure = reportTo(endpoint);
      relay = new RelaySession(
        {
          postfix: endpoint,
          clientIdentity,
          clientNames,
          hostName: options.hostName,
          onPostfixEhlo: learn,
          postfixSize: () => postfixCapabilities?.size ?? 0,
          ageIdentities: ageIdentities.list,
          onPostfixFailure,
          ...(acceptedMessages === undefined ? {} : { acceptedMessages }),
        },
        session,
      );
      sessions.set(session.id, relay);
    }
    return relay;
  };
  const server: XponyServer = createXponyServer({
    keys: options.keys,
    hostName: options.hostName,
    offerMessageIds: acceptedMessages !== undefined,
    ...(options.offerBinary === undefined ? {} : { offerBinary: options.offerBinary }),
    ...(options.maxBdatChunk === undefined ? {} : { maxBdatChunk: options.maxBdatChunk }),
    ...(options.offerRawPayload === undefined ? {} : { offerRawPayload: options.offerRawPayload }),
    ...(options.announceSealedRelay === undefined ? {} : { announceSealedRelay: options.announceSealedRelay }),
    disableReverseLookup: true,
    authOptional: true,
    ...tlsOptions(options.tls),
    hideENHANCEDSTATUSCODES: false,
    hidePIPELINING: false,
    logger: options.logger ?? false,
    ...(options.socketTimeoutMs === undefined ? {} : { socketTimeout: options.socketTimeoutMs }),
    ...(options.maxClients === undefined ? {} : { maxClients: options.maxClients }),
    ...(options.clientLimits === undefined ? {} : { clientLimits: options.clientLimits }),
    ...(options.clientAdmission === undefined ? {} : { clientAdmission: options.clientAdmission }),
    onMailFrom(address, session, callback) {
      answer(session, relayOf(session).mailFrom(address), callback);
    },
    onRcptTo(address, session, callback) {
      answer(session, relayOf(session).rcptTo(address), callback);
    },
    onConnect(session, callback) {
      greeted.opened(session.id);
      callback();
    },
    onData(stream: Readable, session, callback) {
      const relay = relayOf(session);
      const started = performance.now();
      const relayed = relay.data(stream);
      const report = (code: number, line: string | undefined): void =>
        options.onMessage?.({
          via: relay.via(),
          sealed: relay.lastSealed,
          retry: relay.lastRetry,
          outcome: code < 300 ? 'accepted' : code < 500 ? 'deferred' : 'rejected',
          client: session.remoteAddress,
          helo: session.hostNameAppearsAs,
          peerFingerprint: xponyOf(session)?.remoteFingerprint,
          reply: `${code} ${line ?? ''}`.trimEnd(),
          bytes: (stream as Readable & { byteLength?: number }).byteLength ?? 0,
          seconds: (performance.now() - started) / 1000,
        });
      relayed.then(
        (reply) => report(reply.code, reply.lines[0]),
        (err: { responseCode?: number; lines?: readonly string[]; message?: string }) => report(err.responseCode ?? 451, err.lines?.[0] ?? err.message),
      );
      answer(session, relayed, callback);
    },
    onClose(session) {
      const relay = sessions.get(session.id);
      if (relay !== undefined) {
        relay.close();
        const done = relay.settled();
        settling.add(done);
        void done.then(() => settling.delete(done));
      }
      sessions.delete(session.id);
      greeted.closed(session.id);
    },
  });
  // Client sockets that reset or time out: routine for a port-25 listener; smtp-server logs them.
  server.on('error', () => undefined);
  return {
    server,
    async listen(where: number | { fd: number }, host: string = '127.0.0.1') {
      const ehloLines = await askEhlo(endpoint, options.hostName, clientIdentity, reportTo(endpoint));
      if (ehloLines !== undefined) learn(ehloLines);
      if (typeof where === 'number') server.listen(where, host);
      else server.server.listen(where);
      await once(server.server, 'listening');
      return server.server.address() as AddressInfo;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // A client gone while Postfix judged its message: the verdict and its remembering still come,
      // else Postfix queues a message whose retry is not recognised (a second copy).
      await Promise.all(settling);
      await acceptedMessages?.close();
    },
    setKeys(keys) {
      // The XPONY server reads its keys per handshake; relay sessions share this identity list.
      server.xponyOptions.keys = keys;
      ageIdentities.use(keys);
      sealedTo = [parseRecipient(keys.ageHybridRecipient)];
      readvertise();
    },
    reconfigure(settings) {
      // Read per handshake, like the keys; setKeys() advertises the SIZE that goes with both.
      server.xponyOptions.announceSealedRelay = settings.announceSealedRelay === true;
      this.setKeys(settings.keys);
      endpoint = endpointOf(settings.postfix);
      clientIdentity = settings.clientIdentity ?? 'xclient';
      clientNames = settings.clientNames;
      // smtp-server reads these per connection; updateSecureContext() rebuilds the TLS context.
      const { options: current } = server;
      if (settings.maxClients === undefined) delete current.maxClients;
      else current.maxClients = settings.maxClients;
      // Counts stay: connections and handshakes in progress count against the new limits.
      server.clientLimiter.configure(settings.clientLimits ?? DEFAULT_CLIENT_LIMITS);
      if (settings.socketTimeoutMs === undefined) delete current.socketTimeout;
      else current.socketTimeout = settings.socketTimeoutMs;
      const tls = tlsOptions(settings.tls);
      if (settings.tls === undefined) Object.assign(current, tls);
      else server.updateSecureContext(tls);
    },
  };
}

/** Has smtp-server send the relay's reply (Postfix's own, or the relay's refusal) word for word, every line. */
function answer(session: SMTPServerSession, relayed: Promise<SmtpReply>, callback: (err?: Error | null) => void): void {
  relayed.then(
    (reply) => {
      replyVerbatim(session, reply);
      callback();
    },
    (err: Error) => {
      // Anything but a reply is a fault of ours (a bug): 4xx, never smtp-server's default 5xx.
      const reply = err instanceof SmtpReplyError ? err : new SmtpReplyError(451, '4.3.0 local error in processing; try again later');
      replyVerbatim(session, { code: reply.responseCode, lines: reply.lines });
      callback(reply);
    },
  );
}

/** Postfix's EHLO reply lines; undefined, and the failure reported, when Postfix cannot be asked now. */
async function askEhlo(
  endpoint: SmtpEndpoint,
  hostName: string,
  clientIdentity: ClientIdentity,
  report: (failure: PostfixFailure) => void,
): Promise<string[] | undefined> {
  let postfix: SmtpClient | undefined;
  try {
    postfix = clientIdentity === 'proxy' ? await openWithProxyLine(endpoint) : await SmtpClient.open(endpoint);
    const ehlo = await postfix.command(`EHLO ${hostName}`);
    if (ehlo.code === 250) return ehlo.lines;
    report({ kind: 'refused', reason: `EHLO refused: ${formatReply(ehlo)}` });
    return undefined;
  } catch (error) {
    report(postfixFailureOf(error, postfix === undefined));
    return undefined;
  } finally {
    postfix?.quit();
  }
}
