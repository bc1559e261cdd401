/**
 * The outbound side: Postfix's next hop for outgoing mail (relayhost or transport map), on a
 * loopback listener, in SMTP or LMTP mode. Each transaction is delivered while Postfix waits
 * (transaction.ts), so Postfix keeps the queue and hears only what the remote side answered.
 *
 * It listens on loopback only: it relays to anywhere, so anyone who could reach it could relay.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import type { SMTPServer, SMTPServerAddress, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { Logger } from '../log.js';
import { GreetedSessions, parametersOf, PromptServer, SmtpReplyError } from '../smtp/index.js';
import { messageId } from '../xpony/index.js';
import type { DialOptions } from './dial.js';
import { isLongQueueId } from './queue-id.js';
import { SessionCache } from './session-cache.js';
import { OutboundTransaction, type DeliveryRecord } from './transaction.js';

export interface OutboundServerOptions {
  dial: DialOptions;
  /** Our name, in the greeting and EHLO reply: not the host's own (config.ts, outboundListenerName). */
  hostName: string;
  lmtp: boolean;
  /** How long an idle session to a peer is kept for the next message. */
  sessionIdleMs: number;
  logger: Logger;
  onDelivery?: (record: DeliveryRecord) => void;
  /** Postfix sessions opened and closed (metrics). */
  onSession?: (event: 'open' | 'close') => void;
  /** smtp-server's idle timeout for Postfix's sessions (ms). */
  socketTimeoutMs?: number;
}

export interface OutboundServer {
  server: SMTPServer;
  cache: SessionCache;
  listen(port: number, host?: string): Promise<AddressInfo>;
  /** Stops accepting, waits for transactions in progress, then closes idle peer sessions. */
  close(): Promise<void>;
}

export function createOutboundServer(options: OutboundServerOptions): OutboundServer {
  const cache = new SessionCache({ idleMs: options.sessionIdleMs });
  const greeted = new GreetedSessions(options.onSession);
  const transactions = new Map<string, OutboundTransaction>();
  const context = {
    dial: options.dial,
    cache,
    lmtp: options.lmtp,
    logger: options.logger,
    ...(options.onDelivery === undefined ? {} : { onDelivery: options.onDelivery }),
  };
  const end = (session: SMTPServerSession): void => {
    transactions.get(session.id)?.abandon();
    transactions.delete(session.id);
  };
  const serverOptions: SMTPServerOptions = {
    name: options.hostName,
    lmtp: options.lmtp,
    disableReverseLookup: true,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideSTARTTLS: true,
    hidePIPELINING: false,
    hide8BITMIME: false,
    hideSMTPUTF8: false,
    hideDSN: false,
    // SIZE without a value: Postfix then gives each message's size in MAIL, which goes on to the
    // destination (grown to the armored form for a sealed relay, sealed-relay.ts); no limit of our own.
    size: Number.MAX_SAFE_INTEGER,
    hideSize: true,
    // Postfix names each message's queue file with XFORWARD IDENT (lmtp_send_xforward_command = yes).
    useXForward: true,
    logger: false,
    ...(options.socketTimeoutMs === undefined ? {} : { socketTimeout: options.socketTimeoutMs }),
    onConnect(session, callback) {
      greeted.opened(session.id);
      callback();
    },
    onMailFrom(address: SMTPServerAddress, session, callback) {
      end(session);
      transactions.set(session.id, new OutboundTransaction(context, address.address, parametersOf(address), tunnelMessageId(session, address.address)));
      callback();
    },
    onRcptTo(address: SMTPServerAddress, session, callback) {
      const transaction = transactions.get(session.id);
      if (transaction === undefined) {
        callback(new SmtpReplyError(503, '5.5.1 MAIL first'));
        return;
      }
      transaction.rcpt(address.address, parametersOf(address)).then(
        () => callback(),
        (error: unknown) => callback(error instanceof SmtpReplyError ? error : localError(error)),
      );
    },
    onData(stream: Readable, session, callback) {
      const transaction = transactions.get(session.id)!;
      transactions.delete(session.id);
      transaction.data(stream).then(
        (replies) => {
          if (options.lmtp) (callback as (err: null, replies: (string | Error)[]) => void)(null, replies);
          else if (replies[0] instanceof SmtpReplyError) callback(replies[0]);
          else callback(null, replies[0]);
        },
        (error: unknown) => {
          stream.resume();
          callback(localError(error));
        },
      );
    },
    onClose(session) {
      end(session);
      greeted.closed(session.id);
    },
  };
  /** A fault of our own (a bug, not an answer from anyone): logged, and a 4xx so Postfix retries. */
  const localError = (error: unknown): SmtpReplyError => {
    options.logger.error({ err: error instanceof Error ? (error.stack ?? error.message) : String(error) }, 'outbound: local error');
    return new SmtpReplyError(451, '4.3.0 local error in processing; try again later');
  };
  const server = new PromptServer(serverOptions);
  server.on('error', (error: Error) => options.logger.debug({ err: error.message }, 'outbound listener: client connection error'));
  return {
    server,
    cache,
    async listen(port, host = '127.0.0.1') {
      server.listen(port, host);
      await once(server.server, 'listening');
      return server.server.address() as AddressInfo;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      cache.closeAll();
    },
  };
}

/**
 * The XPONY-ID of the message this MAIL starts, from the queue id Postfix gave with XFORWARD
 * before it (taken, so that it never names a later message); none without a long queue id.
 */
function tunnelMessageId(session: SMTPServerSession, sender: string): string | undefined {
  const ident = session.xForward.get('IDENT');
  session.xForward.delete('IDENT');
  return typeof ident === 'string' && isLongQueueId(ident) ? messageId(ident, sender) : undefined;
}
