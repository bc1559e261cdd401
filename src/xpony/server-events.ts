/** The events an XponyServer emits, for metrics and logs, and how they are reported. */
import type { LimitName } from './limits.js';
import type { XponyReply } from './replies.js';
import type { XponyServerState } from './server-options.js';

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

/** Logs and emits that a client ran into `limit` (the reply sent, or the connection closed). */
export function reportClientLimit(server: XponyServerState, connection: { id: string; remoteAddress: string }, limit: LimitName, reply: XponyReply): void {
  const event: ClientLimitEvent = { limit, remoteAddress: connection.remoteAddress, reply: `${reply.code} ${reply.text}` };
  server.logger.info({ tnx: 'limit', cid: connection.id, host: connection.remoteAddress, limit }, 'limit %s: %s', limit, event.reply);
  server.emit('client-limit', event);
}

/** Logs and emits the outcome of a handshake `seconds` after its XPONY command. */
export function reportHandshake(server: XponyServerState, sessionId: string, seconds: number, event: Omit<XponyHandshakeEvent, 'sessionId' | 'seconds'>): void {
  server.logger.info({ tnx: 'xpony', cid: sessionId, outcome: event.outcome }, 'XPONY %s: %s', event.outcome, event.reply ?? event.reason ?? '');
  server.emit('xpony-handshake', { sessionId, seconds, ...event } satisfies XponyHandshakeEvent);
}
