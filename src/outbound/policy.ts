/**
 * What must be true of a delivery to a domain before the delivery engine connects: the sender
 * policy of docs/PROTOCOL.md, "Sender policy, pinning and downgrade". The decision is computed
 * here; the engine enforces it (defers when an `enforce` policy cannot be met) and calls
 * pinAfterSuccess() once a tunnel has proven a key.
 *
 * Sources, strongest evidence first: the domain's current valid `_pony` record; a record fetched
 * within its max-age (RecordCache); the pin store (keys that delivered before); the local
 * configuration. A record or pin never becomes weaker because a lookup failed or a file broke.
 */
import { base64 } from '@scure/base';
import type { PonyRecord } from '../crypto/pony-record.js';
import { lookupPonyRecord, type RecordLookup } from './discovery.js';
import type { DnsResolver } from '../dns.js';
import { pinDomain, PinStoreError, type Pin, type PinStore } from './pins.js';
import type { RecordCache } from './record-cache.js';

export type LocalPolicy = 'enforce' | 'testing';
export type PolicyMode = 'enforce' | 'testing' | 'opportunistic';

/** How long a pin lasts when the record gives no max-age (or there is no record). */
export const DEFAULT_PIN_MAX_AGE_DAYS = 30;
const SECONDS_PER_DAY = 86_400;

export interface DeliveryPolicy {
  /**
   * enforce: only through an XPONY tunnel whose server key is acceptable, else defer (4xx).
   * testing: try XPONY and check the key; on failure deliver as without a record, and report it.
   * opportunistic: use XPONY when offered, with any key.
   */
  mode: PolicyMode;
  /** The server keys to accept, or 'any' when nothing is known about the domain's keys. */
  acceptableKeys: Uint8Array[] | 'any';
  /** The record's age recipient (`a=`), when a record is known. */
  ageRecipient?: string;
  source: 'record' | 'cached-record' | 'pin' | 'local' | 'none';
  /** What this decision's `_pony` lookup found: 'temporary' means nothing is known of the record now. */
  recordLookup: RecordLookup['kind'];
  /** Why, for the logs. */
  reason: string;
  /** How long a key proven by this delivery stays pinned; 0: the domain asked not to be remembered. */
  pinMaxAgeDays: number;
}

/** Nothing may be delivered now: the engine defers (4xx) and retries later. */
export interface PolicyDeferral {
  mode: 'defer';
  reason: string;
}

export type PolicyDecision = DeliveryPolicy | PolicyDeferral;

export interface PolicyOptions {
  resolver: DnsResolver;
  pins: PinStore;
  /** domain -> policy from the local configuration; the stricter of this and the record applies. */
  localPolicies?: Readonly<Record<string, LocalPolicy>>;
  recordCache?: RecordCache;
  now?: Date;
  /** Pin lifetime when the record has no max-age (default DEFAULT_PIN_MAX_AGE_DAYS). */
  defaultPinMaxAgeDays?: number;
}

export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}

const STRENGTH: Record<PolicyMode, number> = { opportunistic: 0, testing: 1, enforce: 2 };

