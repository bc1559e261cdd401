/**
 * Records remembered under their `max-age` (docs/PROTOCOL.md, "Sender policy, pinning and
 * downgrade"): while a record is fresh, a failed, invalid or empty lookup does not weaken the
 * domain's policy. Each entry keeps whether the record was DNSSEC-validated when fetched, so a
 * remembered record is neither more nor less evidence than it was. In memory only, bounded: a
 * restart forgets the records, and pins carry the keys across.
 */
import type { PonyRecord } from '../crypto/pony-record.js';

export interface RememberedRecord {
  record: PonyRecord;
  /** Whether the record came with the AD bit from the configured validating resolver. */
  validated: boolean;
}

export const DEFAULT_MAX_RECORDS = 10_000;

export class RecordCache {
  private readonly entries = new Map<string, RememberedRecord & { expiresAt: number }>();

  constructor(private readonly maxEntries: number = DEFAULT_MAX_RECORDS) {}

  /** Keeps `record` until now + its max-age; a record without max-age (or max-age=0) is not kept. */
  remember(domain: string, record: PonyRecord, validated: boolean, now: Date): void {
    this.entries.delete(domain);
    if (record.maxAge === undefined || record.maxAge === 0) return;
    // The oldest entry goes first once the table is full (a Map iterates in insertion order).
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(domain, { record, validated, expiresAt: now.getTime() + record.maxAge * 1000 });
  }

  /** The record fetched for `domain` within its max-age, or null. */
  recall(domain: string, now: Date): RememberedRecord | null {
    const entry = this.entries.get(domain);
    if (entry === undefined) return null;
    if (entry.expiresAt <= now.getTime()) {
      this.entries.delete(domain);
      return null;
    }
    return { record: entry.record, validated: entry.validated };
  }
}
