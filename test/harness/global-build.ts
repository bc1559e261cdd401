import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { builtFromCurrentSources } from '../../scripts/build-stamp.js';

/**
 * Vitest global setup: make sure dist/ is built from the current sources (npm run build: every
 * TypeScript file type-checked and compiled, and the man pages), so CLI tests run what users run,
 * the package tests pack what the build made, and no two tests build at once. The build is
 * skipped when dist/build-stamp matches the sources (scripts/build-stamp.ts): a run after
 * `npm ci` or an earlier run compiles nothing.
 */
export default function buildOnce(): void {
  const root = resolve(import.meta.dirname, '../..');
  if (builtFromCurrentSources(root)) return;
  const result = spawnSync('npm', ['run', '-s', 'build'], { cwd: root, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`build failed before the tests:\n${result.stdout}${result.stderr}`);
}
