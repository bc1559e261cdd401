import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliWorkDir, expectOneLineFailure, runCli, type CliRun } from '../harness/cli.js';
import { base64 } from '@scure/base';
import { fingerprint } from '../../src/crypto/fingerprint.js';
import { openPinStore } from '../../src/outbound/pins.js';

let dir: string;

const blackpony = (...args: string[]): CliRun => runCli(dir, args);

const ALICE = base64.decode('hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=');
const BOB = base64.decode('3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=');
const DAY = 86_400_000;

beforeAll(() => {
  dir = cliWorkDir('cli-pins');
});

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('blackpony pins', () => {
  it('is listed in the help, and has its own help with examples and the default state dir', () => {
    expect(blackpony('--help').stdout).toMatch(/\bpins\b/);
    const help = blackpony('pins', '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/list .*\n.*show .*\n.*forget /s);
    expect(help.stdout).toContain('blackpony pins forget example.org');
    const list = blackpony('pins', 'list', '--help');
    expect(list.stdout).toContain('--state-dir <dir>');
    expect(list.stdout).toContain('/var/lib/blackpony');
    for (const sub of ['list', 'show', 'forget', 'prune']) expect(blackpony('pins', sub, '--help').stdout).toContain(`Example:\n  blackpony pins ${sub} `);
  });

  it('lists nothing in a new state dir, without creating anything', () => {
    const state = join(dir, 'empty');
    mkdirSync(state);
    const run = blackpony('pins', 'list', '--state-dir', state);
    expect(run).toEqual({ status: 0, stdout: `no pins in ${join(state, 'pins')}\n`, stderr: '' });
    expect(existsSync(join(state, 'pins'))).toBe(false);
  });

  it('names a state dir that does not exist instead of reporting no pins (a mistyped --state-dir)', () => {
    const state = join(dir, 'typo');
    for (const sub of ['list', 'prune']) {
      expectOneLineFailure(
        blackpony('pins', sub, '--state-dir', state),
        new RegExp(`^blackpony: pins ${sub}: state directory ${state.replaceAll('/', '\\/')} does not exist`),
      );
    }
    expect(existsSync(state)).toBe(false);
  });

  it('lists and shows pins with fingerprints and expiry dates; forgets them', async () => {
    const state = join(dir, 'state');
    const store = await openPinStore(state);
    const now = new Date();
    const seen = new Date(now.getTime() - DAY);
    await store.pin('example.test', ALICE, 30, seen);
    await store.pin('example.test', BOB, 60, now);
    await store.pin('old.test', BOB, 1, new Date(now.getTime() - 10 * DAY));

    const list = blackpony('pins', 'list', '--state-dir', state);
    expect(list.status).toBe(0);
    expect(list.stderr).toBe('');
    expect(list.stdout).toBe(
      `example.test: 2 keys, expires ${new Date(now.getTime() + 60 * DAY).toISOString()}\n` +
        `  ${fingerprint(ALICE)}  last seen ${seen.toISOString()}  expires ${new Date(seen.getTime() + 30 * DAY).toISOString()}\n` +
        `  ${fingerprint(BOB)}  last seen ${now.toISOString()}  expires ${new Date(now.getTime() + 60 * DAY).toISOString()}\n` +
        `old.test: 1 key, expires ${new Date(now.getTime() - 9 * DAY).toISOString()} (expired)\n` +
        `  ${fingerprint(BOB)}  last seen ${new Date(now.getTime() - 10 * DAY).toISOString()}  expires ${new Date(now.getTime() - 9 * DAY).toISOString()} (expired)\n`,
    );

    const show = blackpony('pins', 'show', 'Example.Test', '--state-dir', state);
    expect(show.status).toBe(0);
    expect(show.stdout).toContain('domain:      example.test\n');
    expect(show.stdout).toContain(`key:         ${base64.encode(ALICE)}\nfingerprint: ${fingerprint(ALICE)}\nfirst seen:  ${seen.toISOString()}\n`);
    expect(show.stdout).toContain(`key:         ${base64.encode(BOB)}\n`);

    const prune = blackpony('pins', 'prune', '--state-dir', state);
    expect(prune).toEqual({ status: 0, stdout: 'removed expired pin for old.test\n', stderr: '' });

    const forget = blackpony('pins', 'forget', 'example.test', '--state-dir', state);
    expect(forget.status).toBe(0);
    expect(forget.stdout).toMatch(/^forgot the pin for example\.test/);
    expect(await store.get('example.test')).toBeNull();
    expectOneLineFailure(blackpony('pins', 'show', 'example.test', '--state-dir', state), /^blackpony: pins show: no pin for example\.test$/);
    expectOneLineFailure(blackpony('pins', 'forget', 'example.test', '--state-dir', state), /^blackpony: pins forget: no pin for example\.test$/);
  });

  it('reports a corrupt pin file: list marks it, show fails in one line, forget clears it', async () => {
    const state = join(dir, 'corrupt');
    const store = await openPinStore(state);
    await store.pin('broken.test', ALICE, 30);
    writeFileSync(join(state, 'pins', 'broken.test.json'), '{"version":1,');
    const list = blackpony('pins', 'list', '--state-dir', state);
    expect(list.status).toBe(0);
    expect(list.stdout).toMatch(
      /^broken\.test: CORRUPT: pin file .*broken\.test\.json: not valid JSON \(clear it with: blackpony pins forget broken\.test\)\n$/,
    );
    expectOneLineFailure(blackpony('pins', 'show', 'broken.test', '--state-dir', state), /^blackpony: pins show: pin file .*: not valid JSON/);
    expect(blackpony('pins', 'forget', 'broken.test', '--state-dir', state).status).toBe(0);
    expect(blackpony('pins', 'list', '--state-dir', state).stdout).toMatch(/^no pins in /);
  });

  it('refuses a domain that is not a host name, in one line', () => {
    expectOneLineFailure(
      blackpony('pins', 'show', '../etc/passwd', '--state-dir', join(dir, 'state')),
      /^blackpony: pins show: pin store: domain "\.\.\/etc\/passwd": not a valid domain name$/,
    );
    expectOneLineFailure(blackpony('pins', 'forget', 'a/b.test', '--state-dir', join(dir, 'state')), /not a valid domain name/);
  });

  it('a missing argument is one line and exit 1', () => {
    const run = blackpony('pins', 'show');
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/missing required argument 'domain'/);
  });
});
