/**
 * Idle sessions kept for the next message to the same domain, like Postfix's connection cache:
 * a tunnel costs a handshake, so a burst of mail to one peer reuses it. A session waits at most
 * the idle time, then leaves with QUIT; one the peer closes leaves at once. Bounded per domain
 * and in total (the oldest idle session makes room).
 */
import type { RemoteSession } from './remote-session.js';

export interface SessionCacheOptions {
  /** How long an idle session waits for the next message; 0: sessions are not reused. */
  idleMs: number;
  /** Default 20, Postfix's default_destination_concurrency_limit: each of its parallel sessions to a domain can keep its tunnel. */
  maxPerDomain?: number;
  maxTotal?: number;
}

interface Idle {
  domain: string;
  session: RemoteSession;
  timer: NodeJS.Timeout;
  /** Removes the entry when the peer closes; taken off the connection when the entry leaves, so a reused session does not collect one per message. */
  onClose: () => void;
}

export class SessionCache {
  private readonly idle: Idle[] = [];
  private readonly maxPerDomain: number;
  private readonly maxTotal: number;
  private readonly options: SessionCacheOptions;

  constructor(options: SessionCacheOptions) {
    this.options = { ...options };
    this.maxPerDomain = options.maxPerDomain ?? 20;
    this.maxTotal = options.maxTotal ?? 256;
  }

  get size(): number {
    return this.idle.length;
  }

  /** For sessions put from now on (a reload); 0 also says QUIT to those waiting now. */
  set idleMs(idleMs: number) {
    this.options.idleMs = idleMs;
    if (idleMs === 0) this.closeAll();
  }

  /** The most recently used idle session for `domain` that `fits`, taken out of the cache. */
  take(domain: string, fits: (session: RemoteSession) => boolean): RemoteSession | undefined {
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const entry = this.idle[i]!;
      if (entry.domain !== domain || !fits(entry.session)) continue;
      this.remove(entry);
      return entry.session;
    }
    return undefined;
  }

  /**
   * Keeps a session between transactions; closed sessions are not kept, nor any with idleMs 0, nor
   * a sealed relay's: it carries one message, and the next one tries the MX hosts offering XPONY again.
   */
  put(domain: string, session: RemoteSession): void {
    if (session.closed) return;
    if (this.options.idleMs === 0 || session.sealedRelay !== undefined) {
      session.quit();
      return;
    }
    const sameDomain = this.idle.filter((entry) => entry.domain === domain);
    if (sameDomain.length >= this.maxPerDomain) this.evict(sameDomain[0]!);
    if (this.idle.length >= this.maxTotal) this.evict(this.idle[0]!);
    const entry: Idle = { domain, session, timer: setTimeout(() => this.evict(entry), this.options.idleMs), onClose: () => this.remove(entry) };
    entry.timer.unref();
    session.client.transport.once('close', entry.onClose);
    this.idle.push(entry);
  }

  /** Says QUIT on every idle session. */
  closeAll(): void {
    for (const entry of [...this.idle]) this.evict(entry);
  }

  private evict(entry: Idle): void {
    if (this.remove(entry)) entry.session.quit();
  }

  private remove(entry: Idle): boolean {
    const index = this.idle.indexOf(entry);
    if (index < 0) return false;
    clearTimeout(entry.timer);
    entry.session.client.transport.off('close', entry.onClose);
    this.idle.splice(index, 1);
    return true;
  }
}
