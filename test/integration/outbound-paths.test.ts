/**
 * Delivery paths of the outbound side between real Postfix instances (docs/PROTOCOL.md section
 * 13): Postfix A hands mail to blackpony over LMTP (in process, its delivery records readable),
 * Postfix D over SMTP to `blackpony run` (the built CLI, its log lines and /metrics readable);
 * dnsmasq serves the MX, A, AAAA and `_pony` records; blackpony B and Postfix B receive. Scripted
 * legacy MXs (test/adversity/fake-mx.ts) and a relay that strips XPONY stand in for remote MXs
 * that misbehave.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { identityToRecipient } from '../../src/crypto/age/index.js';
import { generateKeys, writeKeyFile } from '../../src/crypto/keyfile.js';
import { serializePonyRecord, type PonyPolicy } from '../../src/crypto/pony-record.js';
import { createInboundServer, type InboundServer } from '../../src/inbound/inbound-server.js';
import type { DeliveryRecord } from '../../src/outbound/transaction.js';
import { startFakeMx, type FakeMx } from '../adversity/fake-mx.js';
import { stopAll } from '../harness/cleanup.js';
import { PROJECT_ROOT } from '../harness/cli.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { freePort } from '../harness/ports.js';
import { startPostfix, type PostfixInstance } from '../harness/postfix.js';
import { startProcess, type ManagedProcess } from '../harness/processes.js';
import { DNSMASQ, describeWith, missing, POSTFIX, ROOT, SWAKS, type Requirement } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { loadScaled, waitBound, waitFor } from '../harness/wait.js';
import { mainCfSnippet, masterCfEntries } from './inbound-fixtures.js';
import { sharedMxPort, startBlackponySite, type BlackponySite } from './outbound-fixtures.js';
import { RawSmtp, startRelay, type Relay } from './xpony-fixtures.js';

const CLI = join(PROJECT_ROOT, 'bin/blackpony.js');
const ALICE = 'alice@a.test';
const B_ADDRESS = '127.0.0.2';
/** Next hops of their own: the XPONY-stripping relay for testing.test, and two MXs that answer 4xx. */
const TESTING_MX = '127.0.0.7';
const BUSY_GREETING_MX = '127.0.0.8';
const BUSY_MAIL_MX = '127.0.0.9';
/** A legacy MX whose STARTTLS handshake fails. */
const BROKEN_TLS_MX = '127.0.0.10';
const IPV6_MX = '::1';

const BOB = 'bob@b.test';
const UNKNOWN_AT_B = 'nobody@b.test';
/** Domains without a record whose MX is B's. */
const BOB_C = 'bob@c.test';
const PIN_CORRUPT = 'bob@pincorrupt.test';
const PIN_UNREADABLE = 'bob@pinunreadable.test';
/** Preferred MX answers 4xx, the second is B's. */
const BOB_GREET = 'bob@greet.test';
const BOB_MAIL = 'bob@mail.test';
const BOB_V6 = 'bob@v6.test';
const LEE_BROKEN_TLS = 'lee@brokentls.test';
/** p=testing, with B's keys, behind the relay. */
const BOB_TESTING = 'bob@testing.test';

let ipv6Probe: string | null | undefined;
/** Whether this host can listen on the IPv6 loopback (containers often have IPv6 off). */
const IPV6_LOOPBACK: Requirement = {
  name: 'ipv6-loopback',
  check() {
    if (ipv6Probe === undefined) {
      const probe = spawnSync(
        process.execPath,
        ['-e', "require('net').createServer().on('error', () => process.exit(1)).listen(0, '::1', function () { this.close(); })"],
        { timeout: waitBound() },
      );
      ipv6Probe = probe.status === 0 ? null : 'IPv6 loopback unavailable: cannot listen on [::1]';
    }
    return ipv6Probe;
  },
};

function message(id: string, to: string): string {
  return [
    `From: Alice <${ALICE}>`,
    `To: ${to}`,
    `Subject: paths ${id}`,
    'Date: Sun, 22 Nov 2026 00:00:00 +0000',
    `Message-ID: <${id}@a.test>`,
    '',
    `body of ${id}`,
    '',
  ].join('\r\n');
}

function record(keys: ReturnType<typeof generateKeys>, policy: PonyPolicy): string {
  return serializePonyRecord({ noiseKeys: [keys.noise.publicKey], ageRecipient: identityToRecipient(keys.ageX25519Identity), policy, maxAge: 86_400 });
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ');
}

