/**
 * Which mail Postfix hands to blackpony: the answer to Postfix's `transport_maps` lookup for a
 * recipient domain (served over socketmap.ts). A domain goes to the blackpony transport when
 * something says it runs blackpony: its `_pony` record (or one remembered within its max-age), a
 * pin, a local policy, or XPONY seen in its MX hosts' EHLO (sightings.ts). Every other domain is
 * NOTFOUND, so Postfix's own `smtp` delivers it with all of Postfix's settings (DANE, TLS policy
 * maps, relayhosts, per-destination limits). Where the domain's policy cannot be known now, or
 * says the mail must wait, the answer is TEMP: never NOTFOUND for a domain that requires the
 * tunnel, since that would send it in the clear.
 *
 * trivial-rewrite waits for the answer, so answers are cached per domain, concurrent lookups of
 * one domain share one decision, and a decision that takes longer than the deadline is TEMP.
 */
import { normalizeDomain } from '../crypto/domain-name.js';
import { daneHolds, tlsaSource } from './dane-guard.js';
import { discoverPolicy, includesKey, recordUnknown, type PolicyOptions } from './policy.js';
import type { SocketmapAnswer } from './socketmap.js';
import { ValidatedDnsError } from './validated-dns.js';
import { errorMessage } from '../error-message.js';

/** How a domain is routed, and why: for the socketmap answer, the logs, `probe` and the metrics. */
export interface TransportDecision {
  domain: string;
  route: 'blackpony' | 'postfix' | 'wait';
  reason: string;
}

export interface TransportLookupOptions {
  policy: PolicyOptions;
  /** The `transport:nexthop` value answered for blackpony domains, e.g. `blackpony:inet:[127.0.0.1]:10587`. */
  answer: string;
  /** Whether XPONY was seen at the domain's MX hosts recently (sightings.ts). */
  seen?: (domain: string) => boolean;
  /** This host's Noise key: a domain whose keys include it is received here, and stays with Postfix. */
  ownKey: () => Uint8Array;
  /** Told about each domain routed to Postfix: a chance to look for XPONY in the background. */
  onPostfixRoute?: (domain: string) => void;
  /** How long an answer is reused, in ms. */
  cacheMs: number;
  /** TEMP answers are reused for at most this long, so a passing fault passes soon. */
  temporaryCacheMs: number;
  /** A decision not made within this is answered TEMP (and finishes for the cache). */
  deadlineMs: number;
  /** Domains whose answers are kept at most. */
  maxEntries?: number;
  now?: () => number;
}

const DEFAULT_MAX_ENTRIES = 10_000;

/**
 * The recipient domain a key names. Postfix asks a socketmap transport table for the full
 * recipient address only (a socketmap is a pattern table: no parent domains, no `*`); a bare
 * domain is what `postmap -q` and hash-style callers send. An address literal names no domain.
 */
function domainOf(key: string): string | null {
  const at = key.lastIndexOf('@');
  const domain = at < 0 ? key : key.slice(at + 1);
  return domain.startsWith('.') ? null : normalizeDomain(domain);
}

/** The decision for one domain, made afresh (no cache). */
export async function decideTransport(domain: string, options: Pick<TransportLookupOptions, 'policy' | 'seen' | 'ownKey'>): Promise<TransportDecision> {
  const policy = await discoverPolicy(domain, options.policy);
  if (policy.mode === 'defer') return { domain, route: 'wait', reason: policy.reason };
  // Postfix asks for its own domains too: sending them to blackpony would loop back in.
  if (policy.acceptableKeys !== 'any' && includesKey(policy.acceptableKeys, options.ownKey())) {
    return { domain, route: 'postfix', reason: `${policy.reason}; the key is this host's own: mail for ${domain} is received here` };
  }
  let dane: string | null;
  try {
    dane = policy.source === 'none' && options.seen?.(domain) !== true ? null : await daneHolds(domain, policy, tlsaSource(options.policy));
  } catch (error) {
    // Whether DANE holds is not known: never a tunnel on that, and not Postfix either while a record may demand one.
    if (error instanceof ValidatedDnsError) return { domain, route: 'wait', reason: `${policy.reason}; DANE check: ${error.message}` };
    throw error;
  }
  if (dane !== null) return { domain, route: 'postfix', reason: `${policy.reason}; ${dane}` };
  if (policy.source !== 'none') return { domain, route: 'blackpony', reason: `${policy.mode}: ${policy.reason}` };
  if (recordUnknown(policy)) return { domain, route: 'wait', reason: policy.reason };
  if (options.seen?.(domain) === true) return { domain, route: 'blackpony', reason: `${policy.reason}; XPONY seen in its MX hosts' EHLO` };
  return { domain, route: 'postfix', reason: policy.reason };
}

interface Entry {
  decision: Promise<TransportDecision>;
  expiresAt: number;
}

export class TransportLookup {
  private readonly entries = new Map<string, Entry>();

  constructor(private options: TransportLookupOptions) {}

  /** New settings (a reload); remembered answers are dropped, as the policy sources may have changed. */
  reconfigure(options: TransportLookupOptions): void {
    this.options = options;
    this.entries.clear();
  }

  /** Forgets a domain's answer, e.g. after a delivery pinned a key or XPONY was seen. */
  forget(domain: string): void {
    this.entries.delete(domain);
  }

  /** The socketmap answer for `key`, with the decision behind it (null for keys that are no domain). */
  async lookup(key: string): Promise<{ answer: SocketmapAnswer; decision: TransportDecision | null }> {
    const domain = domainOf(key);
    if (domain === null) return { answer: { status: 'NOTFOUND' }, decision: null };
    const decision = await this.withDeadline(domain, this.decision(domain));
    if (decision.route === 'postfix') this.options.onPostfixRoute?.(domain);
    const answer: SocketmapAnswer =
      decision.route === 'blackpony'
        ? { status: 'OK', value: this.options.answer }
        : decision.route === 'postfix'
          ? { status: 'NOTFOUND' }
          : { status: 'TEMP', reason: decision.reason };
    return { answer, decision };
  }

  private decision(domain: string): Promise<TransportDecision> {
    const now = (this.options.now ?? Date.now)();
    const cached = this.entries.get(domain);
    if (cached !== undefined && cached.expiresAt > now) return cached.decision;
    this.entries.delete(domain);
    const decision = decideTransport(domain, this.options).catch((error: unknown) => ({
      domain,
      route: 'wait' as const,
      reason: `routing decision failed: ${errorMessage(error)}`,
    }));
    const entry: Entry = { decision, expiresAt: now + this.options.cacheMs };
    this.entries.set(domain, entry);
    void decision.then((made) => {
      if (made.route === 'wait') entry.expiresAt = Math.min(entry.expiresAt, (this.options.now ?? Date.now)() + this.options.temporaryCacheMs);
    });
    // The oldest answers go first once the table is full.
    const max = this.options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= max) break;
      this.entries.delete(oldest);
    }
    return decision;
  }

  private withDeadline(domain: string, decision: Promise<TransportDecision>): Promise<TransportDecision> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<TransportDecision>((resolve) => {
      timer = setTimeout(() => resolve({ domain, route: 'wait', reason: `no routing decision within ${this.options.deadlineMs} ms` }), this.options.deadlineMs);
    });
    return Promise.race([decision, late]).finally(() => clearTimeout(timer));
  }
}
