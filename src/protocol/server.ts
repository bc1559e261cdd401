/**
 * The server side of XPONY (docs/PROTOCOL.md sections 2-5): an smtp-server whose plaintext
 * sessions offer `XPONY 1 2` in EHLO and run the handshake (see server-connection.ts), and which
 * hands each finished tunnel to a fresh SMTP session of its own.
 */
import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { Keys } from '../crypto/keyfile.js';
import type { X25519KeyPair } from '../crypto/primitives.js';
import { ClientLimiter } from './client-limiter.js';
import { DEFAULT_CLIENT_LIMITS, type ClientLimits, type LimitName, type ProtocolVersion } from './limits.js';
import { XponyConnection, type XponyConnectionOptions } from './server-connection.js';

/** What an SMTP session inside a tunnel knows about its peer; on `session.xpony`. */
export interface XponySessionInfo {
  version: string;
  /** The client's Noise static key, proven in the handshake. */
  remoteStaticKey: Uint8Array;
  remoteFingerprint: string;
  /** The host name the client announced in Noise message 3, if any (authenticated, not verified). */
  hostName: string | undefined;
  /** The TCP peer of the tunnel. */
  remoteAddress: string;
  remotePort: number;
}

/** A reply to send word for word, e.g. one relayed from the next hop. */
export interface VerbatimReply {
  code: number;
  /** The text of each line after the code and its separator, enhanced code included. */
  lines: readonly string[];
}

export type XponySession = SMTPServerSession & {
  xpony?: XponySessionInfo;
  verbatimReply?: VerbatimReply;
  /** The message being received is the binary age file, sent with BDAT (XPONY-BINARY). */
  binaryMessage?: boolean;
};

/**
 * Makes the reply to the command being handled `reply`, every line as given, instead of
 * smtp-server's own text. Set it right before calling the handler's callback: it applies to the
 * next reply sent if that has the same code (smtp-server answers any success with 250, so a 2xx
 * replaces a 250) and is dropped by any other.
 */
export function replyVerbatim(session: SMTPServerSession, reply: VerbatimReply): void {
  (session as XponySession).verbatimReply = reply;
}

/** Whether the message of onData is the binary age file (XPONY-BINARY), not a message in DATA's form. */
export function isBinaryMessage(session: SMTPServerSession): boolean {
  return (session as XponySession).binaryMessage === true;
}

/** The tunnel's peer, or undefined for a plaintext session. */
export function xponyOf(session: SMTPServerSession): XponySessionInfo | undefined {
  return (session as XponySession).xpony;
}

/** Emitted on the server as 'xpony-handshake', once per XPONY command. */
export interface XponyHandshakeEvent {
  sessionId: string;
  outcome: 'tunnel' | 'rejected' | 'cancelled' | 'failed' | 'timeout';
  /** From the XPONY command to this outcome. */
  seconds: number;
  /** The plaintext reply sent, if one was. */
  reply?: string;
  /** Why the tunnel failed after the switch point, where no reply can be sent. */
  reason?: string;
  remoteStaticKey?: Uint8Array;
}

/** Emitted on the server as 'client-limit' each time a client runs into a limit (reply sent, or connection closed). */
export interface ClientLimitEvent {
  limit: LimitName;
  remoteAddress: string;
  reply: string;
}

export interface XponyServerOptions extends SMTPServerOptions {
  keys: Keys;
  /** This host's name: announced in Noise message 2, and the greeting name unless `name` is set. */
  hostName: string;
  /** From the XPONY command to the tunnel-open frame (default HANDSHAKE_TIMEOUT_MS). */
  handshakeTimeoutMs?: number;
  /** Per-client limits (default DEFAULT_CLIENT_LIMITS); clientLimiter.configure() changes them. */
  clientLimits?: ClientLimits;
  /** A fixed Noise ephemeral key: for the documented example session (test vectors) only. */
  fixedEphemeral?: X25519KeyPair;
  /** Fixed ML-KEM encapsulation randomness (32 octets) for version 2: for the documented example session only. */
  fixedKemEphemeral?: Uint8Array;
  /** The versions offered in EHLO (default SUPPORTED_VERSIONS); ['1'] acts as an older peer. */
  versions?: readonly ProtocolVersion[];
  /** Inside tunnels, offer XPONY-ID (message-id.ts): the server answers a retry of an accepted message once. */
  offerMessageIds?: boolean;
  /** Inside tunnels, offer XPONY-BINARY and CHUNKING (binary-message.ts); default true, false acts as an older peer. */
  offerBinary?: boolean;
}

export class XponyServer extends SMTPServer {
  readonly xponyOptions: XponyServerOptions;
  /** Handshakes between the XPONY command and the tunnel-open frame. */
  pendingHandshakes = 0;
  readonly clientLimiter: ClientLimiter;

  constructor(options: XponyServerOptions) {
    // Keep the keys out of smtp-server's own options object.
    const { keys: _keys, hostName, handshakeTimeoutMs: _timeout, clientLimits, fixedEphemeral: _ephemeral, fixedKemEphemeral: _kemEphemeral, versions: _versions, offerMessageIds: _ids, offerBinary: _binary, ...smtpOptions } = options;
    super({ name: hostName, ...smtpOptions });
    this.xponyOptions = options;
    this.clientLimiter = new ClientLimiter(clientLimits ?? DEFAULT_CLIENT_LIMITS);
  }

  override connect(socket: Socket, socketOptions?: XponyConnectionOptions | null): void {
    startConnection(this, new XponyConnection(this, socket, socketOptions ?? {}));
  }
}

/** What SMTPServer.connect does with a new connection, for subclasses with a connection class of their own. */
export function startConnection(server: SMTPServer, connection: SMTPConnection): void {
  server.connections.add(connection);
  connection.on('error', (err: Error) => server._onError(err));
  connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) => server._onClientConnect(data));
  connection.init();
}

export function createXponyServer(options: XponyServerOptions): XponyServer {
  return new XponyServer(options);
}
