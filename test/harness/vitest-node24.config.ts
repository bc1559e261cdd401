import { resolve } from 'node:path';
import { defineConfig } from 'vitest/config';
import { waitBound } from './wait.js';

/**
 * The crypto unit tests (and the protocol tests over them), as test/unit/node24-crypto.test.ts
 * runs them under Node 24. No global build: the parent run has built dist/ already.
 */
export default defineConfig({
  root: resolve(import.meta.dirname, '../..'),
  test: {
    include: [
      'test/unit/age-*.test.ts',
      'test/unit/noise-*.test.ts',
      'test/unit/primitives.test.ts',
      'test/unit/keyfile.test.ts',
      'test/unit/fingerprint.test.ts',
      'test/unit/pony-record.test.ts',
      'test/unit/sealed-message.test.ts',
      'test/unit/protocol-*.test.ts',
      'test/unit/fuzz-regressions.test.ts',
    ],
    testTimeout: waitBound(),
    // It runs beside the parent's own workers on two cores.
    maxWorkers: 1,
    reporters: ['default', './test/harness/skip-reporter.ts'],
  },
});
