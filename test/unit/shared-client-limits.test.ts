/**
 * A worker whose primary does not answer (a stuck one; a primary that dies ends its workers): the
 * connection waiting for the primary's count is refused as over max_clients (421, the client
 * comes back later), rather than held open or let in uncounted (src/daemon/
 * shared-client-limits.ts). The rest of the shared limits is tested against real workers in
 * test/adversity/limits.test.ts.
 */
import { fork } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleTypeScript } from '../harness/typescript-child.js';
import { makeTempDir } from '../harness/temp-dir.js';

interface Outcome {
  outcome: string;
  ms: number;
}

describe('SharedClientLimits: a primary that does not answer', () => {
  let bundle: string;
  beforeAll(async () => {
    bundle = await bundleTypeScript('test/unit/shared-client-limits-child.ts', await makeTempDir('limits-child'));
  });

  /** Runs the worker under a primary that reads its requests and answers none. */
  function silentPrimary(): Promise<{ outcome: Outcome; asked: unknown[] }> {
    return new Promise((resolve, reject) => {
      const asked: unknown[] = [];
      let outcome: Outcome | undefined;
      const child = fork(bundle, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.on('message', (message: unknown) => {
        if (typeof message === 'object' && message !== null && 'outcome' in message) outcome = message as Outcome;
        else asked.push(message);
      });
      child.on('error', reject);
      child.on('exit', (code) => (outcome !== undefined ? resolve({ outcome, asked }) : reject(new Error(`worker exited ${code} without an outcome`))));
    });
  }

  it('refuses the connection as over max_clients once the answer is 5 s late', async () => {
    const { outcome, asked } = await silentPrimary();
    expect(asked).toEqual([{ blackpony: 'limits', op: 'connect', request: 0, address: '192.0.2.1' }]);
    expect(outcome.outcome).toBe('max_clients');
    expect(outcome.ms).toBeGreaterThanOrEqual(4_900);
  });
});
