/** The events an XponyServer emits, for metrics and logs. */
import type { LimitName } from './limits.js';

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
