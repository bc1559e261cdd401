/**
 * Records remembered under their `max-age` (docs/PROTOCOL.md, "Sender policy, pinning and
 * downgrade"): while a record is fresh, a failed, invalid or empty lookup does not weaken the
 * domain's policy. In memory only: a restart forgets the records, and pins carry the keys across.
 */
import type { PonyRecord } from '../crypto/pony-record.js';

export class RecordCache {
  private readonly entries = new Map<string, { record: PonyRecord; expiresAt: number }>();

  /** Keeps `record` until now + its max-age; a record without max-age (or max-age=0) is not kept. */
  remember(domain: string, record: PonyRecord, now: Date): void {
    if (record.maxAge === undefined || record.maxAge === 0) {
      this.entries.delete(domain);
      return;
    }
    this.entries.set(domain, { record, expiresAt: now.getTime() + record.maxAge * 1000 });
  }

  /** The record fetched for `domain` within its max-age, or null. */
  recall(domain: string, now: Date): PonyRecord | null {
    const entry = this.entries.get(domain);
    if (entry === undefined) return null;
    if (entry.expiresAt <= now.getTime()) {
      this.entries.delete(domain);
      return null;
    }
    return entry.record;
  }
}
