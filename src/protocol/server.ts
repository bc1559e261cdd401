/**
 * The server side of XPONY (docs/PROTOCOL.md sections 2-5): an smtp-server whose plaintext
 * sessions offer `XPONY 1` in EHLO and run the handshake (see server-connection.ts), and which
 * hands each finished tunnel to a fresh SMTP session of its own.
 */
import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type { Keys } from '../crypto/keyfile.js';
import type { X25519KeyPair } from '../crypto/primitives.js';
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

export type XponySession = SMTPServerSession & { xpony?: XponySessionInfo };

/** The tunnel's peer, or undefined for a plaintext session. */
export function xponyOf(session: SMTPServerSession): XponySessionInfo | undefined {
  return (session as XponySession).xpony;
}

/** Emitted on the server as 'xpony-handshake', once per XPONY command. */
export interface XponyHandshakeEvent {
  sessionId: string;
  outcome: 'tunnel' | 'rejected' | 'cancelled' | 'failed' | 'timeout';
  /** The plaintext reply sent, if one was. */
  reply?: string;
  /** Why the tunnel failed after the switch point, where no reply can be sent. */
  reason?: string;
  remoteStaticKey?: Uint8Array;
}

export interface XponyServerOptions extends SMTPServerOptions {
  keys: Keys;
  /** This host's name: announced in Noise message 2, and the greeting name unless `name` is set. */
  hostName: string;
  /** From the XPONY command to the tunnel-open frame (default HANDSHAKE_TIMEOUT_MS). */
  handshakeTimeoutMs?: number;
  /** A fixed Noise ephemeral key: for the documented example session (test vectors) only. */
  fixedEphemeral?: X25519KeyPair;
}

export class XponyServer extends SMTPServer {
  readonly xponyOptions: XponyServerOptions;
  /** Handshakes between the XPONY command and the tunnel-open frame. */
  pendingHandshakes = 0;

  constructor(options: XponyServerOptions) {
    // Keep the keys out of smtp-server's own options object.
    const { keys: _keys, hostName, handshakeTimeoutMs: _timeout, fixedEphemeral: _ephemeral, ...smtpOptions } = options;
    super({ name: hostName, ...smtpOptions });
    this.xponyOptions = options;
  }

  override connect(socket: Socket, socketOptions?: XponyConnectionOptions | null): void {
    // As SMTPServer.connect, with the XPONY connection class.
    const connection = new XponyConnection(this, socket, socketOptions ?? {});
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data) => this._onClientConnect(data));
    connection.init();
  }
}

export function createXponyServer(options: XponyServerOptions): XponyServer {
  return new XponyServer(options);
}
