import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliWorkDir, PROJECT_ROOT, runCli, type CliRun } from '../harness/cli.js';
import { parseConfig } from '../../src/daemon/config.js';
import { describeWith, executable } from '../harness/requirements.js';

let dir: string;

const blackpony = (...args: string[]): CliRun => runCli(dir, args);

function writeConfig(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

beforeAll(() => {
  dir = cliWorkDir('cli-config');
  const keygen = blackpony('--log-level', 'error', 'keygen', '--out', 'keys');
  if (keygen.status !== 0) throw new Error(`keygen failed: ${keygen.stderr}`);
});

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('blackpony default-config', () => {
  it('prints the commented configuration, which check-config accepts once hostname and keys are set', () => {
    const run = blackpony('default-config');
    expect(run.status).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^# blackpony configuration/);
    const filled = run.stdout.replace(/^# hostname: .*$/m, 'hostname: mail.example.org').replace(/^# keys: .*$/m, 'keys: keys');
    expect(parseConfig(filled, { path: join(dir, 'config.yaml') })).toEqual(parseConfig(`hostname: mail.example.org\nkeys: ${join(dir, 'keys')}\n`));
    const check = blackpony('check-config', writeConfig('default.yaml', filled));
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
    expect(check.stdout.split('\n')[0]).toBe('ok');
  });

  it("is what README.md's configuration reference shows, word for word", () => {
    const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
    const block = /^```yaml\n(# blackpony configuration[\s\S]*?)^```$/m.exec(readme)?.[1];
    expect(block, 'README.md: a ```yaml block starting "# blackpony configuration"').toBeDefined();
    expect(block).toBe(blackpony('default-config').stdout);
  });

  it('shows an example in --help', () => {
    const help = blackpony('default-config', '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('blackpony default-config > /etc/blackpony/config.yaml');
  });
});

describe('blackpony check-config', () => {
  it('prints ok and a summary of what runs where, with the key fingerprint', () => {
    const run = blackpony(
      'check-config',
      writeConfig('good.yaml', 'hostname: mail.example.org\nkeys: keys\ninbound: {listen: systemd}\nmetrics: {listen: ""}\n'),
    );
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines).toEqual([
      'ok',
      'hostname: mail.example.org',
      'inbound: listens on the systemd socket, delivers to Postfix at 127.0.0.1:10025',
      'outbound: listens on 127.0.0.1:10587 (lmtp)',
      'metrics: off',
      'state dir: /var/lib/blackpony',
      expect.stringMatching(new RegExp(`^keys: ${join(dir, 'keys')} \\(fingerprint \\S+\\)$`)),
    ]);
  });

  it('summarises a disabled side and IPv6 addresses', () => {
    const run = blackpony(
      'check-config',
      writeConfig(
        'outbound-only.yaml',
        'hostname: mail.example.org\nkeys: keys\ninbound: {enabled: false}\noutbound: {listen: "[::1]:2525", protocol: lmtp}\n',
      ),
    );
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('\ninbound: disabled\n');
    expect(run.stdout).toContain('\noutbound: listens on [::1]:2525 (lmtp)\n');
  });

  it('prints every problem on its own line and exits 1', () => {
    const run = blackpony(
      'check-config',
      writeConfig('bad.yaml', 'hostname: mail.example.org\nkeys: keys\ninbound: {listen: abc, max_clients: 0}\noutbound: {listen: "0.0.0.0:10587"}\n'),
    );
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(run.stderr.trimEnd().split('\n')).toEqual([
      'blackpony: check-config: config: inbound.listen: expected HOST:PORT or "systemd", got "abc" (no port)',
      'blackpony: check-config: config: inbound.max_clients: expected 1-100000, got 0',
      'blackpony: check-config: config: outbound.listen: expected a loopback address (127.0.0.1, [::1] or localhost), got "0.0.0.0:10587": anyone who can reach it could relay mail through this host',
    ]);
  });

  it('says when the MTA behind is not told the client (client_identity none, for sendmail)', () => {
    const run = blackpony(
      'check-config',
      writeConfig(
        'sendmail.yaml',
        'hostname: mail.example.org\nkeys: keys\ninbound: {postfix: "127.0.0.1:10026", client_identity: none, source_address: 127.0.0.25}\n',
      ),
    );
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain(
      "inbound: listens on 0.0.0.0:25, delivers to 127.0.0.1:10026 from 127.0.0.25 without the client's address (client_identity none: that MTA judges 127.0.0.25)\n",
    );
  });

  it('reports a YAML syntax error with its file and line', () => {
    const file = writeConfig('syntax.yaml', 'hostname: mail.example.org\nkeys: keys\ninbound:\n  listen: "unterminated\n');
    const run = blackpony('check-config', file);
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(`blackpony: check-config: config: ${file}: line 5, column 1: Missing closing "quote\n`);
  });

  it('checks the key file unless --no-keys', () => {
    const missingKeys = writeConfig('missing-keys.yaml', 'hostname: mail.example.org\nkeys: no-such-keys\n');
    const run = blackpony('check-config', missingKeys);
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`blackpony: check-config: ${join(dir, 'no-such-keys')} does not exist\n`);
    const skipped = blackpony('check-config', '--no-keys', missingKeys);
    expect(skipped.status).toBe(0);
    expect(skipped.stdout).toMatch(/^ok\n/);
    expect(skipped.stdout).not.toContain('keys:');

    writeFileSync(join(dir, 'open-keys'), 'not a key file\n');
    chmodSync(join(dir, 'open-keys'), 0o644);
    const open = blackpony('check-config', writeConfig('open-keys.yaml', 'hostname: mail.example.org\nkeys: open-keys\n'));
    expect(open.status).toBe(1);
    expect(open.stderr).toMatch(/^blackpony: check-config: .*open-keys is accessible by group or others/);

    writeFileSync(join(dir, 'garbage-keys'), 'not a key file\n', { mode: 0o600 });
    const garbage = blackpony('check-config', writeConfig('garbage-keys.yaml', 'hostname: mail.example.org\nkeys: garbage-keys\n'));
    expect(garbage.status).toBe(1);
    expect(garbage.stderr).toMatch(/^blackpony: check-config: .*garbage-keys: line 1: /);
    expect(garbage.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('names a missing configuration file', () => {
    const run = blackpony('check-config', 'nowhere.yaml');
    expect(run.status).toBe(1);
    expect(run.stderr).toBe('blackpony: check-config: config: nowhere.yaml: does not exist\n');
  });

  it('shows an example in --help', () => {
    const help = blackpony('check-config', '--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('blackpony check-config /etc/blackpony/config.yaml');
    expect(help.stdout).toContain('--no-keys');
  });
});

describeWith([executable('openssl', '/usr/bin/openssl')], 'blackpony check-config with STARTTLS files', () => {
  function selfSigned(name: string): void {
    const made = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=mail.example.org',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.pem`,
      ],
      { cwd: dir, encoding: 'utf8' },
    );
    if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr}`);
  }

  it('accepts a matching certificate and key, and names the problem with a mismatched or missing one', () => {
    selfSigned('one');
    selfSigned('two');
    const good = blackpony(
      'check-config',
      '--no-keys',
      writeConfig('tls.yaml', 'hostname: mail.example.org\nkeys: keys\ninbound: {tls: {cert: one.pem, key: one.key}}\n'),
    );
    expect(good.stderr).toBe('');
    expect(good.status).toBe(0);
    expect(good.stdout).toContain(`\ntls: ${join(dir, 'one.pem')}\n`);

    const mismatched = blackpony(
      'check-config',
      '--no-keys',
      writeConfig('tls-mismatch.yaml', 'hostname: mail.example.org\nkeys: keys\ninbound: {tls: {cert: one.pem, key: two.key}}\n'),
    );
    expect(mismatched.status).toBe(1);
    expect(mismatched.stderr).toMatch(/^blackpony: check-config: inbound\.tls: .*key values mismatch.*\n$/);

    const missing = blackpony(
      'check-config',
      '--no-keys',
      writeConfig('tls-missing.yaml', 'hostname: mail.example.org\nkeys: keys\ninbound: {tls: {cert: none.pem, key: one.key}}\n'),
    );
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^blackpony: check-config: inbound\.tls: ENOENT.*none\.pem.*\n$/);
  });
});
