/**
 * Both sides of `blackpony run` as users run them (the built CLI, configured by file): Postfix A
 * hands its mail to daemon A's outbound side over LMTP (deploy/postfix's snippet), daemon A finds
 * b.test's MX and `_pony` record through dnsmasq and delivers through XPONY to daemon B's inbound
 * side, in front of Postfix B. Daemon A logs one line per delivery and counts it in /metrics.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { identityToRecipient } from '../../src/crypto/age/index.js';
import { generateKeys, writeKeyFile } from '../../src/crypto/keyfile.js';
import { serializePonyRecord } from '../../src/crypto/pony-record.js';
import { PROJECT_ROOT } from '../harness/cli.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { freePort } from '../harness/ports.js';
import { startPostfix, type PostfixInstance } from '../harness/postfix.js';
import { startProcess, type ManagedProcess } from '../harness/processes.js';
import { jsonLogLines } from '../harness/daemon-log.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';
import { mainCfSnippet, startPostfixBehind, type PostfixBehind } from './inbound-fixtures.js';
import { sharedMxPort } from './outbound-fixtures.js';

const CLI = join(PROJECT_ROOT, 'bin/blackpony.js');
const MX_B = '127.0.0.2';
const BOB = 'bob@b.test';

/** Each daemon's configuration file, by name. */
const configFiles = new Map<string, string>();

function configText(name: string, config: string): string {
  // One process: the log lines and counters asserted here are one daemon's.
  return `hostname: mx.${name}.test\nkeys: keys\nstate_dir: state\nworkers: 1\n${config}`;
}

async function startDaemon(name: string, config: string): Promise<ManagedProcess> {
  const dir = await makeTempDir(`daemon-${name}`);
  await writeKeyFile(join(dir, 'keys'), name === 'b' ? keysB : generateKeys());
  configFiles.set(name, join(dir, 'config.yaml'));
  await writeFile(join(dir, 'config.yaml'), configText(name, config));
  const daemon = await startProcess(`blackpony run (${name})`, process.execPath, [CLI, 'run', '--config', join(dir, 'config.yaml')], { cwd: dir });
  await waitFor(`daemon ${name} listening`, () => (jsonLogLines(daemon).some((l) => l.msg === 'listening') ? true : undefined), {
    diagnostics: () => daemon.output(),
  });
  return daemon;
}

const keysB = generateKeys();