export async function discoverPolicy(domain: string, options: PolicyOptions): Promise<PolicyDecision> {
  const now = options.now ?? new Date();
  const defaultDays = options.defaultPinMaxAgeDays ?? DEFAULT_PIN_MAX_AGE_DAYS;
  let name: string;
  let pin: Pin | null;
  try {
    name = pinDomain(domain);
    pin = await options.pins.get(name, now);
  } catch (error) {
    if (error instanceof PinStoreError) return { mode: 'defer', reason: error.message };
    throw error;
  }
  const local = options.localPolicies?.[name];
  const lookup = await lookupPonyRecord(name, options.resolver);

  if (lookup.kind === 'record') {
    options.recordCache?.remember(name, lookup.record, now);
    return fromRecord(lookup.record, 'record', `_pony record: p=${lookup.record.policy}`, local, pin !== null, defaultDays, lookup.kind);
  }
  const what = lookup.kind === 'none' ? 'no _pony record' : lookup.kind === 'invalid' ? `invalid _pony record (${lookup.reason})` : `_pony lookup failed (${lookup.reason})`;
  const cached = options.recordCache?.recall(name, now) ?? null;
  if (cached !== null) return fromRecord(cached, 'cached-record', `${what}; using the record fetched within its max-age`, local, pin !== null, defaultDays, lookup.kind);
  if (pin !== null) {
    return {
      mode: 'enforce',
      acceptableKeys: pin.keys.map((k) => k.key),
      source: 'pin',
      reason: `${what}; pinned keys (${pin.keys.length}) required`,
      pinMaxAgeDays: defaultDays,
      recordLookup: lookup.kind,
    };
  }
  if (local === 'enforce') {
    if (lookup.kind !== 'none') return { mode: 'defer', reason: `${what}; local policy enforce needs it` };
    return { mode: 'enforce', acceptableKeys: 'any', source: 'local', reason: `${what}; local policy enforce: XPONY with any key`, pinMaxAgeDays: defaultDays, recordLookup: lookup.kind };
  }
  if (local === 'testing') {
    return { mode: 'testing', acceptableKeys: 'any', source: 'local', reason: `${what}; local policy testing`, pinMaxAgeDays: defaultDays, recordLookup: lookup.kind };
  }
  return { mode: 'opportunistic', acceptableKeys: 'any', source: 'none', reason: what, pinMaxAgeDays: defaultDays, recordLookup: lookup.kind };
}

/**
 * The record decides the keys. The mode is the strongest of the record's, the local policy's and,
 * for a pinned domain, enforce: a record saying p=testing (easily forged without DNSSEC) must not
 * open a pinned domain to a downgrade. A domain that leaves publishes p=testing with a short
 * max-age, which the pins then take on at each delivery, and they expire soon after it is gone.
 */
function fromRecord(
  record: PonyRecord,
  source: 'record' | 'cached-record',
  reason: string,
  local: LocalPolicy | undefined,
  pinned: boolean,
  defaultDays: number,
  recordLookup: RecordLookup['kind'],
): DeliveryPolicy {
  const floor: LocalPolicy | undefined = pinned ? 'enforce' : local;
  const raised = floor !== undefined && STRENGTH[floor] > STRENGTH[record.policy];
  return {
    mode: raised ? floor : record.policy,
    acceptableKeys: record.noiseKeys,
    ageRecipient: record.ageRecipient,
    // Raised by a pin, the record still decides the keys: its source stays (no endorsement rule).
    source: raised && !pinned ? 'local' : source,
    reason: raised ? `${reason}; ${pinned ? 'pinned domain' : `local policy ${local}`}: ${floor}` : reason,
    pinMaxAgeDays: record.maxAge === undefined ? defaultDays : record.maxAge / SECONDS_PER_DAY,
    recordLookup,
  };
}

/**
 * Whether a server that proved `key` in the handshake satisfies the policy's key requirement.
 * `endorsedBy`: previous keys of the server that vouched for `key` in that handshake. A pinned key
 * vouching for a new one is a rollover; a record's keys are the domain's own word, so a domain with
 * a record rolls over through the record, never through an endorsement.
 */
export function isAcceptableKey(policy: DeliveryPolicy, key: Uint8Array, endorsedBy: readonly Uint8Array[] = []): boolean {
  const { acceptableKeys } = policy;
  if (acceptableKeys === 'any') return true;
  const acceptable = (candidate: Uint8Array): boolean => acceptableKeys.some((k) => base64.encode(k) === base64.encode(candidate));
  return acceptable(key) || (policy.source === 'pin' && endorsedBy.some(acceptable));
}

/**
 * After a delivery through a tunnel whose server proved `key` (endorsed by `endorsedBy`): pins it
 * (or refreshes it) for the policy's pin lifetime, beside any key pinned before. Refuses a key the
 * policy did not accept (an engine bug).
 */
export async function pinAfterSuccess(
  pins: PinStore,
  domain: string,
  policy: DeliveryPolicy,
  key: Uint8Array,
  now: Date = new Date(),
  endorsedBy: readonly Uint8Array[] = [],
): Promise<void> {
  if (!isAcceptableKey(policy, key, endorsedBy)) throw new PolicyError(`pin ${domain}: the key was not acceptable under the ${policy.mode} policy (${policy.reason})`);
  if (policy.pinMaxAgeDays > 0) await pins.pin(domain, key, policy.pinMaxAgeDays, now);
}
