/**
 * What the workers remember of other domains, shared through the primary (src/outbound/
 * shared-table.ts says why): XPONY sightings, `_pony` records within their max-age, MTA-STS
 * policies. A worker sends each change it learns; the primary keeps the latest change per entry
 * and passes every change to every worker, the sender too, in the order it got them, so that all
 * workers end with the same tables. A worker starts from the primary's changes so far. The
 * primary also writes the sightings to their file: one writer for all workers.
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
import { MAX_SIGHTINGS, type SightingChange, type SightingsTable } from '../outbound/sightings-table.js';

/** Each table's changes. */
interface TableChanges {
  sightings: SightingChange;
  records: ExpiringChange<RememberedRecord>;
  'mta-sts': ExpiringChange<MtaStsPolicy>;
}
export type TableName = keyof TableChanges;

/** How the primary tells one entry of a table from another, and how many entries it keeps (the oldest change goes first). */
const TABLES: { [Name in TableName]: { keyOf: (change: TableChanges[Name]) => string; maxEntries: number } } = {
  sightings: { keyOf: (change) => `${'probedAt' in change ? 'probed' : 'seen'} ${change.domain}`, maxEntries: 2 * MAX_SIGHTINGS },
  records: { keyOf: (change) => change.domain, maxEntries: DEFAULT_MAX_RECORDS },
  'mta-sts': { keyOf: (change) => change.domain, maxEntries: MAX_MTA_STS_POLICIES },
};

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
      send({ blackpony: 'table', table: this.name, op: 'snapshot' }, () => done(undefined));
    });
  }

  publish(change: TableChanges[Name]): void {
    send({ blackpony: 'table', table: this.name, op: 'change', change });
  }

  subscribe(apply: (change: TableChanges[Name]) => void): void {
    process.on('message', (message: TableMessage) => {
      if (message?.blackpony === 'table-change' && message.table === this.name) apply(message.change as TableChanges[Name]);
    });
  }
}

function send(message: TableRequest, failed?: () => void): void {
  // A closed channel (the primary is gone) is an answer with nothing, not an error event.
  process.send?.(message, undefined, {}, (error: Error | null) => {
    if (error !== null) failed?.();
  });
}

/** In the primary: every table, and every worker told each change. */
export class TablesForWorkers {
  private readonly workers = new Set<Worker>();
  /** Per table: the latest change per entry, oldest first. */
  private readonly tables = new Map<TableName, Map<string, unknown>>();

  /** `sightings`: the table written to the state directory's file, if the workers learn sightings; they start from it. */
  constructor(private readonly sightings: SightingsTable | undefined) {
    for (const change of sightings?.changes() ?? []) this.keep('sightings', change);
  }

  /** Answers `worker` and tells it every change until it exits. */
  serve(worker: Worker): void {
    this.workers.add(worker);
    worker.once('exit', () => this.workers.delete(worker));
    worker.on('message', (message: TableRequest) => {
      if (message?.blackpony !== 'table' || !(message.table in TABLES)) return;
      const { table } = message;
      if (message.op === 'snapshot') return tell(worker, { blackpony: 'table-snapshot', table, changes: [...(this.tables.get(table)?.values() ?? [])] });
      this.keep(table, message.change);
      if (table === 'sightings') this.sightings?.apply(message.change as SightingChange);
      for (const each of this.workers) tell(each, { blackpony: 'table-change', table, change: message.change });
    });
  }

  /** Resolves once the sightings so far are in their file (a stop). */
  async saved(): Promise<void> {
    await this.sightings?.saved();
  }

  private keep(table: TableName, change: unknown): void {
    const { keyOf, maxEntries } = TABLES[table] as { keyOf: (change: unknown) => string; maxEntries: number };
    let entries = this.tables.get(table);
    if (entries === undefined) this.tables.set(table, (entries = new Map<string, unknown>()));
    setNewest(entries, keyOf(change), change, maxEntries);
  }
}

function tell(worker: Worker, message: TableMessage): void {
  // A worker exiting meanwhile needs no answer.
  if (worker.isConnected()) worker.send(message, undefined, () => undefined);
}
