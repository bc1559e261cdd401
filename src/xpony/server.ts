/**
 * The server side of XPONY (docs/PROTOCOL.md sections 2-5): an smtp-server whose plaintext
 * sessions offer `XPONY 1 2` in EHLO and run the handshake (server-connection.ts, server-handshake.ts), and which
 * hands each finished tunnel to a fresh SMTP session of its own.
 */
import type { Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { startConnection } from '../smtp/index.js';
import { ClientLimiter, type ClientAdmission } from './client-limiter.js';
import { DEFAULT_CLIENT_LIMITS } from './limits.js';
import { XponyConnection } from './server-connection.js';
import type { XponyConnectionOptions, XponyServerOptions, XponyServerState } from './server-options.js';

export class XponyServer extends SMTPServer implements XponyServerState {
  readonly xponyOptions: XponyServerOptions;
  /** Handshakes between the XPONY command and the tunnel-open frame. */
  pendingHandshakes = 0;
  readonly clientLimiter: ClientAdmission;

  constructor(options: XponyServerOptions) {
    // Keep the keys out of smtp-server's own options object.
    const {
      keys: _keys,
      hostName,
      handshakeTimeoutMs: _timeout,
      clientLimits,
      clientAdmission,
      fixedEphemeral: _ephemeral,
      fixedKemEphemeral: _kemEphemeral,
      versions: _versions,
      offerMessageIds: _ids,
      offerBinary: _binary,
      offerRawPayload: _raw,
      announceSealedRelay: _relay,
      ...smtpOptions
    } = options;
    super({ name: hostName, ...smtpOptions });
    this.xponyOptions = options;
    this.clientLimiter = clientAdmission ?? new ClientLimiter(clientLimits ?? DEFAULT_CLIENT_LIMITS);
  }

  override connect(socket: Socket, socketOptions?: XponyConnectionOptions | null): void {
    startConnection(this, new XponyConnection(this, socket, socketOptions ?? {}));
  }
}

export function createXponyServer(options: XponyServerOptions): XponyServer {
  return new XponyServer(options);
}
