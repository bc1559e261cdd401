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
import { constantTimeEqual } from '../crypto/primitives.js';
import type { PonyRecord } from '../crypto/pony-record.js';
import type { KeyEvidence } from '../xpony/index.js';
import { lookupPonyRecord, type RecordLookup } from './discovery.js';
import type { DnsResolver } from '../dns.js';
import { pinDomain, PinStoreError, type Pin, type PinStore } from './pins.js';
import type { RecordCache } from './record-cache.js';
import type { DnsStub, ValidatingResolver } from './validated-dns.js';

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
  /**
   * Keys also accepted when the server proves one of them endorsed by an acceptable key (a
   * rollover, docs/PROTOCOL.md section 11): any key for a domain known by its pin alone; for a
   * pinned domain with a record, only the record's keys (the record *and* the endorsement); none
   * otherwise (a record's keys are not extended by endorsements).
   */
  endorsable: Uint8Array[] | 'any';
  /** The record's age recipient (`a=`), when a record is known. */
  ageRecipient?: string;
  /**
   * The record's `relay=sealed`, vouched for as strongly as the keys (docs/PROTOCOL.md section 11,
   * "Sealed relay"): under enforce, a message that reaches no MX offering XPONY may go sealed to
   * `ageRecipient` through the domain's other MX hosts. Absent: it waits.
   */
  sealedRelay?: true;
  /** dnssec: a `_pony` record that validated (AD from the configured validating resolver). */
  source: 'record' | 'cached-record' | 'pin' | 'https' | 'dnssec' | 'local' | 'none';
  /** What this decision's `_pony` lookup found: 'temporary' means nothing is known of the record now. */
  recordLookup: RecordLookup['kind'];
  /** Why, for the logs. */
  reason: string;
  /** How long a key proven by this delivery stays pinned; 0: the domain asked not to be remembered. */
  pinMaxAgeDays: number;
  /**
   * Why keys that only unsigned DNS named were set aside for stronger evidence (the pin, HTTPS):
   * for the log's warning, since a forged record looks exactly like this.
   */
  setAside?: string;
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
  /** The validating resolver on loopback whose AD bit makes a `_pony` record DNSSEC evidence; absent: every record is unsigned. */
  validating?: ValidatingResolver;
  /**
   * The configured resolver asked directly: for TLSA (node:dns cannot) when there is no validating
   * resolver (the DANE guard), and for `_pony` records, kept for their TTL (discovery.ts).
   */
  directDns?: DnsStub;
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
  const lookup = await lookupPonyRecord(name, options.resolver, options.validating, options.directDns);

  if (lookup.kind === 'record') {
    options.recordCache?.remember(name, lookup.record, lookup.validated, now);
    const source = lookup.validated ? 'dnssec' : 'record';
    return fromRecord(
      lookup.record,
      source,
      `_pony record${lookup.validated ? ' (DNSSEC-validated)' : ''}: p=${lookup.record.policy}`,
      local,
      pin,
      defaultDays,
      lookup.kind,
    );
  }
  const what =
    lookup.kind === 'none'
      ? 'no _pony record'
      : lookup.kind === 'invalid'
        ? `invalid _pony record (${lookup.reason})`
        : `_pony lookup failed (${lookup.reason})`;
  const cached = options.recordCache?.recall(name, now) ?? null;
  if (cached !== null) {
    // A record remembered as validated stays DNSSEC evidence for its max-age, an unsigned one stays unsigned.
    const source = cached.validated ? 'dnssec' : 'cached-record';
    return fromRecord(
      cached.record,
      source,
      `${what}; using the ${cached.validated ? 'DNSSEC-validated ' : ''}record fetched within its max-age`,
      local,
      pin,
      defaultDays,
      lookup.kind,
    );
  }
  if (pin !== null) {
    return {
      mode: 'enforce',
      acceptableKeys: pin.keys.map((k) => k.key),
      endorsable: 'any',
      source: 'pin',
      reason: `${what}; pinned keys (${pin.keys.length}) required`,
      pinMaxAgeDays: defaultDays,
      recordLookup: lookup.kind,
    };
  }
  if (local === 'enforce') {
    if (lookup.kind !== 'none') return { mode: 'defer', reason: `${what}; local policy enforce needs it` };
    return {
      mode: 'enforce',
      acceptableKeys: 'any',
      endorsable: [],
      source: 'local',
      reason: `${what}; local policy enforce: XPONY with any key`,
      pinMaxAgeDays: defaultDays,
      recordLookup: lookup.kind,
    };
  }
  if (local === 'testing') {
    return {
      mode: 'testing',
      acceptableKeys: 'any',
      endorsable: [],
      source: 'local',
      reason: `${what}; local policy testing`,
      pinMaxAgeDays: defaultDays,
      recordLookup: lookup.kind,
    };
  }
  return { mode: 'opportunistic', acceptableKeys: 'any', endorsable: [], source: 'none', reason: what, pinMaxAgeDays: defaultDays, recordLookup: lookup.kind };
}

