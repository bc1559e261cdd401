/**
 * What a process remembers of a domain until a time: a `_pony` record within its max-age
 * (record-cache.ts), an MTA-STS policy within its max_age (mta-sts.ts). In memory, bounded (the
 * entry set longest ago goes first), and with workers shared by all of them (shared-table.ts).
 */
import { setNewest } from './bounded-map.js';
import { joinSharedTable, type SharedTable } from './shared-table.js';

/** One domain's entry set until `expiresAt` (ms since the epoch), or forgotten (`value: null`). */
export interface ExpiringChange<Value> {
  domain: string;
  value: Value | null;
  expiresAt: number;
}

export class ExpiringTable<Value> {
  /** Insertion order is the order set: the first entry is the oldest. */
  private readonly entries = new Map<string, { value: Value; expiresAt: number }>();
  private shared: SharedTable<ExpiringChange<Value>> | undefined;

  constructor(readonly maxEntries: number) {}

  /** Remembers `value` for `domain` until `expiresAt`; `null` forgets the domain. Told to every process sharing the table. */
  set(domain: string, value: Value | null, expiresAt = 0): void {
    const change = { domain, value, expiresAt };
    this.apply(change);
    this.shared?.publish(change);
  }

  /** The domain's entry unless it expired by `now` (ms since the epoch). */
  get(domain: string, now: number): { value: Value; expiresAt: number } | undefined {
    const entry = this.entries.get(domain);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > now) return entry;
    this.entries.delete(domain);
    return undefined;
  }

  /** From now on, what this table learns goes to every process sharing it, and theirs comes here. */
  async share(shared: SharedTable<ExpiringChange<Value>>): Promise<void> {
    this.shared = shared;
    await joinSharedTable(
      shared,
      (change) => this.apply(change),
      (changes) => {
        this.entries.clear();
        for (const change of changes) this.apply(change);
      },
    );
  }

  private apply({ domain, value, expiresAt }: ExpiringChange<Value>): void {
    if (value === null) this.entries.delete(domain);
    else setNewest(this.entries, domain, { value, expiresAt }, this.maxEntries);
  }
}
