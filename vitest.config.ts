import { defineConfig } from 'vitest/config';
import { waitBound } from './test/harness/wait.js';

/** A whole test or hook on a quiet machine, at most: several waits, or a package built and installed. */
const TEST_BOUND_MS = 600_000;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Upper bounds only, so that a hang fails instead of blocking the run (tests wait on events,
    // each wait bounded by test/harness/wait.ts): generous, and longer on a loaded machine.
    testTimeout: waitBound(TEST_BOUND_MS),
    hookTimeout: waitBound(TEST_BOUND_MS),
    // Real MTAs and sockets: two cores, so keep parallel files modest.
    maxWorkers: 2,
    reporters: ['default', './test/harness/skip-reporter.ts'],
    globalSetup: ['./test/harness/global-build.ts'],
  },
});
