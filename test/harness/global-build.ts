import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

/**
 * Vitest global setup: build dist/ once (npm run build: the code and the man pages), so CLI tests run
 * what users run, the package tests pack what the build made, and no two tests build at once.
 */
export default function buildOnce(): void {
  const result = spawnSync('npm', ['run', '-s', 'build'], { cwd: resolve(import.meta.dirname, '../..'), encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`build failed before the tests:\n${result.stdout}${result.stderr}`);
}