/** `blackpony run` as users run it: outbound only, over SMTP, with /metrics. */
interface DaemonSmtp {
  process: ManagedProcess;
  port: number;
  metricsPort: number;
  /** Its state_dir (pins/ in it). */
  stateDir: string;
  /** Its delivery log lines: the DeliveryRecord fields, one object per delivery. */
  deliveries(): DeliveryRecord[];
  /** A sample's value: `name` with its labels, e.g. `x_total{reason="dns"}`. */
  metric(name: string): Promise<number>;
}

async function startDaemonSmtp(dnsPort: number, mxPort: number): Promise<DaemonSmtp> {
  const dir = await makeTempDir('paths-daemon');
  const [port, metricsPort] = [await freePort(), await freePort()];
  await writeKeyFile(join(dir, 'keys'), generateKeys());
  const outbound = `{listen: "127.0.0.1:${port}", protocol: smtp, resolver: ["127.0.0.1:${dnsPort}"], mx_port: ${mxPort}, mta_sts: false, connect_timeout_seconds: 3, tunnel_idle_seconds: 5}`;
  await writeFile(
    join(dir, 'config.yaml'),
    `hostname: mx.a.test\nkeys: keys\nstate_dir: state\nworkers: 1\ninbound: {enabled: false}\noutbound: ${outbound}\nmetrics: {listen: "127.0.0.1:${metricsPort}"}\n`,
  );
  const child = await startProcess('blackpony run (paths, smtp)', process.execPath, [CLI, 'run', '--config', join(dir, 'config.yaml')], { cwd: dir });
  const lines = (): Array<Record<string, unknown>> =>
    child
      .stderr()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  await waitFor('blackpony run listening', () => (lines().some((l) => l.msg === 'listening') ? true : undefined), { diagnostics: () => child.output() });
  return {
    process: child,
    port,
    metricsPort,
    stateDir: join(dir, 'state'),
    deliveries: () => lines().filter((l) => String(l.msg).startsWith('delivery ')) as unknown as DeliveryRecord[],
    async metric(name) {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const match = new RegExp(`^${name.replace(/[{}"\\]/g, '\\$&')} (\\d+)$`, 'm').exec(text);
      if (match === null) throw new Error(`metric ${name} not found in:\n${text}`);
      return Number(match[1]);
    },
  };
}

