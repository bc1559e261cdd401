/**
 * The inbound side: blackpony listens where port 25 would be and relays every SMTP session, in
 * plaintext or inside an XPONY tunnel, to Postfix's loopback listener (deploy/postfix/), which
 * stays the only queue and policy engine.
 *
 * It advertises only what it relays faithfully (postfix-capabilities.ts): Postfix's SIZE, and
 * 8BITMIME, SMTPUTF8 and DSN if Postfix offers them; PIPELINING, ENHANCEDSTATUSCODES and XPONY.
 * Oversized messages are left to Postfix to refuse, with its own reply.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { parseIdentity, type Identity } from '../crypto/age/index.js';
import type { Keys } from '../crypto/keyfile.js';
import { createXponyServer, type XponyServer } from '../protocol/server.js';
import { SmtpClient, type SmtpEndpoint } from '../protocol/smtp-client.js';
import { advertise, capabilitiesOf } from './postfix-capabilities.js';
import { RelaySession } from './relay-session.js';

export const DEFAULT_POSTFIX_TIMEOUT_MS = 60_000;

export interface InboundServerOptions {
  keys: Keys;
  /** This host's name: greeting, EHLO to Postfix, Noise payload and trace header. */
  hostName: string;
  /** Where Postfix's XCLIENT-enabled loopback listener is. */
  postfix: { host: string; port: number; timeoutMs?: number };
  /** smtp-server's idle timeout for client sessions (ms). */
  socketTimeoutMs?: number;
  maxClients?: number;
  /** smtp-server's logger option (default: none). */
  logger?: SMTPServerOptions['logger'];
}

export interface InboundServer {
  server: XponyServer;
  /** Learns what Postfix offers (best effort: a Postfix that is down is asked again per session), then listens. */
  listen(port: number, host?: string): Promise<AddressInfo>;
  close(): Promise<void>;
  /** New sessions use these keys; sealed messages to the earlier age identities still open. */
  setKeys(keys: Keys): void;
}

function identitiesOf(keys: Keys): Identity[] {
  return [keys.ageX25519Identity, keys.ageHybridIdentity].map((identity) => parseIdentity(identity));
}

export function createInboundServer(options: InboundServerOptions): InboundServer {
  const endpoint: SmtpEndpoint = {
    host: options.postfix.host,
    port: options.postfix.port,
    label: 'postfix',
    timeoutMs: options.postfix.timeoutMs ?? DEFAULT_POSTFIX_TIMEOUT_MS,
  };
  // Sealed messages are opened with the host's own age keys, parsed once per key file. After a key
  // change the earlier identities stay too: mail sealed to them may still be on its way.
  const ageIdentities = identitiesOf(options.keys);
  const sessions = new Map<string, RelaySession>();
  const learn = (ehloLines: readonly string[]): void => advertise(server.options, capabilitiesOf(ehloLines));
  const relayOf = (session: SMTPServerSession): RelaySession => {
    let relay = sessions.get(session.id);
    if (relay === undefined) {
      relay = new RelaySession({ postfix: endpoint, hostName: options.hostName, onPostfixEhlo: learn, ageIdentities }, session);
      sessions.set(session.id, relay);
    }
    return relay;
  };
  const server: XponyServer = createXponyServer({
    keys: options.keys,
    hostName: options.hostName,
    disableReverseLookup: true,
    authOptional: true,
    disabledCommands: ['AUTH'],
    // Phase 1: no STARTTLS yet.
    hideSTARTTLS: true,
    hideENHANCEDSTATUSCODES: false,
    hidePIPELINING: false,
    logger: options.logger ?? false,
    ...(options.socketTimeoutMs === undefined ? {} : { socketTimeout: options.socketTimeoutMs }),
    ...(options.maxClients === undefined ? {} : { maxClients: options.maxClients }),
    onMailFrom(address, session, callback) {
      relayOf(session).mailFrom(address).then(() => callback(), callback);
    },
    onRcptTo(address, session, callback) {
      relayOf(session).rcptTo(address).then(() => callback(), callback);
    },
    onData(stream: Readable, session, callback) {
      relayOf(session).data(stream).then((text) => callback(null, text), callback);
    },
    onClose(session) {
      sessions.get(session.id)?.close();
      sessions.delete(session.id);
    },
  });
  // Client sockets that reset or time out: routine for a port-25 listener; smtp-server logs them.
  server.on('error', () => undefined);
  return {
    server,
    async listen(port, host = '127.0.0.1') {
      const ehloLines = await askEhlo(endpoint, options.hostName);
      if (ehloLines !== undefined) learn(ehloLines);
      server.listen(port, host);
      await once(server.server, 'listening');
      return server.server.address() as AddressInfo;
    },
    close() {
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
    setKeys(keys) {
      // The XPONY server reads its keys per handshake; relay sessions share this identity list.
      server.xponyOptions.keys = keys;
      ageIdentities.push(...identitiesOf(keys));
    },
  };
}

/** Postfix's EHLO reply lines; undefined when Postfix cannot be asked now. */
async function askEhlo(endpoint: SmtpEndpoint, hostName: string): Promise<string[] | undefined> {
  let postfix: SmtpClient | undefined;
  try {
    postfix = await SmtpClient.open(endpoint);
    const ehlo = await postfix.command(`EHLO ${hostName}`);
    return ehlo.code === 250 ? ehlo.lines : undefined;
  } catch {
    return undefined;
  } finally {
    postfix?.quit();
  }
}