describeWith([ROOT, POSTFIX, DNSMASQ, SWAKS], 'blackpony run: outbound and inbound daemons between two Postfix hosts', () => {
  let dns: TestDns;
  let behindB: PostfixBehind;
  let postfixA: PostfixInstance;
  let daemonA: ManagedProcess;
  let daemonB: ManagedProcess;
  let metricsA: number;
  let configA: (tunnelIdleSeconds: number) => string;

  beforeAll(async () => {
    const mxPort = await sharedMxPort([MX_B]);
    const record = serializePonyRecord({
      noiseKeys: [keysB.noise.publicKey],
      ageRecipient: identityToRecipient(keysB.ageX25519Identity),
      policy: 'enforce',
      maxAge: 86_400,
    });
    dns = await startDns({
      mx: [{ domain: 'b.test', host: 'mx.b.test', preference: 10 }],
      a: [{ host: 'mx.b.test', address: MX_B }],
      txt: [{ name: '_pony.b.test', value: record }],
    });
    behindB = await startPostfixBehind({ hostname: 'mx.b.test', mailboxes: [BOB] });
    daemonB = await startDaemon(
      'b',
      `inbound: {listen: "${MX_B}:${mxPort}", postfix: "127.0.0.1:${behindB.listenerPort}", resolver: ["127.0.0.1:${dns.port}"]}\noutbound: {enabled: false}\nmetrics: {listen: ""}\n`,
    );
    const outboundA = await freePort();
    metricsA = await freePort();
    configA = (idleSeconds) =>
      `inbound: {enabled: false}\noutbound: {listen: "127.0.0.1:${outboundA}", resolver: ["127.0.0.1:${dns.port}"], mx_port: ${mxPort}, tunnel_idle_seconds: ${idleSeconds}}\nmetrics: {listen: "127.0.0.1:${metricsA}"}\n`;
    daemonA = await startDaemon('a', configA(60));
    const transport = mainCfSnippet('outbound-lmtp.cf');
    postfixA = await startPostfix({ hostname: 'mx.a.test', mainCf: { default_transport: transport.default_transport!.replace('10587', String(outboundA)) } });
  });

  afterAll(async () => {
    await daemonA?.stop();
    await daemonB?.stop();
    await dns?.stop();
  });

  it("delivers through XPONY, logs the delivery with Postfix's queue id and the peer key, and counts it", async () => {
    const sent = await runSwaks({ server: `127.0.0.1:${postfixA.port}`, from: 'alice@a.test', to: BOB, headers: { Subject: 'daemon to daemon' } });
    expect(sent.exitCode, sent.transcript).toBe(0);
    const [delivered] = await behindB.postfix.waitForDelivery(BOB, 1);
    expect(delivered!.bytes.toString('latin1')).toMatch(/^X-Pony-Trace: .*via=xpony.*sealed=yes/m);
    const line = await waitFor('daemon A delivery log line', () => jsonLogLines(daemonA).find((l) => l.msg === 'delivery delivered: b.test via xpony'), {
      diagnostics: () => daemonA.output(),
    });
    const queued = (await postfixA.readLog()).match(/: ([0-9A-Za-z]{6,}): to=<bob@b\.test>.*status=sent/);
    expect(queued).not.toBeNull();
    expect(line).toMatchObject({ domain: 'b.test', mode: 'xpony', sealed: true, outcome: 'delivered', recipients: 1, queueId: queued?.[1] });
    expect(line.fingerprint).toMatch(/^[a-z0-9]{4}(-[a-z0-9]{4}){7}$/);
    expect(line.policy).toBe('enforce (record)');
    const scraped = await (await fetch(`http://127.0.0.1:${metricsA}/metrics`)).text();
    expect(scraped).toMatch(/^blackpony_deliveries_total\{mode="xpony",outcome="delivered"\} 1$/m);
    expect(scraped).toMatch(/^blackpony_handshake_seconds_count\{side="client",outcome="tunnel"\} 1$/m);
  });

  it('reuses the tunnel for the next message to the same domain: no second handshake', async () => {
    const sent = await runSwaks({ server: `127.0.0.1:${postfixA.port}`, from: 'alice@a.test', to: BOB, headers: { Subject: 'second, same tunnel' } });
    expect(sent.exitCode, sent.transcript).toBe(0);
    await behindB.postfix.waitForDelivery(BOB, 2);
    const lines = await waitFor('two delivery lines', () => {
      const found = jsonLogLines(daemonA).filter((l) => l.msg === 'delivery delivered: b.test via xpony');
      return found.length === 2 ? found : undefined;
    });
    expect(lines.map((l) => l.newSession)).toEqual([true, false]);
    expect(lines[1]!.handshakeMs).toBeUndefined();
    const scraped = await (await fetch(`http://127.0.0.1:${metricsA}/metrics`)).text();
    expect(scraped).toMatch(/^blackpony_deliveries_total\{mode="xpony",outcome="delivered"\} 2$/m);
    expect(scraped).toMatch(/^blackpony_handshake_seconds_count\{side="client",outcome="tunnel"\} 1$/m);
  });

  it('an idle tunnel leaves after outbound.tunnel_idle_seconds (changed by SIGHUP): the next message makes a new handshake', async () => {
    await writeFile(configFiles.get('a')!, configText('a', configA(1)));
    const reloads = jsonLogLines(daemonA).filter((l) => l.msg === 'reloaded').length;
    process.kill(daemonA.pid, 'SIGHUP');
    await waitFor('daemon A reloaded', () => (jsonLogLines(daemonA).filter((l) => l.msg === 'reloaded').length > reloads ? true : undefined));
    const deliveries = (): Array<Record<string, unknown>> => jsonLogLines(daemonA).filter((l) => l.msg === 'delivery delivered: b.test via xpony');
    for (const [subject, count] of [
      ['third, the cached tunnel', 3],
      ['fourth, after the idle time', 4],
    ] as const) {
      const sent = await runSwaks({ server: `127.0.0.1:${postfixA.port}`, from: 'alice@a.test', to: BOB, headers: { Subject: subject } });
      expect(sent.exitCode, sent.transcript).toBe(0);
      await behindB.postfix.waitForDelivery(BOB, count);
      await waitFor(`${count} delivery lines`, () => (deliveries().length === count ? true : undefined));
      // Put back with the new idle time of 1 s: its inner session with Postfix B ends when it leaves.
      if (count === 3) await behindB.postfix.waitForSessionsEnded();
    }
    const [third, fourth] = deliveries().slice(2);
    expect(third).toMatchObject({ newSession: false });
    expect(fourth).toMatchObject({ newSession: true });
    expect(fourth!.handshakeMs).toBeGreaterThan(0);
  });
});