describeWith([POSTFIX, ROOT, DNSMASQ, SWAKS], 'outbound paths: SMTP mode, next MX, IPv6, p=testing, hybrid sealing, own faults', () => {
  const ipv6 = missing([IPV6_LOOPBACK]) === null;
  const keysB = generateKeys();
  let dns: TestDns;
  let mxPort: number;
  let a: BlackponySite;
  let b: BlackponySite;
  let daemon: DaemonSmtp;
  /** Postfix D: a sender speaking SMTP to `blackpony run` with deploy/postfix/outbound-smtp.cf. */
  let postfixD: PostfixInstance;
  let stripRelay: Relay;
  let busyGreeting: FakeMx;
  let busyMail: FakeMx;
  let brokenTls: FakeMx;

  beforeAll(async () => {
    mxPort = await sharedMxPort([B_ADDRESS, TESTING_MX, BUSY_GREETING_MX, BUSY_MAIL_MX, BROKEN_TLS_MX, ...(ipv6 ? [IPV6_MX] : [])]);
    const mx = (domain: string, host: string, preference = 10) => ({ domain, host, preference });
    dns = await startDns({
      mx: [
        ...['b.test', 'c.test', 'pincorrupt.test', 'pinunreadable.test'].map((domain) => mx(domain, 'mx.b.test')),
        mx('greet.test', 'mx.greet.test'),
        mx('greet.test', 'mx.b.test', 20),
        mx('mail.test', 'mx.mail.test'),
        mx('mail.test', 'mx.b.test', 20),
        mx('v6.test', 'mx.v6.test'),
        mx('testing.test', 'mx.testing.test'),
        mx('brokentls.test', 'mx.brokentls.test'),
      ],
      a: [
        { host: 'mx.b.test', address: B_ADDRESS },
        { host: 'mx.greet.test', address: BUSY_GREETING_MX },
        { host: 'mx.mail.test', address: BUSY_MAIL_MX },
        { host: 'mx.testing.test', address: TESTING_MX },
        { host: 'mx.brokentls.test', address: BROKEN_TLS_MX },
      ],
      // Only an AAAA record: the delivery must use IPv6 or fail.
      aaaa: [{ host: 'mx.v6.test', address: IPV6_MX }],
      txt: [
        { name: '_pony.b.test', value: record(keysB, 'enforce') },
        { name: '_pony.testing.test', value: record(keysB, 'testing') },
      ],
    });
    const resolver = () => dns.resolver();
    b = await startBlackponySite({
      domain: 'b.test',
      address: B_ADDRESS,
      mxPort,
      resolver,
      keys: keysB,
      mailboxes: [BOB, BOB_C, PIN_CORRUPT, PIN_UNREADABLE, BOB_GREET, BOB_MAIL, BOB_V6, BOB_TESTING],
    });
    a = await startBlackponySite({ domain: 'a.test', address: '127.0.0.5', mxPort, resolver, mailboxes: [ALICE] });
    daemon = await startDaemonSmtp(dns.port, mxPort);
    const smtp = mainCfSnippet('outbound-smtp.cf');
    postfixD = await startPostfix({
      hostname: 'mx.a.test',
      mailboxes: [ALICE],
      mainCf: { ...smtp, default_transport: smtp.default_transport!.replace('127.0.0.1]:10587', `127.0.0.1]:${daemon.port}`) },
      masterCf: [masterCfEntries('outbound-smtp-master.cf')],
    });
    // testing.test's MX: B's inbound behind a relay that removes XPONY from the EHLO reply.
    stripRelay = await startRelay(
      mxPort,
      { fromServer: (data) => Buffer.from(data.toString('latin1').replace(/250-([^\r\n]*)\r\n250 XPONY [^\r\n]*\r\n/, '250 $1\r\n'), 'latin1') },
      { listen: { host: TESTING_MX, port: mxPort }, targetHost: B_ADDRESS },
    );
    busyGreeting = await startFakeMx(BUSY_GREETING_MX, mxPort, { kind: 'reply', stage: 'greeting', reply: '421 4.3.2 mx.greet.test busy, try again later' });
    busyMail = await startFakeMx(BUSY_MAIL_MX, mxPort, { kind: 'reply', stage: 'MAIL', reply: '451 4.7.1 greylisted, try again later' });
    brokenTls = await startFakeMx(BROKEN_TLS_MX, mxPort, { kind: 'broken-starttls', tls: 'garbage' });
  });

  afterAll(async () => {
    await stripRelay?.close();
    await busyGreeting?.close();
    await busyMail?.close();
    await brokenTls?.close();
    for (const site of [a, b]) {
      await site?.inbound.close();
      await site?.outbound.server.close();
    }
    await dns?.stop();
    await stopAll();
  });

  async function send(postfix: PostfixInstance, id: string, to: string[]): Promise<void> {
    const sent = await runSwaks({ server: `127.0.0.1:${postfix.port}`, from: ALICE, to, data: message(id, to.join(', ')) });
    expect(sent.exitCode, sent.transcript).toBe(0);
  }

  async function count(mailbox: string, id: string): Promise<number> {
    return (await b.postfix.maildirMessages(mailbox)).filter((m) => m.bytes.includes(`<${id}@a.test>`)).length;
  }

  async function deliveredOnce(mailbox: string, id: string): Promise<string> {
    await waitFor(`${id} in ${mailbox}`, async () => ((await count(mailbox, id)) >= 1 ? true : undefined), {
      diagnostics: async () =>
        `A: ${JSON.stringify(a.outbound.deliveries.slice(-5))}\nD: ${JSON.stringify(daemon.deliveries().slice(-5))}\n${(await b.postfix.readLog()).split('\n').slice(-10).join('\n')}`,
    });
    const copies = (await b.postfix.maildirMessages(mailbox)).filter((m) => m.bytes.includes(`<${id}@a.test>`));
    expect(copies).toHaveLength(1);
    return copies[0]!.bytes.toString('latin1');
  }

  function recordOf(records: () => DeliveryRecord[], domain: string, outcome: DeliveryRecord['outcome'], after = 0): Promise<DeliveryRecord> {
    return waitFor(
      `a ${outcome} record for ${domain}`,
      () =>
        records()
          .slice(after)
          .find((d) => d.domain === domain && d.outcome === outcome),
      {
        diagnostics: () => JSON.stringify(records().filter((d) => d.domain === domain)),
      },
    );
  }
  const recordsA = (): DeliveryRecord[] => a.outbound.deliveries;
  const recordsD = (): DeliveryRecord[] => daemon.deliveries();

  it('SMTP mode: a second RCPT for another domain gets 452 4.5.3, and the first recipient is delivered exactly once', async () => {
    const client = await RawSmtp.connect(daemon.port);
    try {
      expect((await client.reply()).code).toBe(220);
      expect(await client.command('EHLO raw.a.test')).toMatch(/^250 /);
      expect(await client.command(`MAIL FROM:<${ALICE}>`)).toMatch(/^250 /);
      expect(await client.command(`RCPT TO:<${BOB}>`)).toMatch(/^250 /);
      expect(await client.command(`RCPT TO:<${BOB_C}>`)).toBe(
        '452 4.5.3 one destination domain per transaction over SMTP; send the others separately (or use LMTP)',
      );
      expect(await client.command('DATA')).toMatch(/^354 /);
      client.write(`${message('raw-1', BOB)}.\r\n`);
      const final = await client.reply();
      expect(final.code).toBe(250);
      await client.command('QUIT');
    } finally {
      client.stream.destroy();
    }
    await deliveredOnce(BOB, 'raw-1');
    await recordOf(recordsD, 'b.test', 'delivered');
    const records = recordsD().filter((d) => d.domain === 'b.test' || d.domain === 'c.test');
    expect(records.map((d) => [d.domain, d.outcome, d.recipients])).toEqual([['b.test', 'delivered', 1]]);
    expect(await count(BOB_C, 'raw-1')).toBe(0);
  });

  it('SMTP mode: a recipient the remote MX refuses at RCPT bounces with its code, enhanced code and text; the other domain gets the message once', async () => {
    await send(postfixD, 'refused-1', [UNKNOWN_AT_B, BOB_C]);
    await deliveredOnce(BOB_C, 'refused-1');
    // B's own words, as Postfix B logged them.
    const rejectedAtB = await waitFor(
      'B rejects nobody@b.test',
      async () => /NOQUEUE: reject: RCPT from [^:]*: (550 5\.1\.1 <nobody@b\.test>: [^;]*);/.exec(await b.postfix.readLog())?.[1],
    );
    expect(rejectedAtB).toMatch(/User unknown/);
    const bounce = await waitFor(
      'the bounce to alice at D',
      async () => (await postfixD.maildirMessages(ALICE)).map((m) => m.bytes.toString('latin1')).find((text) => text.includes('refused-1@a.test')),
      {
        diagnostics: async () => (await postfixD.readLog()).split('\n').slice(-20).join('\n'),
      },
    );
    expect(bounce).toMatch(/^Status: 5\.1\.1$/m);
    expect(oneLine(bounce)).toContain(`Diagnostic-Code: smtp; ${rejectedAtB}`);
    expect(oneLine(bounce)).toContain(`said: ${rejectedAtB} (in reply to RCPT TO command)`);
    const bounced = (await postfixD.readLog()).split('\n').find((line) => line.includes(`to=<${UNKNOWN_AT_B}>`) && line.includes('status=bounced'));
    expect(bounced).toContain(`said: ${rejectedAtB} (in reply to RCPT TO command)`);
    await postfixD.waitForQueue('empty', (q) => q.length === 0);
    expect(await count(BOB_C, 'refused-1')).toBe(1);
  });

  it('next MX on a 4xx: a preferred MX that answers 421 at greeting or 451 to MAIL is passed over, the second MX delivers once', async () => {
    const first = recordsA().length;
    await send(a.postfix, 'busy-1', [BOB_GREET, BOB_MAIL]);
    await deliveredOnce(BOB_GREET, 'busy-1');
    await deliveredOnce(BOB_MAIL, 'busy-1');
    const greet = await recordOf(recordsA, 'greet.test', 'delivered', first);
    expect(greet.attempts).toHaveLength(1);
    expect(greet.attempts![0]).toMatch(new RegExp(`^mx\\.greet\\.test\\[${BUSY_GREETING_MX}\\]:${mxPort}: .*greeting is 421`));
    expect(greet.peer).toMatch(new RegExp(`^mx\\.b\\.test\\[${B_ADDRESS}\\]:${mxPort} \\(xpony `));
    const mail = await recordOf(recordsA, 'mail.test', 'delivered', first);
    expect(mail.attempts).toHaveLength(1);
    expect(mail.attempts![0]).toMatch(new RegExp(`^mx\\.mail\\.test\\[${BUSY_MAIL_MX}\\]:${mxPort} \\(plain\\): MAIL answered 451 4\\.7\\.1 greylisted`));
    expect(mail.peer).toMatch(new RegExp(`^mx\\.b\\.test\\[${B_ADDRESS}\\]:${mxPort} \\(xpony `));
    expect(busyGreeting.connections).toBeGreaterThan(0);
    expect(busyMail.connections).toBeGreaterThan(0);
    expect([...busyGreeting.received, ...busyMail.received]).toEqual([]);
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
  });

  describeWith([IPV6_LOOPBACK], 'over IPv6', () => {
    let inboundV6: InboundServer | undefined;
    afterAll(async () => {
      await inboundV6?.close();
    });

    it('a domain whose MX has only an AAAA record (::1) is delivered through XPONY over IPv6', async () => {
      // Postfix parses XCLIENT ADDR=IPV6:... only with IPv6 on (the harness default is ipv4): else 501.
      await b.postfix.postconf(['-e', 'inet_protocols = all']);
      await b.postfix.restart();
      // B's inbound side, also on [::1] at the MX port.
      inboundV6 = createInboundServer({
        keys: keysB,
        hostName: 'mx.b.test',
        postfix: { host: '127.0.0.1', port: b.listenerPort, timeoutMs: loadScaled(10_000) },
      });
      await inboundV6.listen(mxPort, IPV6_MX);
      await send(a.postfix, 'v6-1', [BOB_V6]);
      const text = await deliveredOnce(BOB_V6, 'v6-1');
      expect(text).toMatch(/X-Pony-Trace: .*via=xpony.*sealed=yes/);
      expect(oneLine(text)).toMatch(/client=\[::1\]:\d+/);
      const delivered = await recordOf(recordsA, 'v6.test', 'delivered');
      expect(delivered).toMatchObject({ mode: 'xpony', sealed: true });
      expect(delivered.peer).toContain(`mx.v6.test[${IPV6_MX}]:${mxPort}`);
    });
  });

  for (const tls of ['garbage', 'silent'] as const) {
    it(`a legacy MX whose STARTTLS handshake fails (${tls === 'garbage' ? 'not TLS' : 'no answer, beyond the timeout'}) gets the message in plaintext on a new connection, as with Postfix's "may"`, async () => {
      brokenTls.misbehaviour = { kind: 'broken-starttls', tls };
      a.outbound.server.cache.closeAll(); // no session kept from the case before
      const [first, connections] = [recordsA().length, brokenTls.connections];
      const id = `broken-tls-${tls}`;
      await send(a.postfix, id, [LEE_BROKEN_TLS]);
      const record = await recordOf(recordsA, 'brokentls.test', 'delivered', first);
      expect(record.mode).toBe('plain');
      // The downgrade is in the delivery's log line, on one line.
      expect(record.attempts).toHaveLength(1);
      expect(record.attempts![0]).toMatch(
        new RegExp(`^mx\\.brokentls\\.test\\[127\\.0\\.0\\.10\\]:${mxPort}: .*TLS handshake: [^\\n]*; retrying without TLS$`),
      );
      expect(brokenTls.connections - connections).toBe(2);
      expect(brokenTls.received.filter((text) => text.includes(`<${id}@a.test>`))).toHaveLength(1);
    });
  }

  it('p=testing: the MX stops offering XPONY, the mail is still delivered (plaintext), recorded as a testing failure and counted in /metrics', async () => {
    const before = await daemon.metric('blackpony_testing_failures_total');
    const first = recordsD().length;
    await send(postfixD, 'testing-1', [BOB_TESTING]);
    const text = await deliveredOnce(BOB_TESTING, 'testing-1');
    expect(text).toMatch(/X-Pony-Trace: .*via=plain/);
    const delivered = await recordOf(recordsD, 'testing.test', 'delivered', first);
    expect(delivered).toMatchObject({ mode: 'plain', sealed: false, testingFailure: true, policy: 'testing (record)' });
    expect(delivered.peer).toContain(`mx.testing.test[${TESTING_MX}]:${mxPort}`);
    // The delivery went through the relay, which kept XPONY from the sender.
    expect(stripRelay.connections.length).toBeGreaterThan(0);
    expect(stripRelay.connections.map((c) => Buffer.concat(c.toClient).toString('latin1')).join('')).not.toContain('XPONY');
    await waitFor('testing failure counted', async () => ((await daemon.metric('blackpony_testing_failures_total')) === before + 1 ? true : undefined));
    await postfixD.waitForQueue('empty', (q) => q.length === 0);
  });

  it("inside the hybrid (version 2) tunnel, seals to the record's X25519 recipient, not again to the hybrid one B announces", async () => {
    const first = recordsA().length;
    await send(a.postfix, 'pq-1', [BOB]);
    const text = await deliveredOnce(BOB, 'pq-1');
    // B opened it: sealed=yes means B's inbound side decrypted it before Postfix B saw it; the
    // tunnel it crossed was the ML-KEM-768 hybrid one, the message's post-quantum layer.
    expect(text).toMatch(/X-Pony-Trace: .*via=xpony\/2.*sealed=yes/);
    const delivered = await recordOf(recordsA, 'b.test', 'delivered', first);
    expect(delivered).toMatchObject({ mode: 'xpony', sealed: true, sealedTo: 'x25519', policy: 'enforce (record)' });
  });

  it('a deferral for policy reasons is counted in /metrics by its reason', async () => {
    const sample = 'blackpony_policy_deferrals_total{reason="pin-store"}';
    const before = await daemon.metric(sample);
    const pin = join(daemon.stateDir, 'pins', 'pincorrupt.test.json');
    await mkdir(dirname(pin), { recursive: true });
    await writeFile(pin, 'not json');
    const first = recordsD().length;
    await send(postfixD, 'counted-1', [PIN_CORRUPT]);
    expect(await recordOf(recordsD, 'pincorrupt.test', 'deferred', first)).toMatchObject({ deferral: 'pin-store' });
    // Postfix retries the deferred message every second or two, each retry deferred and counted
    // again: a probe delayed by a loaded machine may find more than one.
    await waitFor('the deferral counted', async () => ((await daemon.metric(sample)) > before ? true : undefined));
    await rm(pin);
    await postfixD.flush();
    await deliveredOnce(PIN_CORRUPT, 'counted-1');
    await postfixD.waitForQueue('empty', (q) => q.length === 0);
  });

  it("blackpony's own fault (a corrupt or unreadable pin file) gives Postfix a 4xx with the reason, the mail stays queued, and goes out once fixed", async () => {
    const pins = a.outbound.pins.directory;
    await mkdir(pins, { recursive: true });
    await writeFile(join(pins, 'pincorrupt.test.json'), '{"version":1,');
    // Root reads any file, so "unreadable" is a directory where the pin file should be.
    await mkdir(join(pins, 'pinunreadable.test.json'));
    await send(a.postfix, 'pinfault-1', [PIN_CORRUPT, PIN_UNREADABLE]);
    const reasons = (queue: Awaited<ReturnType<PostfixInstance['queue']>>) =>
      new Map(queue.flatMap((m) => m.recipients.map((r) => [r.address, r.delayReason ?? ''] as const)));
    const queue = await a.postfix.waitForQueue('holds both with a reason', (q) => [PIN_CORRUPT, PIN_UNREADABLE].every((r) => (reasons(q).get(r) ?? '') !== ''));
    const delayed = reasons(queue);
    expect(delayed.get(PIN_CORRUPT)).toMatch(
      /said: 451 4\.7\.5 pin file \S+\/pincorrupt\.test\.json: not valid JSON \(clear it with: blackpony pins forget pincorrupt\.test\)/,
    );
    expect(delayed.get(PIN_UNREADABLE)).toMatch(/said: 451 4\.7\.5 pin file \S+\/pinunreadable\.test\.json: cannot be read: EISDIR/);
    const log = await a.postfix.readLog();
    expect(log).not.toMatch(/status=bounced/);
    expect(log).toMatch(/to=<bob@pincorrupt\.test>.*status=deferred/);
    expect(await count(PIN_CORRUPT, 'pinfault-1')).toBe(0);
    expect((await a.postfix.maildirMessages(ALICE)).length).toBe(0);
    expect(recordsA().find((d) => d.domain === 'pincorrupt.test')).toMatchObject({ outcome: 'deferred', deferral: 'pin-store' });

    await a.outbound.pins.forget('pincorrupt.test');
    await rm(join(pins, 'pinunreadable.test.json'), { recursive: true });
    await a.postfix.flush();
    await deliveredOnce(PIN_CORRUPT, 'pinfault-1');
    await deliveredOnce(PIN_UNREADABLE, 'pinfault-1');
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
  });
});
