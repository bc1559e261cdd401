/**
 * The XPONY sightings themselves (sightings.ts learns them): which domains were seen offering
 * XPONY and until when, which were probed lately, and the state directory's file that keeps the
 * seen ones across a restart. One table per process; with workers, the primary's table is the one
 * written to the file, and each worker's follows it (src/daemon/shared-tables.ts).
 */
import { readFile } from 'node:fs/promises';
import { setNewest } from './bounded-map.js';
import { writeStateFile } from './state-file.js';

export const SIGHTINGS_FILE = 'xpony-sightings.json';
const FILE_VERSION = 1;
/** Domains remembered at most (sightings and recent probes each); the oldest go first. */
const MAX_SIGHTINGS = 100_000;
/**
 * A sighting renewed by less than this past what the file holds is not written again: every new
 * session to a blackpony peer renews its domain's, and each write is two fsyncs. After a restart a
 * sighting then ends at most this much early (sighting_days is one day at least).
 */
export const RENEWAL_WRITTEN_AFTER_MS = 3_600_000;

/** One change to the table, as learned in one process and passed to the others. */
export type SightingChange =
  /** XPONY seen at the domain's MX until then (ms since the epoch), or `null`: seen there no more. */
  | { domain: string; seenUntil: number | null }
  /** The domain was probed (or queued for a probe) then. */
  | { domain: string; probedAt: number };

export interface SightingsTableOptions {
  stateDir: string;
  /** Whether this table writes the file on each change (read only otherwise). */
  persist: boolean;
  maxEntries?: number;
  /** Told when the file cannot be written (the sightings stay in memory). */
  onError?: (error: Error) => void;
  now?: () => number;
}

export class SightingsTable {
  /** domain -> when its sighting expires (ms since the epoch). */
  private readonly seenUntil = new Map<string, number>();
  /** domain -> when it was last probed (or queued for a probe). */
  private readonly probedAt = new Map<string, number>();
  private saving: Promise<void> = Promise.resolve();
  private dirty = false;
  /** domain -> its sighting's end as the file holds it (written or read last). */
  private written = new Map<string, number>();

  private constructor(private readonly options: SightingsTableOptions) {}

  /** Reads the file; a missing or unreadable one starts the table empty (sightings are only hints). */
  static async open(options: SightingsTableOptions): Promise<SightingsTable> {
    const table = SightingsTable.empty(options);
    await table.load();
    return table;
  }

  /** A table with nothing in it yet: a worker's, filled from the primary's (or load() if it cannot be). */
  static empty(options: SightingsTableOptions): SightingsTable {
    return new SightingsTable(options);
  }

  /** Adds the file's sightings that have not expired. */
  async load(): Promise<void> {
    try {
      const stored = JSON.parse(await readFile(`${this.options.stateDir}/${SIGHTINGS_FILE}`, 'utf8')) as { version?: unknown; seen?: unknown };
      if (stored.version === FILE_VERSION && typeof stored.seen === 'object' && stored.seen !== null) {
        for (const [domain, until] of Object.entries(stored.seen as Record<string, unknown>)) {
          if (typeof until !== 'number' || until <= this.now()) continue;
          this.seenUntil.set(domain, until);
          this.written.set(domain, until);
        }
      }
    } catch {
      // Nothing stored yet, or a damaged file: it is rewritten at the next change.
    }
  }

  /** Whether XPONY was seen at the domain's MX and the sighting has not expired. */
  has(domain: string): boolean {
    const until = this.seenUntil.get(domain);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.seenUntil.delete(domain);
    return false;
  }

  /** When the domain was last probed, if it was. */
  lastProbed(domain: string): number | undefined {
    return this.probedAt.get(domain);
  }

  /** Applies a change; returns whether it changed has(domain). */
  apply(change: SightingChange): boolean {
    const { domain } = change;
    if ('probedAt' in change) {
      setNewest(this.probedAt, domain, change.probedAt, this.maxEntries());
      return false;
    }
    const was = this.has(domain);
    if (change.seenUntil === null) this.seenUntil.delete(domain);
    else setNewest(this.seenUntil, domain, change.seenUntil, this.maxEntries());
    // A sighting moved earlier (a shorter sighting_days) is written, as is one the file lacks.
    const ahead = change.seenUntil === null ? undefined : change.seenUntil - (this.written.get(domain) ?? -Infinity);
    if (ahead === undefined || ahead < 0 || ahead >= RENEWAL_WRITTEN_AFTER_MS) this.save();
    return this.has(domain) !== was;
  }

  /** The table as changes: a table they are applied to, in order, is this one. */
  changes(): SightingChange[] {
    return [
      ...[...this.seenUntil].map(([domain, seenUntil]) => ({ domain, seenUntil })),
      ...[...this.probedAt].map(([domain, probedAt]) => ({ domain, probedAt })),
    ];
  }

  /** Replaces the whole table with `changes` applied in order (a worker's, from the primary's). */
  restore(changes: readonly SightingChange[]): void {
    this.seenUntil.clear();
    this.probedAt.clear();
    for (const change of changes) this.apply(change);
  }

  /** Resolves once the changes so far are in the file. */
  async saved(): Promise<void> {
    await this.saving;
  }

  /** Writes the file; writes requested while one runs are folded into one more. */
  private save(): void {
    if (!this.options.persist || this.dirty) return;
    this.dirty = true;
    this.saving = this.saving.then(async () => {
      this.dirty = false;
      const seen: Record<string, number> = {};
      for (const [domain, until] of this.seenUntil) if (until > this.now()) seen[domain] = until;
      await writeStateFile(this.options.stateDir, SIGHTINGS_FILE, `${JSON.stringify({ version: FILE_VERSION, seen })}\n`).then(
        () => (this.written = new Map(Object.entries(seen))),
        (error: unknown) => this.options.onError?.(error instanceof Error ? error : new Error(String(error))),
      );
    });
  }

  private maxEntries(): number {
    return this.options.maxEntries ?? MAX_SIGHTINGS;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}
