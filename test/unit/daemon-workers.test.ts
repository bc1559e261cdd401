/** How many worker processes the `workers` setting means (src/daemon/workers.ts). */
import { describe, expect, it } from 'vitest';
import { MAX_AUTO_WORKERS, workerProcessCount } from '../../src/daemon/workers.js';

describe('worker process count', () => {
  it('auto: one per two cores, as Postfix beside it needs the others; at least 1, at most MAX_AUTO_WORKERS', () => {
    const byCores = [1, 2, 3, 4, 6, 8, 16, 64].map((cores) => workerProcessCount('auto', cores));
    expect(byCores).toEqual([1, 1, 1, 2, 3, 4, 4, 4]);
    expect(MAX_AUTO_WORKERS).toBe(4);
  });

  it('a number is taken as it is, whatever the cores', () => {
    expect(workerProcessCount(1, 16)).toBe(1);
    expect(workerProcessCount(3, 2)).toBe(3);
  });
});
