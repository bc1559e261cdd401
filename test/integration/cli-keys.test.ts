import { chmodSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliWorkDir, expectOneLineFailure, PROJECT_ROOT, runCli, type CliRun } from '../harness/cli.js';
import { fingerprint } from '../../src/crypto/fingerprint.js';
import { loadKeyFile } from '../../src/crypto/keyfile.js';
import { parsePonyRecord, selectPonyRecord } from '../../src/crypto/pony-record.js';
import { startDns } from '../harness/dnsmasq.js';
import { DNSMASQ, describeWith } from '../harness/requirements.js';
import { parseMtaStsPolicy } from '../../src/outbound/mta-sts-policy.js';

let dir: string;

const blackpony = (...args: string[]): CliRun => runCli(dir, args);

beforeAll(() => {
  dir = cliWorkDir('cli-keys');
});

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('blackpony', () => {
  it('prints its version and its commands', () => {
    const version = blackpony('--version');
    expect(version.status).toBe(0);
    expect(version.stdout).toBe(`${(JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version}\n`);
    const help = blackpony('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: blackpony /);
    expect(help.stdout).toMatch(/keygen .*\n.*dns-record /s);
  });
});

describe('blackpony keygen', () => {
  it('logs readable lines with --pretty, and nothing below --log-level', () => {
    const pretty = blackpony('--pretty', 'keygen', '--out', 'keys-pretty');
    expect(pretty.status).toBe(0);
    expect(pretty.stderr).toMatch(/INFO.*key file created/);
    expect(() => JSON.parse(pretty.stderr.split('\n')[0]!)).toThrow();
    const quiet = blackpony('--log-level', 'warn', 'keygen', '--out', 'keys-quiet');
    expect(quiet.status).toBe(0);
    expect(quiet.stderr).toBe('');
    const bad = blackpony('--log-level', 'loud', 'keygen', '--out', 'keys-bad');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--log-level.*loud.*Allowed choices/s);
  });

  it('creates a 0600 key file and prints its public half', async () => {
    const run = blackpony('keygen', '--out', 'keys');
    expect(run.status).toBe(0);
    const path = join(dir, 'keys');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const keys = await loadKeyFile(path);
    // Not a terminal: the log is one JSON object per line on stderr, never the secret.
    const logLines = run.stderr.trimEnd().split('\n');
    expect(logLines).toHaveLength(1);
    const logged = JSON.parse(logLines[0]!) as Record<string, unknown>;
    expect(logged).toMatchObject({ level: 30, name: 'blackpony', event: 'keygen', path: 'keys', fingerprint: fingerprint(keys.noise.publicKey) });
    expect(run.stderr).not.toContain('AGE-SECRET-KEY');
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('wrote keys (mode 0600): keep it secret and back it up');
    expect(lines.slice(1)).toEqual([
      `noise public key:     ${Buffer.from(keys.noise.publicKey).toString('base64')}`,
      `fingerprint:          ${fingerprint(keys.noise.publicKey)}`,
      `age recipient:        ${keys.ageX25519Recipient}`,
      `age hybrid recipient: ${keys.ageHybridRecipient}`,
    ]);
    expect(keys.ageX25519Recipient).toMatch(/^age1[02-9ac-hj-np-z]{58}$/);
    expect(keys.ageHybridRecipient).toMatch(/^age1pq1/);
    expect(run.stdout).not.toContain('AGE-SECRET-KEY');
  });

  it('refuses to overwrite an existing file, leaving it as it was', () => {
    const path = join(dir, 'keys-once');
    expect(blackpony('keygen', '--out', path).status).toBe(0);
    const before = readFileSync(path, 'utf8');
    expectOneLineFailure(blackpony('keygen', '--out', path), `blackpony: keygen: ${path} exists; refusing to overwrite`);
    expect(readFileSync(path, 'utf8')).toBe(before);
  });

  it('requires --out and has no way to force an overwrite', () => {
    const missing = blackpony('keygen');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/required option '--out <file>' not specified/);
    const force = blackpony('keygen', '--out', 'x', '--force');
    expect(force.status).toBe(1);
    expect(force.stderr).toMatch(/unknown option '--force'/);
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });

  it('--rotate writes new keys that keep the old Noise key (and its previous ones, at most 2) and prints them', async () => {
    expect(blackpony('keygen', '--out', 'rot-0').status).toBe(0);
    const first = blackpony('keygen', '--out', 'rot-1', '--rotate', 'rot-0');
    expect(first.status).toBe(0);
    const [k0, k1] = await Promise.all([loadKeyFile(join(dir, 'rot-0')), loadKeyFile(join(dir, 'rot-1'))]);
    expect(statSync(join(dir, 'rot-1')).mode & 0o777).toBe(0o600);
    expect(k1.noise.privateKey).not.toEqual(k0.noise.privateKey);
    expect(k1.ageX25519Identity).not.toBe(k0.ageX25519Identity); // sealing is per delivery: nothing in flight needs the old one
    expect(k1.previousNoise).toEqual([k0.noise]);
    const b64 = (key: Uint8Array) => Buffer.from(key).toString('base64');
    expect(first.stdout.trimEnd().split('\n').slice(-1)).toEqual([
      `previous noise key:   ${b64(k0.noise.publicKey)} (${fingerprint(k0.noise.publicKey)}), vouches for the new key`,
    ]);
    expect(first.stdout).not.toMatch(/AGE-SECRET-KEY|noise-static/);
    expect(blackpony('keygen', '--out', 'rot-2', '--rotate', 'rot-1').status).toBe(0);
    expect(blackpony('keygen', '--out', 'rot-3', '--rotate', 'rot-2').status).toBe(0);
    const [k2, k3] = await Promise.all([loadKeyFile(join(dir, 'rot-2')), loadKeyFile(join(dir, 'rot-3'))]);
    expect(k2.previousNoise).toEqual([k1.noise, k0.noise]);
    expect(k3.previousNoise).toEqual([k2.noise, k1.noise]);
  });

  it('--rotate refuses an unreadable old key file and writes nothing', () => {
    expectOneLineFailure(blackpony('keygen', '--out', 'rot-none', '--rotate', 'no-such-file'), 'blackpony: keygen: no-such-file does not exist');
    expect(existsSync(join(dir, 'rot-none'))).toBe(false);
  });

  it('shows an example in --help', () => {
    const run = blackpony('keygen', '--help');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('Example:\n  blackpony keygen --out /etc/blackpony/keys');
  });
});

