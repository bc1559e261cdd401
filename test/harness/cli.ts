import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { HarnessTimeoutError } from './errors.js';
import { waitBound } from './wait.js';

export const PROJECT_ROOT = resolve(import.meta.dirname, '../..');

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** A fresh working directory for CLI tests (the caller removes it). */
export function cliWorkDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `blackpony-${name}-`));
}

/**
 * Runs the built CLI as users run it, `node bin/blackpony.js ARGS`, in `cwd` (dist/ is built by the
 * global setup), with `env` added to the test's environment.
 */
export function runCli(cwd: string, args: readonly string[], env: Record<string, string> = {}): CliRun {
  const timeoutMs = waitBound();
  const result = spawnSync(process.execPath, [join(PROJECT_ROOT, 'bin/blackpony.js'), ...args], {
    cwd,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, ...env },
  });
  if (result.error !== undefined)
    throw new HarnessTimeoutError(`blackpony ${args.join(' ')}`, timeoutMs, `${result.error.message}\n${result.stdout}${result.stderr}`);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A failure is one line on stderr, no stack trace, nothing on stdout, exit code 1. */
export function expectOneLineFailure(run: CliRun, message: string | RegExp): void {
  expect(run.status).toBe(1);
  expect(run.stdout).toBe('');
  expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  if (typeof message === 'string') expect(run.stderr).toBe(`${message}\n`);
  else expect(run.stderr.trimEnd()).toMatch(message);
}
