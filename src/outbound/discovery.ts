/**
 * Fetching a destination domain's `_pony` record (docs/PROTOCOL.md, "The _pony DNS record"), with
 * the outcome typed so that policy can tell "the domain has no record" from "we could not tell".
 */
import { ponyRecordName, PonyRecordError, selectPonyRecord, type PonyRecord } from '../crypto/pony-record.js';
import { dnsFailure, type DnsResolver } from '../dns.js';

export type RecordLookup =
  | { kind: 'record'; record: PonyRecord }
  /** The name does not exist, or has no TXT record starting with v=pony1. */
  | { kind: 'none' }
  /** A v=pony1 record that does not parse, or more than one. */
  | { kind: 'invalid'; reason: string }
  /** SERVFAIL, timeout and the like: nothing is known. */
  | { kind: 'temporary'; reason: string };

export async function lookupPonyRecord(domain: string, resolver: DnsResolver): Promise<RecordLookup> {
  let name: string;
  try {
    name = ponyRecordName(domain);
  } catch (error) {
    if (error instanceof PonyRecordError) return { kind: 'invalid', reason: error.message };
    throw error;
  }
  let answers: string[][];
  try {
    answers = await resolver.resolveTxt(name);
  } catch (error) {
    const failure = dnsFailure(`TXT ${name}`, error);
    return failure.kind === 'temporary' ? { kind: 'temporary', reason: failure.detail } : { kind: 'none' };
  }
  try {
    const record = selectPonyRecord(answers);
    return record === null ? { kind: 'none' } : { kind: 'record', record };
  } catch (error) {
    if (error instanceof PonyRecordError) return { kind: 'invalid', reason: error.message };
    throw error;
  }
}