describe('blackpony dns-record', () => {
  let keyPath: string;

  beforeAll(() => {
    keyPath = join(dir, 'dns-keys');
    expect(blackpony('keygen', '--out', keyPath).status).toBe(0);
  });

  it('prints the exact zone-file line for the key file', async () => {
    const keys = await loadKeyFile(keyPath);
    const run = blackpony('dns-record', '--key', keyPath, '--domain', 'example.org', '--policy', 'enforce');
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const noise = Buffer.from(keys.noise.publicKey).toString('base64');
    expect(run.stdout).toBe(
      [
        `_pony.example.org. 3600 IN TXT "v=pony1; n=${noise}; a=${keys.ageX25519Recipient}; p=enforce"`,
        '; if the domain has an MTA-STS policy, add to https://mta-sts.example.org/.well-known/mta-sts.txt (stronger evidence than DNS):',
        `; pony-key: ${noise}`,
        '',
      ].join('\n'),
    );
    // What it says to add is a policy field blackpony reads back.
    const policy = parseMtaStsPolicy(
      'example.org',
      '1',
      `version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\n${run.stdout.split('\n')[2]!.slice(2)}\n`,
    );
    expect(policy.ponyKeys).toEqual([keys.noise.publicKey]);
  });

  it('takes --ttl and --max-age, defaults to p=testing, and the value parses back', async () => {
    const keys = await loadKeyFile(keyPath);
    const run = blackpony('dns-record', '--key', keyPath, '--domain', 'Mail.Example.NET.', '--ttl', '300', '--max-age', '86400');
    expect(run.status).toBe(0);
    const match = /^_pony\.mail\.example\.net\. 300 IN TXT "([^"]*)"\n(; [^\n]*\n)+$/.exec(run.stdout);
    expect(match).not.toBeNull();
    expect(parsePonyRecord(match![1]!)).toEqual({
      noiseKeys: [keys.noise.publicKey],
      ageRecipient: keys.ageX25519Recipient,
      policy: 'testing',
      maxAge: 86400,
    });
  });

  it('adds relay=sealed with --sealed-relay, and the value parses back', async () => {
    const run = blackpony('dns-record', '--key', keyPath, '--domain', 'example.org', '--policy', 'enforce', '--sealed-relay', '--value');
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/; p=enforce; relay=sealed\n$/);
    expect(parsePonyRecord(run.stdout.trim()).sealedRelay).toBe(true);
  });

  it('publishes the next key too during a rollover, current key first', async () => {
    const nextPath = join(dir, 'next-keys');
    expect(blackpony('keygen', '--out', nextPath).status).toBe(0);
    const [current, next] = [await loadKeyFile(keyPath), await loadKeyFile(nextPath)];
    const run = blackpony('dns-record', '--key', keyPath, '--next-key', nextPath, '--domain', 'example.org', '--max-age', '604800');
    expect(run.status).toBe(0);
    const value = /"([^"]*)"/.exec(run.stdout)![1]!;
    expect(parsePonyRecord(value)).toEqual({
      noiseKeys: [current.noise.publicKey, next.noise.publicKey],
      ageRecipient: current.ageX25519Recipient,
      policy: 'testing',
      maxAge: 604800,
    });
    expectOneLineFailure(
      blackpony('dns-record', '--key', keyPath, '--next-key', keyPath, '--domain', 'example.org'),
      'blackpony: dns-record: _pony record: n: key 2 repeats an earlier key',
    );
  });

  it('refuses a key file readable by others, saying how to fix it', () => {
    const path = join(dir, 'open-keys');
    expect(blackpony('keygen', '--out', path).status).toBe(0);
    chmodSync(path, 0o644);
    expectOneLineFailure(
      blackpony('dns-record', '--key', path, '--domain', 'example.org'),
      `blackpony: dns-record: ${path} is accessible by group or others (mode 0644); a key file must be private: chmod 600 ${path}\n`.trimEnd(),
    );
  });

  it('fails with one line for a missing key file, a bad domain or a bad option value', () => {
    expectOneLineFailure(
      blackpony('dns-record', '--key', join(dir, 'nope'), '--domain', 'example.org'),
      `blackpony: dns-record: ${join(dir, 'nope')} does not exist`,
    );
    expectOneLineFailure(
      blackpony('dns-record', '--key', keyPath, '--domain', 'not a domain'),
      'blackpony: dns-record: _pony record: domain "not a domain" is not a valid domain name',
    );
    expectOneLineFailure(blackpony('dns-record', '--key', keyPath, '--domain', 'example.org', '--policy', 'strict'), /--policy.*strict.*enforce, testing/);
    expectOneLineFailure(blackpony('dns-record', '--key', keyPath, '--domain', 'example.org', '--ttl', '1h'), /--ttl.*expected whole seconds/);
    // Beyond the bound by a little or by many digits: the same message, naming the bound.
    for (const maxAge of ['31557601', '99999999999', '-1']) {
      expectOneLineFailure(
        blackpony('dns-record', '--key', keyPath, '--domain', 'example.org', '--max-age', maxAge),
        /--max-age.*expected whole seconds from 0 to 31557600$/,
      );
    }
  });

  it('prints the bare record text with --value, for a DNS hosting panel', async () => {
    const keys = await loadKeyFile(keyPath);
    const run = blackpony('dns-record', '--key', keyPath, '--domain', 'example.org', '--policy', 'enforce', '--value');
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^v=pony1; [^\n"]*\n$/);
    expect(parsePonyRecord(run.stdout.trimEnd())).toEqual({ noiseKeys: [keys.noise.publicKey], ageRecipient: keys.ageX25519Recipient, policy: 'enforce' });
  });

  it('shows an example in --help', () => {
    const run = blackpony('dns-record', '--help');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('Example:\n  blackpony dns-record --key /etc/blackpony/keys --domain example.org --policy enforce');
  });
});

