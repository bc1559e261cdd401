/**
 * Fetching a destination domain's `_pony` record (docs/PROTOCOL.md, "The _pony DNS record"), with
 * the outcome typed so that policy can tell "the domain has no record" from "we could not tell".
 */
import { ponyRecordName, PonyRecordError, selectPonyRecord, type PonyRecord } from '../crypto/pony-record.js';
import { dnsFailure, type DnsResolver } from '../dns.js';
import { ValidatedDnsError, type DnsStub, type ValidatingResolver } from './validated-dns.js';

export type RecordLookup =
  /** `validated`: the answer came with the AD bit from the configured validating resolver (DNSSEC). */
  | { kind: 'record'; record: PonyRecord; validated: boolean }
  /** The name does not exist, or has no TXT record starting with v=pony1. */
  | { kind: 'none' }
  /** A v=pony1 record that does not parse, or more than one. */
  | { kind: 'invalid'; reason: string }
  /** SERVFAIL, timeout and the like: nothing is known. */
  | { kind: 'temporary'; reason: string };

/**
 * With a validating resolver configured, the record is asked of it (and says whether it validated);
 * its SERVFAIL, which is what a forged (bogus) answer gets, is a failed lookup, never "no record".
 * Without one, it is asked of `direct` (the resolver's first server, asked directly) when given:
 * see unvalidatedTxt.
 */
export async function lookupPonyRecord(domain: string, resolver: DnsResolver, validating?: ValidatingResolver, direct?: DnsStub): Promise<RecordLookup> {
  let name: string;
  try {
    name = ponyRecordName(domain);
  } catch (error) {
    if (error instanceof PonyRecordError) return { kind: 'invalid', reason: error.message };
    throw error;
  }
  let answers: string[][];
  let validated = false;
  try {
    if (validating === undefined) answers = await unvalidatedTxt(name, resolver, direct);
    else ({ records: answers, authenticated: validated } = await validating.resolveTxt(name));
  } catch (error) {
    if (error instanceof ValidatedDnsError) return { kind: 'temporary', reason: `TXT ${name}: ${error.message}` };
    const failure = dnsFailure(`TXT ${name}`, error);
    return failure.kind === 'temporary' ? { kind: 'temporary', reason: failure.detail } : { kind: 'none' };
  }
  try {
    const record = selectPonyRecord(answers);
    return record === null ? { kind: 'none' } : { kind: 'record', record, validated };
  } catch (error) {
    if (error instanceof PonyRecordError) return { kind: 'invalid', reason: error.message };
    throw error;
  }
}

/** How long `direct` is passed over after a failure: a dead first server must not add its timeout to every message. */
const DIRECT_PAUSE_MS = 60_000;
const directPausedUntil = new WeakMap<DnsStub, number>();

/**
 * The TXT records of `name` without DNSSEC: from `direct`, whose answers are kept for their TTL
 * (node:dns tells no TTL for TXT, so every message asked the resolver again), with its AD bit
 * dropped, as it is no evidence. A lookup `direct` cannot answer (a timeout, SERVFAIL, a malformed
 * reply) is asked again through node:dns, which tries every configured server, and `direct` is
 * passed over for DIRECT_PAUSE_MS: no outcome differs from asking node:dns alone, but for how
 * long a record is remembered.
 */
async function unvalidatedTxt(name: string, resolver: DnsResolver, direct: DnsStub | undefined): Promise<string[][]> {
  if (direct !== undefined && (directPausedUntil.get(direct) ?? 0) <= Date.now()) {
    try {
      return (await direct.resolveTxt(name)).records;
    } catch {
      directPausedUntil.set(direct, Date.now() + DIRECT_PAUSE_MS);
    }
  }
  return resolver.resolveTxt(name);
}
