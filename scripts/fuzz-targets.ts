/**
 * Every fuzz target in one table, shared by the CI test (test/fuzz/fuzz.test.ts) and the long run
 * (scripts/fuzz.ts), and the property each must hold: its check passes for every input its
 * arbitrary makes, within DEADLINE_MS (slower is taken for a hang).
 */
import fc from 'fast-check';
import { AGE_TARGETS } from './fuzz-targets-age.js';
import { FILE_TARGETS } from './fuzz-targets-files.js';
import { PROTOCOL_TARGETS } from './fuzz-targets-protocol.js';
import { DEADLINE_MS, FuzzFailure, type FuzzTarget } from './fuzz-target.js';

export { CORPUS_DIR, loadCorpus, type FuzzTarget } from './fuzz-target.js';

export const FUZZ_TARGETS: readonly FuzzTarget<unknown>[] = [...PROTOCOL_TARGETS, ...AGE_TARGETS, ...FILE_TARGETS];

/** The property a target's check must hold for every input its arbitrary makes. */
export function fuzzProperty(target: FuzzTarget<unknown>): fc.IAsyncProperty<[unknown]> {
  return fc.asyncProperty(target.arbitrary(target.seeds()), async (input) => {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new FuzzFailure(`no answer within ${DEADLINE_MS} ms (a hang)`)), DEADLINE_MS);
    });
    try {
      await Promise.race([target.check(input), deadline]);
    } finally {
      clearTimeout(timer);
    }
    const elapsed = performance.now() - started;
    if (elapsed > DEADLINE_MS) throw new FuzzFailure(`took ${Math.round(elapsed)} ms, limit ${DEADLINE_MS}`);
  });
}

/** A counterexample for a report: bytes as hex, anything else as fast-check prints it. */
export function describeInput(input: unknown): string {
  return input instanceof Uint8Array ? `hex ${Buffer.from(input).toString('hex')} (${input.length} octets)` : fc.stringify(input);
}
