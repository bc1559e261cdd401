/**
 * A table that more than one process learns into: the daemon's workers (src/daemon/workers.ts),
 * each of which delivers mail and answers lookups by what it remembers of other domains (XPONY
 * sightings, `_pony` records within their max-age, MTA-STS policies). Kept apart, a worker that
 * never saw a domain's record would not hold the domain to it, and a forger who strips the
 * record would get that worker's deliveries. So each change one learns is passed to all. How is
 * the daemon's business (src/daemon/shared-tables.ts); the tables only see this interface.
 */
export interface SharedTable<Change> {
  /** The changes every process learned so far, oldest first; `undefined` if they cannot be had. */
  snapshot(): Promise<Change[] | undefined>;
  /** Passes a change learned here to every process, this one too (through `subscribe`). */
  publish(change: Change): void;
  /** Calls `apply` with each change any process learned, in the one order every process sees. */
  subscribe(apply: (change: Change) => void): void;
}

/**
 * Joins `shared`: `restore` replaces what this process knows with the snapshot, then every
 * change learned anywhere goes to `apply`. Subscribed first: a change sent before the snapshot's
 * answer is in it, one sent after follows it. Resolves with whether there was a snapshot.
 */
export async function joinSharedTable<Change>(
  shared: SharedTable<Change>,
  apply: (change: Change) => void,
  restore: (changes: Change[]) => void,
): Promise<boolean> {
  shared.subscribe(apply);
  const snapshot = await shared.snapshot();
  if (snapshot !== undefined) restore(snapshot);
  return snapshot !== undefined;
}
