import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Real MTAs and sockets: two cores, so keep parallel files modest.
    maxWorkers: 2,
    reporters: ['default', './test/harness/skip-reporter.ts'],
    globalSetup: ['./test/harness/global-build.ts'],
  },
});
