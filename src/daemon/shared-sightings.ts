/**
 * XPONY sightings (src/outbound/sightings.ts) shared by all workers. A worker learns a sighting
 * from a session or a probe it made; kept to itself, the other workers would go on routing that
 * domain to Postfix, probe it again, and all would write the one state file, the last writer
 * winning. So the primary (workers.ts) holds the table that is written to the file; a worker sends
 * it each change it learns, and the primary passes every change to every worker, the sender too,
 * in the order it got them, so that all workers end with the same table. A worker starts from the
 * primary's table.
 */
import type { Worker } from 'node:cluster';
import type { SharedSightings } from '../outbound/sightings.js';
import { SightingsTable, type SightingChange, type SightingsSnapshot } from '../outbound/sightings-table.js';

/** How long a starting worker waits for the primary's table before it reads the file instead. */
const SNAPSHOT_MS = 5_000;

/** What a worker asks or tells the primary. */
type SightingsRequest = { blackpony: 'sightings'; op: 'snapshot' } | { blackpony: 'sightings'; op: 'change'; change: SightingChange };
/** What the primary sends a worker. */
type SightingsMessage = { blackpony: 'sightings-snapshot'; snapshot: SightingsSnapshot } | { blackpony: 'sightings-change'; change: SightingChange };

/** In a worker: the primary's table. */
export class SightingsFromPrimary implements SharedSightings {
  snapshot(): Promise<SightingsSnapshot | undefined> {
    return new Promise((resolve) => {
      const done = (snapshot: SightingsSnapshot | undefined): void => {
        clearTimeout(timer);
        process.off('message', answer);
        resolve(snapshot);
      };
      const answer = (message: SightingsMessage): void => {
        if (message?.blackpony === 'sightings-snapshot') done(message.snapshot);
      };
      const timer = setTimeout(() => done(undefined), SNAPSHOT_MS);
      process.on('message', answer);
      send({ blackpony: 'sightings', op: 'snapshot' }, () => done(undefined));
    });
  }

  publish(change: SightingChange): void {
    send({ blackpony: 'sightings', op: 'change', change });
  }

  subscribe(apply: (change: SightingChange) => void): void {
    process.on('message', (message: SightingsMessage) => {
      if (message?.blackpony === 'sightings-change') apply(message.change);
    });
  }
}

function send(message: SightingsRequest, failed?: () => void): void {
  // A closed channel (the primary is gone) is an answer with nothing, not an error event.
  process.send?.(message, undefined, {}, (error: Error | null) => {
    if (error !== null) failed?.();
  });
}

/** In the primary: the one table, written to the state directory's file, and every worker told each change. */
export class SightingsForWorkers {
  private readonly workers = new Set<Worker>();

  private constructor(private readonly table: SightingsTable) {}

  static async open(stateDir: string, onError: (error: Error) => void): Promise<SightingsForWorkers> {
    return new SightingsForWorkers(await SightingsTable.open({ stateDir, persist: true, onError }));
  }

  /** Answers `worker` and tells it every change until it exits. */
  serve(worker: Worker): void {
    this.workers.add(worker);
    worker.once('exit', () => this.workers.delete(worker));
    worker.on('message', (message: SightingsRequest) => {
      if (message?.blackpony !== 'sightings') return;
      if (message.op === 'snapshot') return tell(worker, { blackpony: 'sightings-snapshot', snapshot: this.table.snapshot() });
      this.table.apply(message.change);
      for (const each of this.workers) tell(each, { blackpony: 'sightings-change', change: message.change });
    });
  }

  /** Resolves once the changes so far are in the file (a stop). */
  saved(): Promise<void> {
    return this.table.saved();
  }
}

function tell(worker: Worker, message: SightingsMessage): void {
  // A worker exiting meanwhile needs no answer.
  if (worker.isConnected()) worker.send(message, undefined, () => undefined);
}
