/**
 * MTA-STS policy discovery for deliveries to legacy MX hosts (RFC 8461 sections 3 and 5): the
 * `_mta-sts` TXT record says which policy is current, the policy file is fetched over HTTPS when
 * that id is new, and a fetched policy is remembered for its max_age, so that an attacker who
 * strips the TXT record or blocks the HTTPS fetch cannot downgrade a domain we already know.
 *
 * What the delivery engine does with each outcome:
 * - `policy`, mode `enforce`: deliver only to MX hosts the policy names (mxMatches), only over
 *   STARTTLS with a certificate valid (PKIX) for the MX host name; when no MX qualifies, defer
 *   (4xx) and let Postfix retry: never bounce, and never send in clear.
 * - `policy`, mode `testing`: deliver as usual; log what enforce would have refused.
 * - `none`: the domain has no policy (or withdrew it with mode none): deliver as usual.
 * - `temporary`: a policy may exist but could not be obtained (the HTTPS fetch failed or the file
 *   did not parse, or the TXT lookup itself failed) and none is cached. RFC 8461 section 3.3:
 *   deliver as though the domain had no policy; log the reason. Nothing is cached, so the next
 *   delivery to the domain tries again.
 *
 * In memory only, bounded, and shared by the workers (expiring-table.ts); a restart forgets the
 * policies (as with record-cache.ts).
 */
import { normalizeDomain } from '../crypto/domain-name.js';
import { dnsFailure, type DnsResolver } from '../dns.js';
import { ExpiringTable } from './expiring-table.js';
import { fetchPolicyText, type PolicyFetchOptions } from './mta-sts-fetch.js';
import { MtaStsError, parseMtaStsPolicy, quoted, selectStsRecord, stsRecordName, type MtaStsPolicy } from './mta-sts-policy.js';

export { mxMatches, MtaStsError, type MtaStsMode, type MtaStsPolicy } from './mta-sts-policy.js';

export type MtaStsOutcome =
  | { kind: 'policy'; policy: MtaStsPolicy; source: 'fetched' | 'cached'; reason: string }
  | { kind: 'none'; reason: string }
  | { kind: 'temporary'; reason: string };

export const DEFAULT_MAX_ENTRIES = 10_000;

export interface MtaStsOptions extends PolicyFetchOptions {
  /**
   * The policies remembered (default: a table of 10,000, the policy fetched longest ago going
   * first); the daemon's outlives a reload's new cache, and is shared by its workers.
   */
  remembered?: ExpiringTable<MtaStsPolicy>;
  /** Tests only: replaces the HTTPS fetch of a domain's policy text. */
  fetchText?: (domain: string) => Promise<string>;
}

type StsRecord = { kind: 'record'; id: string } | { kind: 'none'; reason: string } | { kind: 'temporary'; reason: string };

export class MtaStsCache {
  private readonly remembered: ExpiringTable<MtaStsPolicy>;
  /** One discovery per domain at a time; concurrent deliveries share it. */
  private readonly running = new Map<string, Promise<MtaStsOutcome>>();
  private readonly fetchText: (domain: string) => Promise<string>;

  constructor(private readonly options: MtaStsOptions) {
    this.remembered = options.remembered ?? new ExpiringTable(DEFAULT_MAX_ENTRIES);
    this.fetchText = options.fetchText ?? ((domain) => fetchPolicyText(domain, options));
  }

  policyFor(domain: string, now: Date = new Date()): Promise<MtaStsOutcome> {
    const name = normalizeDomain(domain);
    if (name === null) return Promise.resolve({ kind: 'none', reason: `mta-sts ${quoted(domain)}: not a domain name` });
    const running = this.running.get(name);
    if (running !== undefined) return running;
    const discovery = this.discover(name, now).finally(() => this.running.delete(name));
    this.running.set(name, discovery);
    return discovery;
  }

  private async discover(domain: string, now: Date): Promise<MtaStsOutcome> {
    const cached = this.recall(domain, now);
    const record = await lookupStsRecord(domain, this.options.resolver);
    if (record.kind !== 'record') {
      if (cached !== undefined) return outcome(cached.policy, 'cached', `${record.reason}; the cached policy applies until ${cached.until}`);
      return record;
    }
    if (cached !== undefined && cached.policy.id === record.id) return outcome(cached.policy, 'cached', `mta-sts ${domain}: policy id ${record.id} unchanged`);
    let policy: MtaStsPolicy;
    try {
      policy = parseMtaStsPolicy(domain, record.id, await this.fetchText(domain));
    } catch (error) {
      if (!(error instanceof MtaStsError)) throw error;
      if (cached !== undefined) return outcome(cached.policy, 'cached', `${error.message}; the cached policy applies until ${cached.until}`);
      return { kind: 'temporary', reason: error.message };
    }
    this.remember(domain, policy, now);
    return outcome(policy, 'fetched', `mta-sts ${domain}: fetched policy id ${policy.id}`);
  }

  private recall(domain: string, now: Date): { policy: MtaStsPolicy; until: string } | undefined {
    const entry = this.remembered.get(domain, now.getTime());
    return entry === undefined ? undefined : { policy: entry.value, until: new Date(entry.expiresAt).toISOString() };
  }

  /** A new policy replaces the old one even when it is not kept itself (max_age 0). */
  private remember(domain: string, policy: MtaStsPolicy, now: Date): void {
    if (policy.maxAgeSeconds === 0) this.remembered.set(domain, null);
    else this.remembered.set(domain, policy, now.getTime() + policy.maxAgeSeconds * 1000);
  }
}

function outcome(policy: MtaStsPolicy, source: 'fetched' | 'cached', reason: string): MtaStsOutcome {
  if (policy.mode === 'none') return { kind: 'none', reason: `${reason} (mode none)` };
  return { kind: 'policy', policy, source, reason };
}

async function lookupStsRecord(domain: string, resolver: DnsResolver): Promise<StsRecord> {
  const name = stsRecordName(domain);
  let answers: string[][];
  try {
    answers = await resolver.resolveTxt(name);
  } catch (error) {
    const failure = dnsFailure(`TXT ${name}`, error);
    return { kind: failure.kind === 'temporary' ? 'temporary' : 'none', reason: `mta-sts ${domain}: ${failure.detail}` };
  }
  try {
    const record = selectStsRecord(domain, answers);
    return record === null ? { kind: 'none', reason: `mta-sts ${domain}: no v=STSv1 record at ${name}` } : { kind: 'record', id: record.id };
  } catch (error) {
    if (error instanceof MtaStsError) return { kind: 'none', reason: error.message };
    throw error;
  }
}
