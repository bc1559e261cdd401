/**
 * What the workers remember of other domains, shared through the primary (src/outbound/
 * shared-table.ts says why): XPONY sightings, `_pony` records within their max-age, MTA-STS
 * policies. A worker sends each change it learns; the primary keeps the latest change per entry
 * and passes every change to every worker, the sender too, in the order it got them, so that all
 * workers end with the same tables. A worker starts from the primary's changes so far. The
 * sightings the primary keeps in their own table, which it writes to their file: one writer for
 * all workers.
 *
 * Messages on one worker's channel arrive in the order sent; a change sent before the answer to
 * a snapshot request is in the snapshot, one sent after follows it.
 */
import type { Worker } from 'node:cluster';
import { setNewest } from '../outbound/bounded-map.js';
import type { ExpiringChange } from '../outbound/expiring-table.js';
import { DEFAULT_MAX_ENTRIES as MAX_MTA_STS_POLICIES, type MtaStsPolicy } from '../outbound/mta-sts.js';
import { DEFAULT_MAX_RECORDS, type RememberedRecord } from '../outbound/record-cache.js';
import type { SharedTable } from '../outbound/shared-table.js';
import { toPrimary, toWorker } from './worker-channel.js';
import type { SightingChange, SightingsTable } from '../outbound/sightings-table.js';

/** Each table's changes. */
interface TableChanges {
  sightings: SightingChange;
  records: ExpiringChange<RememberedRecord>;
  'mta-sts': ExpiringChange<MtaStsPolicy>;
}
export type TableName = keyof TableChanges;

/** Entries the primary keeps of each table of expiring entries (the oldest change goes first); the sightings are kept in their table. */
const MAX_ENTRIES: Record<Exclude<TableName, 'sightings'>, number> = { records: DEFAULT_MAX_RECORDS, 'mta-sts': MAX_MTA_STS_POLICIES };

/** How long a starting worker waits for the primary's changes before it starts from what it has. */
const SNAPSHOT_MS = 5_000;

/** What a worker asks or tells the primary. */
type TableRequest = { blackpony: 'table'; table: TableName; op: 'snapshot' } | { blackpony: 'table'; table: TableName; op: 'change'; change: unknown };
/** What the primary sends a worker. */
type TableMessage = { blackpony: 'table-snapshot'; table: TableName; changes: unknown[] } | { blackpony: 'table-change'; table: TableName; change: unknown };

/** In a worker: one of the primary's tables. */
export class TableFromPrimary<Name extends TableName> implements SharedTable<TableChanges[Name]> {
  constructor(private readonly name: Name) {}

  snapshot(): Promise<TableChanges[Name][] | undefined> {
    return new Promise((resolve) => {
      const done = (changes: TableChanges[Name][] | undefined): void => {
        clearTimeout(timer);
        process.off('message', answer);
        resolve(changes);
      };
      const answer = (message: TableMessage): void => {
        if (message?.blackpony === 'table-snapshot' && message.table === this.name) done(message.changes as TableChanges[Name][]);
      };
      const timer = setTimeout(() => done(undefined), SNAPSHOT_MS);
      process.on('message', answer);
      toPrimary({ blackpony: 'table', table: this.name, op: 'snapshot' } satisfies TableRequest, () => done(undefined));
    });
  }

  publish(change: TableChanges[Name]): void {
    toPrimary({ blackpony: 'table', table: this.name, op: 'change', change } satisfies TableRequest);
  }

  subscribe(apply: (change: TableChanges[Name]) => void): void {
    process.on('message', (message: TableMessage) => {
      if (message?.blackpony === 'table-change' && message.table === this.name) apply(message.change as TableChanges[Name]);
    });
  }
}

/** In the primary: every table, and every worker told each change. */
export class TablesForWorkers {
  private readonly workers = new Set<Worker>();
  /** Per table of expiring entries: the latest change per domain, oldest first. */
  private readonly expiring = new Map<TableName, Map<string, ExpiringChange<unknown>>>();

  /** `sightings`: the table written to the state directory's file, if the workers learn sightings; they start from it. */
  constructor(private readonly sightings: SightingsTable | undefined) {}

  /** Answers `worker` and tells it every change until it exits. */
  serve(worker: Worker): void {
    this.workers.add(worker);
    worker.once('exit', () => this.workers.delete(worker));
    worker.on('message', (message: TableRequest) => {
      if (message?.blackpony !== 'table' || !(message.table === 'sightings' || message.table in MAX_ENTRIES)) return;
      const { table } = message;
      if (message.op === 'snapshot') return toWorker(worker, { blackpony: 'table-snapshot', table, changes: this.changes(table) });
      this.apply(table, message.change);
      for (const each of this.workers) toWorker(each, { blackpony: 'table-change', table, change: message.change });
    });
  }

  /** Resolves once the sightings so far are in their file (a stop). */
  async saved(): Promise<void> {
    await this.sightings?.saved();
  }

  private changes(table: TableName): unknown[] {
    if (table === 'sightings') return this.sightings?.changes() ?? [];
    return [...(this.expiring.get(table)?.values() ?? [])];
  }

  private apply(table: TableName, change: unknown): void {
    if (table === 'sightings') {
      this.sightings?.apply(change as SightingChange);
      return;
    }
    let entries = this.expiring.get(table);
    if (entries === undefined) this.expiring.set(table, (entries = new Map<string, ExpiringChange<unknown>>()));
    const expiring = change as ExpiringChange<unknown>;
    setNewest(entries, expiring.domain, expiring, MAX_ENTRIES[table]);
  }
}