describeWith([DNSMASQ], 'the published _pony record through real DNS (dnsmasq)', () => {
  it("resolves to the key file's keys, next to other TXT records and when split into strings", async () => {
    const keyPath = join(dir, 'dns-roundtrip-keys');
    expect(blackpony('keygen', '--out', keyPath).status).toBe(0);
    const keys = await loadKeyFile(keyPath);
    const run = blackpony('dns-record', '--key', keyPath, '--domain', 'd.test', '--policy', 'enforce', '--max-age', '86400');
    expect(run.status).toBe(0);
    const line = /^(\S+)\. 3600 IN TXT ((?:"[^"]*" ?)+)\n(; [^\n]*\n)+$/.exec(run.stdout);
    expect(line?.[1]).toBe('_pony.d.test');
    const value = [...line![2]!.matchAll(/"([^"]*)"/g)].map((m) => m[1]).join('');
    // An unknown tag long enough that DNS must carry the value as several strings.
    const padded = `${value}; x-pad=${'p'.repeat(300)}`;
    const dns = await startDns({
      txt: [
        { name: '_pony.d.test', value },
        { name: '_pony.d.test', value: 'v=spf1 -all' },
        { name: '_pony.split.test', value: padded },
      ],
    });
    try {
      const resolver = dns.resolver();
      const expected = { noiseKeys: [keys.noise.publicKey], ageRecipient: keys.ageX25519Recipient, policy: 'enforce', maxAge: 86400 };
      const answers = await resolver.resolveTxt('_pony.d.test');
      expect(answers).toHaveLength(2);
      expect(selectPonyRecord(answers)).toEqual(expected);
      const split = await resolver.resolveTxt('_pony.split.test');
      expect(split).toHaveLength(1);
      expect(split[0]!.length).toBeGreaterThan(1);
      expect(selectPonyRecord(split)).toEqual(expected);
    } finally {
      await dns.stop();
    }
  });
});
