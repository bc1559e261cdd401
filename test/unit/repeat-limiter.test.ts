/** The daemon's guard against a log flooded by one failure repeated (src/daemon/repeat-limiter.ts). */
import { describe, expect, it } from 'vitest';
import { RepeatLimiter } from '../../src/daemon/repeat-limiter.js';

describe('RepeatLimiter', () => {
  it('passes one report per key and interval, then says how many it held back', () => {
    let now = 0;
    const limiter = new RepeatLimiter(60_000, () => now);
    expect(limiter.pass('a')).toBe(0);
    expect(limiter.pass('b')).toBe(0); // another key is not held back by the first
    now = 59_999;
    expect(limiter.pass('a')).toBeUndefined();
    expect(limiter.pass('a')).toBeUndefined();
    now = 60_000;
    expect(limiter.pass('a')).toBe(2);
    expect(limiter.pass('a')).toBeUndefined();
    now = 200_000;
    expect(limiter.pass('a')).toBe(1);
    expect(limiter.pass('b')).toBe(0);
  });
});