/**
 * The record's policy, as evidence allows. A `_pony` record is unsigned DNS: anyone who can forge
 * answers to this host can write one. So it decides the keys only for a domain nothing else
 * vouches for; for a pinned domain the pin does (docs/PROTOCOL.md section 11): the record can
 * neither remove a pinned key nor add one, and a new key of the record is accepted only with an
 * endorsement by a pinned key in the handshake. Its `a=` is then not used either: the age
 * recipients come from the handshake with the pinned key. The mode is the strongest of the
 * record's, the local policy's and, for a pinned domain, enforce: a record saying p=testing must
 * not open a pinned domain to a downgrade. A domain that leaves publishes p=testing with a short
 * max-age, which the pins then take on at each delivery, and they expire soon after it is gone.
 * A DNSSEC-validated record is evidence like HTTPS: for a pinned domain its keys are accepted
 * beside the pinned ones (a rollover vouched for by DNSSEC), and it decides the keys otherwise.
 * A remembered record is the evidence it was when fetched: 'dnssec' if it validated then, else
 * 'cached-record' (unsigned). Its `relay=sealed` goes with its `a=`: used where the keys are the
 * record's own word or the record validated. For a pinned domain's unsigned record, only where
 * the pinned key's server announced the sealed relay too, in the handshake that last refreshed
 * the pin, and then sealed to the recipient stored with it, never the record's `a=`: a forger
 * must not be able to send a pinned domain's mail, envelope in clear, to hosts of its choosing.
 */
function fromRecord(
  record: PonyRecord,
  source: 'record' | 'cached-record' | 'dnssec',
  reason: string,
  local: LocalPolicy | undefined,
  pin: Pin | null,
  defaultDays: number,
  recordLookup: RecordLookup['kind'],
): DeliveryPolicy {
  const pinMaxAgeDays = record.maxAge === undefined ? defaultDays : record.maxAge / SECONDS_PER_DAY;
  if (pin !== null) {
    const pinned = pin.keys.map((k) => k.key);
    const unpinned = record.noiseKeys.filter((key) => !includesKey(pinned, key));
    if (source === 'dnssec') {
      return {
        mode: 'enforce',
        acceptableKeys: [...pinned, ...unpinned],
        endorsable: [],
        ageRecipient: record.ageRecipient,
        ...sealedRelayOf(record),
        source: 'pin',
        reason: `${reason}; pinned domain: enforce with the pinned keys (${pinned.length}) and the validated record's others (${unpinned.length})`,
        pinMaxAgeDays,
        recordLookup,
      };
    }
    const relayTo = record.sealedRelay === true ? pinnedSealedRelay(pin) : undefined;
    return {
      mode: 'enforce',
      acceptableKeys: pinned,
      endorsable: record.noiseKeys,
      ...(relayTo === undefined ? {} : { ageRecipient: relayTo, sealedRelay: true }),
      source: 'pin',
      reason: `${reason}; pinned domain: enforce with the pinned keys (${pinned.length})${unpinned.length === 0 ? '' : `; the record's other keys (${unpinned.length}) only with a pinned key's endorsement`}${relayTo === undefined ? '' : '; relay=sealed, as the pinned key announced'}`,
      pinMaxAgeDays,
      recordLookup,
      ...(unpinned.length === 0 ? {} : { setAside: unvouchedKeys(unpinned.length, 'the pin', "only with a pinned key's endorsement (a rollover)") }),
    };
  }
  const raised = local !== undefined && STRENGTH[local] > STRENGTH[record.policy];
  return {
    mode: raised ? local : record.policy,
    acceptableKeys: record.noiseKeys,
    endorsable: [],
    ageRecipient: record.ageRecipient,
    ...sealedRelayOf(record),
    // Raised by a local policy, a validated record stays evidence (source dnssec).
    source: raised && source !== 'dnssec' ? 'local' : source,
    reason: raised ? `${reason}; local policy ${local}: ${local}` : reason,
    pinMaxAgeDays,
    recordLookup,
  };
}

/** The recipient the most recently seen pinned key announced the sealed relay for, if it did. */
function pinnedSealedRelay(pin: Pin): string | undefined {
  const latest = pin.keys.reduce((a, b) => (b.lastSeen.getTime() > a.lastSeen.getTime() ? b : a));
  return latest.sealedRelayTo;
}

function sealedRelayOf(record: PonyRecord): { sealedRelay?: true } {
  return record.sealedRelay === true ? { sealedRelay: true } : {};
}

/**
 * The policy once the domain's MTA-STS policy file, fetched over verified HTTPS, names its XPONY
 * keys (`pony-key`): evidence stronger than an unsigned record (docs/PROTOCOL.md section 11). A
 * pinned domain, or one with a DNSSEC-validated record, accepts them beside those keys (a rollover vouched for by HTTPS); any other
 * domain accepts them alone, whatever a record said, in at least `testing` mode, so that a failed
 * tunnel falls back to what MTA-STS allows. The record's `a=` is not used: the age recipients come
 * from the handshake with a vouched key; nor is its `relay=sealed`, which needs `a=`.
 */
