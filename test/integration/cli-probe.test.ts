/**
 * `blackpony probe` from the built CLI against real DNS (dnsmasq) and real listeners: a blackpony
 * inbound side in front of the demo's Maildir store, and a legacy smtp-server with STARTTLS.
 * The CLI runs as a child process while this process serves the MX hosts.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import { identityToRecipient } from '../../src/crypto/age/index.js';
import { fingerprint } from '../../src/crypto/fingerprint.js';
import { generateKeys, writeKeyFile } from '../../src/crypto/keyfile.js';
import { serializePonyRecord, type PonyPolicy } from '../../src/crypto/pony-record.js';
import { startMaildirReceiver, type MaildirReceiver } from '../../src/demo/maildir-receiver.js';
import { createInboundServer, type InboundServer } from '../../src/inbound/inbound-server.js';
import { openPinStore } from '../../src/outbound/pins.js';
import { selfSignedCertificate, OPENSSL } from '../harness/certificates.js';
import { PROJECT_ROOT } from '../harness/cli.js';
import { runCommand } from '../harness/command.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { DNSMASQ, describeWith } from '../harness/requirements.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { sharedMxPort } from './outbound-fixtures.js';
import { loadScaled } from '../harness/wait.js';

const PONY_MX = { host: 'mx.pony.test', address: '127.0.0.2' };
const LEGACY_MX = { host: 'mx.legacy.test', address: '127.0.0.3' };
const KEYS = generateKeys();
const OTHER_KEYS = generateKeys();

function record(keys: typeof KEYS, policy: PonyPolicy, sealedRelay = false): string {
  return serializePonyRecord({ noiseKeys: [keys.noise.publicKey], ageRecipient: identityToRecipient(keys.ageX25519Identity), policy, sealedRelay });
}

describeWith([DNSMASQ, OPENSSL], 'blackpony probe', () => {
  let dir: string;
  let dns: TestDns;
  let mxPort: number;
  let store: MaildirReceiver;
  let inbound: InboundServer;
  let legacy: SMTPServer;

  /** The CLI, asynchronously: this process must keep answering as the MX hosts meanwhile. */
  async function probe(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
    const result = await runCommand(process.execPath, [join(PROJECT_ROOT, 'bin/blackpony.js'), 'probe', ...args]);
    return { status: result.exitCode, stdout: result.stdout, stderr: result.stderr };
  }
  const probeDomain = (domain: string, ...args: string[]) => probe(domain, '--resolver', `127.0.0.1:${dns.port}`, '--port', String(mxPort), ...args);

  beforeAll(async () => {
    dir = await makeTempDir('cli-probe');
    mxPort = await sharedMxPort([PONY_MX.address, LEGACY_MX.address]);
    store = await startMaildirReceiver({ domain: 'pony.test', hostName: PONY_MX.host, maildir: join(dir, 'Maildir'), xclient: true });
    inbound = createInboundServer({ keys: KEYS, hostName: PONY_MX.host, postfix: { host: '127.0.0.1', port: store.port, timeoutMs: loadScaled(5_000) } });
    await inbound.listen(mxPort, PONY_MX.address);
    const certificate = await selfSignedCertificate(dir, 'legacy', LEGACY_MX.host);
    // A hostile banner: terminal escape sequences must not reach the operator's terminal.
    legacy = new SMTPServer({
      name: LEGACY_MX.host,
      banner: 'legacy \x1b]0;owned\x07\x1b[2J',
      key: certificate.key,
      cert: certificate.cert,
      authOptional: true,
      disableReverseLookup: true,
      logger: false,
    });
    legacy.on('error', () => undefined);
    await new Promise<void>((resolve) => legacy.listen(mxPort, LEGACY_MX.address, resolve));
    const mx = (domain: string, host: string) => ({ domain, host, preference: 10 });
    dns = await startDns({
      mx: [
        mx('pony.test', PONY_MX.host),
        mx('mismatch.test', PONY_MX.host),
        mx('trial.test', PONY_MX.host),
        mx('legacy.test', LEGACY_MX.host),
        mx('downgrade.test', LEGACY_MX.host),
        mx('dead.test', 'mx.dead.test'),
        mx('pinned.test', PONY_MX.host),
        mx('backup.test', 'mx.dead.test'),
        { domain: 'backup.test', host: LEGACY_MX.host, preference: 20 },
      ],
      a: [
        { host: PONY_MX.host, address: PONY_MX.address },
        { host: LEGACY_MX.host, address: LEGACY_MX.address },
        { host: 'mx.dead.test', address: '127.0.0.4' },
      ],
      txt: [
        { name: '_pony.pony.test', value: record(KEYS, 'enforce') },
        { name: '_pony.mismatch.test', value: record(OTHER_KEYS, 'enforce') },
        { name: '_pony.trial.test', value: record(OTHER_KEYS, 'testing') },
        { name: '_pony.downgrade.test', value: record(KEYS, 'enforce') },
        { name: '_pony.backup.test', value: record(KEYS, 'enforce', true) },
      ],
    });
  });

  afterAll(async () => {
    await dns?.stop();
    await inbound?.close();
    await store?.close();
    if (legacy !== undefined) await new Promise<void>((resolve) => legacy.close(() => resolve()));
    if (dir !== undefined) await removeTempDir(dir);
  });

  it('documents its exit statuses and an example in --help', async () => {
    const help = await probe('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Exit status:\n\s+0 .*XPONY/);
    expect(help.stdout).toMatch(/^\s+3\s+usage or configuration error$/m);
    expect(help.stdout).toContain('blackpony probe example.org');
  });

  it('exits 0 when the MX offers XPONY with the key the enforce record publishes, and reports the tunnel', async () => {
    const run = await probeDomain('pony.test');
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain(`${PONY_MX.host}:${mxPort}  ${PONY_MX.address}`);
    expect(run.stdout).toContain('_pony record (unsigned DNS): p=enforce');
    expect(run.stdout).toContain(`key ${fingerprint(KEYS.noise.publicKey)}`);
    expect(run.stdout).toContain('pin: none (no --config, so no pin store)');
    expect(run.stdout).toMatch(/policy: enforce \(record\)/);
    expect(run.stdout).toContain(`XPONY:     offered; tunnel up; server key ${fingerprint(KEYS.noise.publicKey)}`);
    expect(run.stdout).toContain('record: matches; pin: no pin; policy: accepts it');
    expect(run.stdout).toContain('evidence: unsigned record');
    expect(run.stdout).toContain(`age recipients: ${KEYS.ageX25519Recipient}`);
    expect(run.stdout).toMatch(/inner EHLO: 250 /);
    expect(run.stdout).toContain('STARTTLS:  not offered');
    expect(run.stdout).toMatch(/^MTA-STS: none \(mta-sts pony\.test: TXT _mta-sts\.pony\.test: ENOTFOUND\)$/m);
    expect(run.stdout).toMatch(/verdict: encrypted through XPONY .* \(exit 0\)\n$/);
    expect(run.status).toBe(0);
    expect(store.delivered).toHaveLength(0); // a probe sends no mail
  });

  it('exits 1 for a legacy MX, reporting STARTTLS and that the self-signed certificate does not verify', async () => {
    const run = await probeDomain('legacy.test');
    expect(run.stdout).toContain('_pony record: none');
    expect(run.stdout).toMatch(/greeting: {2}220 mx\.legacy\.test ESMTP legacy .\]0;owned/);
    expect(run.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(run.stdout).toContain('policy: opportunistic (none)');
    expect(run.stdout).toContain('XPONY:     not offered');
    expect(run.stdout).toMatch(/STARTTLS: {2}offered; TLSv1\.[23] \S+; certificate not valid for mx\.legacy\.test \(\S+\)/);
    expect(run.stdout).toMatch(/verdict: deliverable WITHOUT XPONY, over STARTTLS via mx\.legacy\.test\[127\.0\.0\.3\]/);
    expect(run.status).toBe(1);
  });

  it('exits 2 under p=enforce when the server key is not the one in the record', async () => {
    const run = await probeDomain('mismatch.test');
    expect(run.stdout).toContain(`server key ${fingerprint(KEYS.noise.publicKey)}`);
    expect(run.stdout).toContain('record: NOT in the record; pin: no pin; policy: does NOT accept it');
    expect(run.stdout).toMatch(/verdict: deferred \(key-mismatch\): .* \(exit 2\)/);
    expect(run.status).toBe(2);
  });

  it('exits 1 under p=testing with a mismatched key: the delivery falls back to plain SMTP', async () => {
    const run = await probeDomain('trial.test');
    expect(run.stdout).toContain('record: NOT in the record');
    expect(run.stdout).toMatch(/verdict: deliverable WITHOUT XPONY, in plaintext/);
    expect(run.status).toBe(1);
  });

  it('exits 2 under p=enforce when the MX offers no XPONY (a downgrade)', async () => {
    const run = await probeDomain('downgrade.test');
    expect(run.stdout).toContain('XPONY:     not offered');
    expect(run.stdout).toMatch(/verdict: deferred \(downgrade\)/);
    expect(run.status).toBe(2);
  });

  it('exits 1 under p=enforce with relay=sealed when only an MX without XPONY answers: the sealed relay', async () => {
    const run = await probeDomain('backup.test');
    expect(run.stdout).toMatch(
      /verdict: deliverable WITHOUT XPONY, sealed \(the envelope in clear\) through an MX without XPONY, over STARTTLS via mx\.legacy\.test\[127\.0\.0\.3\]:\d+ \(exit 1\)\n$/,
    );
    expect(run.status).toBe(1);
  });

  it('exits 2 when no MX answers, and for a domain that does not exist', async () => {
    const dead = await probeDomain('dead.test');
    expect(dead.stdout).toMatch(/mx\.dead\.test\[127\.0\.0\.4\]:\d+\n {2}error: +XPONY connect: .*ECONNREFUSED/);
    expect(dead.stdout).toMatch(/verdict: deferred: /);
    expect(dead.status).toBe(2);
    const nowhere = await probeDomain('nowhere.test');
    expect(nowhere.stdout).toMatch(/next hops: none, permanent failure: domain nowhere\.test does not exist/);
    expect(nowhere.stdout).toMatch(/verdict: refused \(bounce\)/);
    expect(nowhere.status).toBe(2);
  });

  it('with --config: uses its resolver, mx_port and keys, and the pins of its state dir (a pinned other key: exit 2)', async () => {
    const stateDir = join(dir, 'state');
    await (await openPinStore(stateDir)).pin('pinned.test', OTHER_KEYS.noise.publicKey, 30);
    await writeKeyFile(join(dir, 'keys'), generateKeys());
    const config = join(dir, 'config.yaml');
    await writeFile(
      config,
      `hostname: probe.example.test\nkeys: keys\nstate_dir: state\noutbound:\n  resolver: ["127.0.0.1:${dns.port}"]\n  mx_port: ${mxPort}\n`,
    );
    const pinned = await probe('pinned.test', '--config', config);
    expect(pinned.stdout).toContain(`pin:\n  key ${fingerprint(OTHER_KEYS.noise.publicKey)}, expires `);
    expect(pinned.stdout).toMatch(/policy: enforce \(pin\): no _pony record; pinned keys \(1\) required/);
    expect(pinned.stdout).toContain('record: no record; pin: NOT pinned; policy: does NOT accept it');
    expect(pinned.stdout).toContain('evidence: none (only the handshake)');
    expect(pinned.stdout).toMatch(/verdict: deferred \(key-mismatch\)/);
    expect(pinned.status).toBe(2);
    // The same domain without the pin store: opportunistic, any key.
    const unpinned = await probeDomain('pinned.test');
    expect(unpinned.stdout).toContain('policy: opportunistic (none): no _pony record');
    expect(unpinned.status).toBe(0);
  });

  it('prints a JSON report with --json', async () => {
    const run = await probeDomain('pony.test', '--json');
    expect(run.status).toBe(0);
    const report = JSON.parse(run.stdout) as {
      verdict: { outcome: string; fingerprint: string };
      record: { record: { noiseKeys: string[] } };
      addresses: { xpony: { record: string } }[];
    };
    expect(report.verdict).toMatchObject({ outcome: 'xpony', fingerprint: fingerprint(KEYS.noise.publicKey) });
    expect(report.addresses[0]!.xpony.record).toBe('match');
    expect(report.record.record.noiseKeys).toHaveLength(1);
  });

  it('exits 3 for usage and configuration errors, with one line on stderr', async () => {
    const badPort = await probe('pony.test', '--port', '99999');
    expect(badPort.status).toBe(3);
    expect(badPort.stderr).toMatch(/--port <n>.*expected a port/);
    const noConfig = await probe('pony.test', '--config', join(dir, 'absent.yaml'));
    expect(noConfig.status).toBe(3);
    expect(noConfig.stdout).toBe('');
    expect(noConfig.stderr).toMatch(/^blackpony: probe: config: .*absent\.yaml: does not exist\n$/);
    expect((await probe()).status).toBe(3);
    // Not a domain: a usage error, not a domain whose mail would be deferred.
    const notADomain = await probe('bad domain');
    expect(notADomain.status).toBe(3);
    expect(notADomain.stdout).toBe('');
    expect(notADomain.stderr).toBe('blackpony: probe: "bad domain" is not a domain name\n');
  });
});
