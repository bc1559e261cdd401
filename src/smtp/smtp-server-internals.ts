/**
 * The one place that reaches into smtp-server's private members (3.21.6, pinned exactly in
 * package.json; test/unit/smtp-server-internals.test.ts fails, naming the member, when an update
 * removes one).
 */
import type { Socket } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

/**
 * A connection that greets at once, without smtp-server's 100 ms early-talker wait: Postfix's
 * smtpd does not make it either (postscreen's pregreet test is the place for that). The wait
 * capped new sessions at 10 per second per concurrent client. A subclass may refuse the
 * connection first (admit()).
 */
export class PromptConnection extends SMTPConnection {
  override init(): void {
    this._setListeners(() => {
      if (this.admit()) this.connectionReady();
    });
  }

  /** Whether to greet the client; a subclass that refuses has sent its reply. */
  protected admit(): boolean {
    return true;
  }
}

/** An SMTPServer whose connections greet at once. */
export class PromptServer extends SMTPServer {
  override connect(socket: Socket, socketOptions?: object | null): void {
    startConnection(this, new PromptConnection(this, socket, socketOptions ?? {}));
  }
}

/** What SMTPServer.connect does with a new connection, for subclasses with a connection class of their own. */
export function startConnection(server: SMTPServer, connection: SMTPConnection): void {
  server.connections.add(connection);
  connection.on('error', (err: Error) => server._onError(err));
  connection.on('connect', (data) => server._onClientConnect(data));
  connection.init();
}
