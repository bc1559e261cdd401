/**
 * Records remembered under their `max-age` (docs/PROTOCOL.md, "Sender policy, pinning and
 * downgrade"): while a record is fresh, a failed, invalid or empty lookup does not weaken the
 * domain's policy. Each entry keeps whether the record was DNSSEC-validated when fetched, so a
 * remembered record is neither more nor less evidence than it was. In memory only, bounded, and
 * shared by the workers (expiring-table.ts): a restart forgets the records, and pins carry the
 * keys across.
 */
import type { PonyRecord } from '../crypto/pony-record.js';
import { ExpiringTable } from './expiring-table.js';

export interface RememberedRecord {
  record: PonyRecord;
  /** Whether the record came with the AD bit from the configured validating resolver. */
  validated: boolean;
}

export const DEFAULT_MAX_RECORDS = 10_000;

export class RecordCache {
  constructor(private readonly table = new ExpiringTable<RememberedRecord>(DEFAULT_MAX_RECORDS)) {}

  /** Keeps `record` until now + its max-age; a record without max-age (or max-age=0) is not kept. */
  remember(domain: string, record: PonyRecord, validated: boolean, now: Date): void {
    if (record.maxAge === undefined || record.maxAge === 0) this.table.set(domain, null);
    else this.table.set(domain, { record, validated }, now.getTime() + record.maxAge * 1000);
  }

  /** The record fetched for `domain` within its max-age, or null. */
  recall(domain: string, now: Date): RememberedRecord | null {
    return this.table.get(domain, now.getTime())?.value ?? null;
  }
}
