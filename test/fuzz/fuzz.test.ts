/**
 * A short fuzz of every parser (scripts/fuzz-targets.ts): random bytes and mutations of the seed
 * corpus in test/fuzz/corpus, plus generated values through each serializer and back. The long
 * run is `node dist/scripts/fuzz.js --seconds N`; a failure here prints the seed that replays it.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { FUZZ_TARGETS, fuzzProperty } from '../../scripts/fuzz-targets.js';

/** Runs per target: the whole file stays well under 20 s on two cores. */
const RUNS = 200;

describe('fuzz', () => {
  for (const target of FUZZ_TARGETS) {
    it(`${target.name}: only typed errors, no hang, round trips hold`, async () => {
      await fc.assert(fuzzProperty(target), { numRuns: RUNS });
    });
  }
});
