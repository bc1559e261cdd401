/**
 * The primary's part of a shared table (src/daemon/shared-tables.ts) within one process, for unit
 * tests of the tables that share: each change goes to every member, the sender too, in the order
 * published, on a later turn (as over IPC); a snapshot is every change so far.
 */
import type { SharedTable } from '../../src/outbound/shared-table.js';

export interface SharedTableHub<Change> {
  member(): SharedTable<Change>;
  /** Resolves once every change published so far has reached every member. */
  settled(): Promise<void>;
}

export function sharedTableHub<Change>(): SharedTableHub<Change> {
  const changes: Change[] = [];
  const members: ((change: Change) => void)[] = [];
  let delivering: Promise<void> = Promise.resolve();
  return {
    member: () => ({
      snapshot: () => delivering.then(() => [...changes]),
      publish: (change) => {
        delivering = delivering.then(() => {
          changes.push(change);
          for (const apply of members) apply(change);
        });
      },
      subscribe: (apply) => {
        members.push(apply);
      },
    }),
    settled: () => delivering,
  };
}
