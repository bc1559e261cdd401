/**
 * A worker whose primary does not answer (a stuck one; a primary that dies ends its workers). What
 * it asks the primary it asks with a time limit, and then does the safe thing on its own:
 *
 * - the connection waiting for the primary's count is refused as over max_clients (421, the
 *   client comes back later), rather than held open or let in uncounted, and a lease the
 *   primary grants after that is given back (src/daemon/shared-client-limits.ts);
 * - a worker starting without the other workers' sightings starts from the state file, as one
 *   process would (src/daemon/shared-tables.ts, src/outbound/sightings.ts).
 *
 * The rest of the shared limits is tested against real workers in test/adversity/limits.test.ts,
 * the shared tables in test/integration/transport-lookup.test.ts and shared-table.test.ts.
 */
import { fork } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { SightingsTable } from '../../src/outbound/sightings-table.js';
import { bundleTypeScript } from '../harness/typescript-child.js';
import { makeTempDir } from '../harness/temp-dir.js';

interface Outcome {
  outcome: string;
  ms: number;
}

describe('a worker whose primary does not answer', () => {
  let bundle: string;
  beforeAll(async () => {
    bundle = await bundleTypeScript('test/unit/silent-primary-child.ts', await makeTempDir('silent-primary-child'));
  });

  /**
   * Runs the worker with `args` under a primary that reads its requests and answers none in time;
   * with `lateAnswer`, sends it once the worker has given up and reads what the worker says to it.
   */
  function silentPrimary(args: string[], lateAnswer?: object): Promise<{ outcome: Outcome; asked: unknown[] }> {
    return new Promise((resolve, reject) => {
      const asked: unknown[] = [];
      let outcome: Outcome | undefined;
      const child = fork(bundle, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.on('message', (message: unknown) => {
        if (typeof message === 'object' && message !== null && 'outcome' in message) {
          outcome = message as Outcome;
          if (lateAnswer === undefined) return child.disconnect();
          // The worker's reply to the probe comes after all it says on the late answer.
          child.send(lateAnswer);
          child.send({ probe: true });
        } else if (typeof message === 'object' && message !== null && 'probed' in message) child.disconnect();
        else asked.push(message);
      });
      child.on('error', reject);
      child.on('exit', (code) => (outcome !== undefined ? resolve({ outcome, asked }) : reject(new Error(`worker exited ${code} without an outcome`))));
    });
  }

  it('refuses the connection as over max_clients once the answer is 5 s late', async () => {
    const { outcome, asked } = await silentPrimary(['limits']);
    expect(asked).toEqual([{ blackpony: 'limits', op: 'connect', request: 0, address: '192.0.2.1' }]);
    expect(outcome.outcome).toBe('max_clients');
    expect(outcome.ms).toBeGreaterThanOrEqual(4_900);
  });

  it('gives back a lease the primary grants after the connection was refused', async () => {
    const { outcome, asked } = await silentPrimary(['limits'], { blackpony: 'limits-answer', request: 0, lease: 7 });
    expect(outcome.outcome).toBe('max_clients');
    // Kept, the lease would count against 192.0.2.1 and max_clients until the worker exits.
    expect(asked).toEqual([
      { blackpony: 'limits', op: 'connect', request: 0, address: '192.0.2.1' },
      { blackpony: 'limits', op: 'release', lease: 7 },
    ]);
  });

  it("starts from the sightings' file once the other workers' sightings are 5 s late", async () => {
    const stateDir = await makeTempDir('silent-primary-state');
    const file = SightingsTable.empty({ stateDir, persist: true });
    file.apply({ domain: 'example.org', seenUntil: Date.now() + 3_600_000 });
    await file.saved();
    const { outcome, asked } = await silentPrimary(['sightings', stateDir]);
    expect(asked).toEqual([{ blackpony: 'table', table: 'sightings', op: 'snapshot' }]);
    expect(outcome.outcome).toBe('seen');
    expect(outcome.ms).toBeGreaterThanOrEqual(4_900);
  });
});
