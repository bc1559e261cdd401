/**
 * The crypto under Node 24 (installed by .ci/node24), where ML-KEM comes from node:crypto: the
 * crypto unit tests run there in a child vitest, including age-mlkem's native-against-noble group
 * (which must run, not skip: BLACKPONY_EXPECT_NATIVE_MLKEM=1), the C2SP CCTV vectors for the hybrid
 * recipient and the X-Wing cross-check against @noble/post-quantum. Node 20 has no native ML-KEM.
 */
import { dirname, join, resolve } from 'node:path';
import { expect, it } from 'vitest';
import { runCommand } from '../harness/command.js';
import { describeWith, NODE24, NODE24_PATH } from '../harness/requirements.js';
import { waitBound } from '../harness/wait.js';

const PROJECT = resolve(import.meta.dirname, '../..');
/** The child runs a whole vitest beside the parent's workers. */
const CHILD_TIMEOUT_MS = waitBound(600_000);

describeWith([NODE24], 'crypto under Node 24 (native ML-KEM)', () => {
  it(
    'passes the crypto unit tests with the native ML-KEM cross-checked against noble',
    async () => {
      const result = await runCommand(
        NODE24_PATH,
        [join(PROJECT, 'node_modules/vitest/vitest.mjs'), 'run', '--config', 'test/harness/vitest-node24.config.ts'],
        {
          cwd: PROJECT,
          env: { ...process.env, PATH: `${dirname(NODE24_PATH)}:${process.env.PATH ?? ''}`, BLACKPONY_EXPECT_NATIVE_MLKEM: '1', NO_COLOR: '1' },
          timeoutMs: CHILD_TIMEOUT_MS,
        },
      );
      const output = result.stdout + result.stderr;
      expect(output, output).toMatch(/tests: [1-9]\d* passed, 0 failed/);
      expect(output).toMatch(/age-mlkem\.test\.ts/);
      expect(output).not.toMatch(/skipped group: test\/unit\/age-mlkem/);
      expect(result.exitCode, output).toBe(0);
    },
    CHILD_TIMEOUT_MS,
  );
});