export function withHttpsKeys(policy: DeliveryPolicy, keys: readonly Uint8Array[]): DeliveryPolicy {
  if (keys.length === 0) return policy;
  const { ageRecipient: _unvouched, sealedRelay: _needsRecipient, ...rest } = policy;
  if (keysVouched(policy) && policy.acceptableKeys !== 'any') {
    const known = policy.acceptableKeys;
    const added = keys.filter((key) => !includesKey(known, key));
    return { ...rest, acceptableKeys: [...policy.acceptableKeys, ...added], reason: `${policy.reason}; MTA-STS policy (HTTPS) names ${keys.length} key(s)` };
  }
  const unvouched = policy.acceptableKeys === 'any' ? [] : policy.acceptableKeys.filter((key) => !includesKey(keys, key));
  return {
    ...rest,
    mode: policy.mode === 'opportunistic' ? 'testing' : policy.mode,
    acceptableKeys: [...keys],
    endorsable: [],
    source: 'https',
    reason: `${policy.reason}; keys (${keys.length}) from the MTA-STS policy (HTTPS)`,
    ...(unvouched.length === 0 ? {} : { setAside: unvouchedKeys(unvouched.length, 'the MTA-STS policy (HTTPS)', 'not accepted') }),
  };
}

/** The warning for `count` keys of an unsigned `_pony` record that `evidence` does not vouch for. */
export function unvouchedKeys(count: number, evidence: string, fate: string): string {
  return `the _pony record (unsigned DNS) names ${count} key(s) that ${evidence} does not vouch for: ${fate}; a forged record looks like this`;
}

/**
 * Whether a server that proved `key` in the handshake satisfies the policy's key requirement.
 * `endorsedBy`: previous keys of the server that vouched for `key` in that handshake; an
 * endorsement by an acceptable key makes `key` acceptable too where the policy allows it
 * (`endorsable`: a rollover).
 */
export function isAcceptableKey(policy: DeliveryPolicy, key: Uint8Array, endorsedBy: readonly Uint8Array[] = []): boolean {
  const { acceptableKeys, endorsable } = policy;
  if (acceptableKeys === 'any') return true;
  if (includesKey(acceptableKeys, key)) return true;
  return (endorsable === 'any' || includesKey(endorsable, key)) && endorsedBy.some((endorser) => includesKey(acceptableKeys, endorser));
}

/** Whether `keys` holds `key`. */
export function includesKey(keys: readonly Uint8Array[], key: Uint8Array): boolean {
  return keys.some((candidate) => constantTimeEqual(candidate, key));
}

/**
 * Whether the domain's keys are vouched for by more than unsigned DNS: by a pin (a key that
 * delivered before), by the domain's MTA-STS policy over HTTPS, or by a DNSSEC-validated record.
 * An unsigned `_pony` record alone is not, so it never outranks an MTA-STS policy or DANE.
 */
export function keysVouched(policy: DeliveryPolicy): boolean {
  return policy.source === 'pin' || policy.source === 'https' || policy.source === 'dnssec';
}

/** What vouched for the keys this policy accepts, as the tunnel's XPONY-EVIDENCE says it. */
export function keyEvidence(policy: DeliveryPolicy): KeyEvidence {
  if (policy.acceptableKeys === 'any') return 'none';
  return policy.source === 'pin' || policy.source === 'https' || policy.source === 'dnssec' ? policy.source : 'record';
}

/**
 * Whether nothing is known of the domain now because its `_pony` lookup failed (a timeout, a
 * SERVFAIL, an answer that failed DNSSEC validation) and nothing else speaks for it: a record may
 * exist and demand the tunnel, so the mail waits (the transport lookup's TEMP, delivery's 4xx)
 * rather than go as for a domain without one. A forger who makes validation fail must not get
 * the opportunistic tunnel or plaintext that way.
 */
export function recordUnknown(policy: DeliveryPolicy): boolean {
  return policy.source === 'none' && policy.recordLookup === 'temporary';
}

/**
 * After a delivery through a tunnel whose server proved `key` (endorsed by `endorsedBy`): pins it
 * (or refreshes it) for the policy's pin lifetime, beside any key pinned before, with the
 * recipient a sealed relay seals to, when the server announced the sealed relay in that handshake
 * (`sealedRelayTo`: its hybrid recipient when it announced one). Refuses a key the policy did not accept (an engine bug).
 */
export async function pinAfterSuccess(
  pins: PinStore,
  domain: string,
  policy: DeliveryPolicy,
  key: Uint8Array,
  now: Date = new Date(),
  endorsedBy: readonly Uint8Array[] = [],
  sealedRelayTo?: string,
): Promise<void> {
  if (!isAcceptableKey(policy, key, endorsedBy))
    throw new PolicyError(`pin ${domain}: the key was not acceptable under the ${policy.mode} policy (${policy.reason})`);
  if (policy.pinMaxAgeDays > 0) await pins.pin(domain, key, policy.pinMaxAgeDays, now, sealedRelayTo);
}
