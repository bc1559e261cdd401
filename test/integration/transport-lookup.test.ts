/**
 * Postfix asks `blackpony run` per recipient domain which way to send (outbound.transport_lookup,
 * a socketmap used as transport_maps): domains that run blackpony go to the blackpony service,
 * every other domain stays with Postfix's own smtp and its own TLS policy. Checked with Postfix's
 * own client (`postmap -q`) and end to end with Postfix A using deploy/postfix/'s lookup snippets.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityToRecipient } from '../../src/crypto/age/index.js';
import { generateKeys, writeKeyFile } from '../../src/crypto/keyfile.js';
import { serializePonyRecord } from '../../src/crypto/pony-record.js';
import { openPinStore } from '../../src/outbound/pins.js';
import { PROJECT_ROOT } from '../harness/cli.js';
import { runCommand } from '../harness/command.js';
import { startDns, type DnsRecords, type TestDns } from '../harness/dnsmasq.js';
import { freePort } from '../harness/ports.js';
import { startPostfix, type PostfixInstance } from '../harness/postfix.js';
import { startProcess, type ManagedProcess } from '../harness/processes.js';
import { jsonLogLines } from '../harness/daemon-log.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SMTP_SINK, SWAKS } from '../harness/requirements.js';
import { startServfailDns, type ServfailDns } from '../harness/servfail-dns.js';
import { startSmtpSink, type SmtpSink } from '../harness/smtp-sink.js';
import { runSwaks } from '../harness/swaks.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';
import { mainCfSnippet, masterCfEntries, startPostfixBehind, type PostfixBehind } from './inbound-fixtures.js';
import { sharedMxPort } from './outbound-fixtures.js';

const CLI = join(PROJECT_ROOT, 'bin/blackpony.js');
const POSTMAP = '/usr/sbin/postmap';
const MX_B = '127.0.0.2';
const MX_LEGACY = '127.0.0.3';
const SNIPPET_LOOKUP_PORT = '10588';
const SNIPPET_OUTBOUND_PORT = '10587';

async function startDaemon(
  name: string,
  keys: ReturnType<typeof generateKeys>,
  config: string,
  prepare?: (dir: string) => Promise<void>,
  workers = 1,
): Promise<{ daemon: ManagedProcess; dir: string }> {
  const dir = await makeTempDir(`daemon-${name}`);
  await writeKeyFile(join(dir, 'keys'), keys);
  await prepare?.(dir);
  await writeFile(join(dir, 'config.yaml'), `hostname: mx.${name}.test\nkeys: keys\nstate_dir: state\nworkers: ${workers}\nlog: {level: debug}\n${config}`);
  const daemon = await startProcess(`blackpony run (${name})`, process.execPath, [CLI, 'run', '--config', join(dir, 'config.yaml')], { cwd: dir });
  await waitFor(`daemon ${name} listening`, () => (jsonLogLines(daemon).some((l) => l.msg === 'listening') ? true : undefined), {
    diagnostics: () => daemon.output(),
  });
  return { daemon, dir };
}

describeWith([ROOT, POSTFIX, DNSMASQ, SWAKS, SMTP_SINK], 'transport lookup: Postfix asks blackpony per recipient domain', () => {
  const keysA = generateKeys();
  const keysB = generateKeys();
  let dns: TestDns;
  let servfail: ServfailDns;
  let behindB: PostfixBehind;
  let legacyMx: SmtpSink;
  let daemonA: ManagedProcess;
  let daemonB: ManagedProcess;
  let dirA: string;
  let records: DnsRecords;
  let mxPortShared: number;
  let recordB: string;
  let lookupPort: number;
  let outboundPort: number;
  let metricsPort: number;

  const postmap = async (domain: string, port = lookupPort): Promise<{ exitCode: number | null; value: string; output: string }> => {
    const result = await runCommand(POSTMAP, ['-q', domain, `socketmap:inet:127.0.0.1:${port}:transport`], { terminal: true });
    return { exitCode: result.exitCode, value: result.stdout.trim(), output: result.stdout };
  };

  beforeAll(async () => {
    const mxPort = await sharedMxPort([MX_B, MX_LEGACY]);
    mxPortShared = mxPort;
    servfail = await startServfailDns();
    const record = (policy: 'enforce' | 'testing') =>
      serializePonyRecord({ noiseKeys: [keysB.noise.publicKey], ageRecipient: identityToRecipient(keysB.ageX25519Identity), policy, maxAge: 86_400 });
    recordB = record('testing');
    const ownRecord = serializePonyRecord({
      noiseKeys: [keysA.noise.publicKey],
      ageRecipient: identityToRecipient(keysA.ageX25519Identity),
      policy: 'enforce',
      maxAge: 86_400,
    });
    records = {
      mx: ['rec.test', 'learned.test', 'legacy.test', 'own.test', 'later.test'].map((domain) => ({
        domain,
        host: domain === 'legacy.test' ? 'mx.legacy.test' : 'mx.b.test',
        preference: 10,
      })),
      a: [
        { host: 'mx.b.test', address: MX_B },
        { host: 'mx.legacy.test', address: MX_LEGACY },
      ],
      txt: [
        { name: '_pony.rec.test', value: record('enforce') },
        { name: '_pony.own.test', value: ownRecord },
      ],
      forward: [{ name: 'fail.test', port: servfail.port }],
    };
    dns = await startDns(records);
    behindB = await startPostfixBehind({ hostname: 'mx.b.test', mailboxes: ['bob@rec.test', 'bob@learned.test'] });
    ({ daemon: daemonB } = await startDaemon(
      'b',
      keysB,
      `inbound: {listen: "${MX_B}:${mxPort}", postfix: "127.0.0.1:${behindB.listenerPort}", client_name_lookup: false}\noutbound: {enabled: false}\nmetrics: {listen: ""}\n`,
    ));
    legacyMx = await startSmtpSink({ address: MX_LEGACY, port: mxPort, hostname: 'mx.legacy.test' });
    [lookupPort, outboundPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    ({ daemon: daemonA, dir: dirA } = await startDaemon(
      'a',
      keysA,
      [
        'inbound: {enabled: false}',
        `outbound: {listen: "127.0.0.1:${outboundPort}", resolver: ["127.0.0.1:${dns.port}"], mx_port: ${mxPort}, policies: {local.test: testing},`,
        `  transport_lookup: {listen: "127.0.0.1:${lookupPort}", cache_seconds: 1}}`,
        `metrics: {listen: "127.0.0.1:${metricsPort}"}`,
        '',
      ].join('\n'),
      async (dir) => {
        const pins = await openPinStore(join(dir, 'state'));
        await pins.pin('pinned.test', keysB.noise.publicKey, 30);
      },
    ));
  });

  afterAll(async () => {
    await daemonA?.stop();
    await daemonB?.stop();
    await legacyMx?.stop();
    await dns?.stop();
    await servfail?.stop();
  });

  it('answers the blackpony service for a domain with a _pony record, a pinned one and one with a local policy, by domain or by address', async () => {
    for (const domain of ['rec.test', 'pinned.test', 'local.test', 'bob@rec.test']) {
      const answer = await postmap(domain);
      expect(answer, domain).toMatchObject({ exitCode: 0, value: `blackpony:inet:[127.0.0.1]:${outboundPort}` });
    }
  });

  it('answers "not found" for a legacy domain, an address literal, a parent-domain key and a domain whose record names this host', async () => {
    for (const key of ['legacy.test', 'carol@legacy.test', 'bob@[127.0.0.2]', '.rec.test', 'own.test']) {
      const answer = await postmap(key);
      expect(answer.exitCode, `${key}: ${answer.output}`).toBe(1);
      expect(answer.value).toBe('');
    }
  });

  it('answers a temporary failure when the _pony lookup fails: Postfix defers, never sends it the legacy way', async () => {
    const answer = await postmap('fail.test');
    expect(answer.exitCode, answer.output).not.toBe(0);
    // postmap exits 1 for "not found" and for a failed lookup alike; only the latter says why.
    expect(answer.output).toMatch(/_pony lookup failed.*ESERVFAIL/);
  });

  it('learns XPONY from the EHLO of a domain without a record, and routes it to blackpony from then on', async () => {
    expect((await postmap('learned.test')).exitCode).toBe(1);
    await waitFor('the sighting is logged', () => jsonLogLines(daemonA).find((l) => l.domain === 'learned.test' && l.seen === true), {
      diagnostics: () => daemonA.output(),
    });
    await waitFor('learned.test answered with the blackpony service', async () => ((await postmap('learned.test')).exitCode === 0 ? true : undefined));
    // The legacy MX was probed too and did not offer XPONY.
    expect((await postmap('legacy.test')).exitCode).toBe(1);
    const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(scraped).toMatch(/^blackpony_transport_lookup_seconds_count\{route="blackpony"\} [1-9]/m);
    expect(scraped).toMatch(/^blackpony_transport_lookup_seconds_count\{route="postfix"\} [1-9]/m);
    expect(scraped).toMatch(/^blackpony_transport_lookup_seconds_count\{route="wait"\} [1-9]/m);
  });

  it('follows a record that appears and a pin that expires, once the cached answer is older than cache_seconds', async () => {
    expect((await postmap('later.test')).exitCode).toBe(1);
    // A pin that expires 20 s from now, written while the daemon runs (the pin store is shared
    // with it): a pin expiring a fixed time after the daemon's start was gone before this test
    // began on a busy machine.
    const pins = await openPinStore(join(dirA, 'state'));
    await pins.pin('expiring.test', keysB.noise.publicKey, 30, new Date(Date.now() - 30 * 86_400_000 + 20_000));
    await waitFor('expiring.test routed to blackpony while pinned', async () => ((await postmap('expiring.test')).exitCode === 0 ? true : undefined));
    await dns.restart({ ...records, txt: [...(records.txt ?? []), { name: '_pony.later.test', value: recordB }] });
    await waitFor('later.test routed to blackpony', async () => ((await postmap('later.test')).exitCode === 0 ? true : undefined));
    await waitFor('expiring.test back to Postfix', async () => ((await postmap('expiring.test')).exitCode === 1 ? true : undefined));
  });

  it('blackpony probe says which way a domain is routed and why', async () => {
    const routeOf = async (domain: string): Promise<{ route: string; reason: string }> => {
      const run = await runCommand(process.execPath, [CLI, 'probe', domain, '--config', join(dirA, 'config.yaml'), '--json'], { cwd: dirA });
      return (JSON.parse(run.stdout) as { transport: { route: string; reason: string } }).transport;
    };
    expect(await routeOf('learned.test')).toMatchObject({ route: 'blackpony', reason: expect.stringMatching(/XPONY seen/) as string });
    expect(await routeOf('rec.test')).toMatchObject({ route: 'blackpony', reason: expect.stringMatching(/_pony record/) as string });
    expect(await routeOf('legacy.test')).toMatchObject({ route: 'postfix', reason: 'no _pony record' });
    expect(await routeOf('fail.test')).toMatchObject({ route: 'wait' });
  });

  describe('with two workers', () => {
    let daemon: ManagedProcess;
    let dir: string;
    let port: number;
    const sightingLines = (): unknown[] => jsonLogLines(daemon).filter((l) => l.domain === 'learned.test' && l.seen === true);

    beforeAll(async () => {
      port = await freePort();
      ({ daemon, dir } = await startDaemon(
        'a2',
        keysA,
        [
          'inbound: {enabled: false}',
          `outbound: {listen: "127.0.0.1:${await freePort()}", resolver: ["127.0.0.1:${dns.port}"], mx_port: ${mxPortShared},`,
          `  transport_lookup: {listen: "127.0.0.1:${port}", cache_seconds: 1}}`,
          'metrics: {listen: ""}',
          '',
        ].join('\n'),
        undefined,
        2,
      ));
    });

    afterAll(async () => {
      await daemon?.stop();
    });

    it('a sighting one worker learns routes the domain in every worker; the primary writes it to the file', async () => {
      expect((await postmap('learned.test', port)).exitCode).toBe(1);
      await waitFor('the sighting is logged', () => (sightingLines().length > 0 ? true : undefined), { diagnostics: () => daemon.output() });
      // Each postmap is a new connection, handed to the workers in turn: the one that did not
      // probe answers from the sighting too (kept to itself, it answered "not found" and probed).
      for (let ask = 1; ask <= 4; ask++) expect((await postmap('learned.test', port)).exitCode, `lookup ${ask}`).toBe(0);
      await waitFor(
        'the sighting in the state file',
        async () => {
          const stored = JSON.parse(await readFile(join(dir, 'state', 'xpony-sightings.json'), 'utf8').catch(() => '{}')) as { seen?: Record<string, number> };
          return (stored.seen?.['learned.test'] ?? 0) > Date.now() ? true : undefined;
        },
        { diagnostics: () => daemon.output() },
      );
    });

    it('a _pony record one worker fetched holds in every worker once it is stripped from DNS, within its max-age', async () => {
      await dns.restart({ ...records, txt: [...(records.txt ?? []), { name: '_pony.strip.test', value: recordB }] });
      expect((await postmap('strip.test', port)).exitCode).toBe(0);
      // A forger drops the record: the worker that never fetched it must not send the legacy way.
      await dns.restart(records);
      for (let ask = 1; ask <= 4; ask++) {
        const answer = await postmap('strip.test', port);
        expect(answer.exitCode, `lookup ${ask}: ${answer.output}`).toBe(0);
      }
      expect(
        jsonLogLines(daemon)
          .filter((l) => l.domain === 'strip.test' && l.route === 'blackpony')
          .map((l) => l.worker),
      ).toEqual(expect.arrayContaining([1, 2]));
    });

    it('a worker started after the sighting routes by it at once, and the sighting was logged once', async () => {
      const [first] = jsonLogLines(daemon).find((l) => l.msg === 'listening')!.workers as number[];
      process.kill(first!, 'SIGKILL');
      await waitFor(
        'the replacement worker listens',
        () => (jsonLogLines(daemon).filter((l) => l.msg === 'worker listening').length === 3 ? true : undefined),
        {
          diagnostics: () => daemon.output(),
        },
      );
      for (let ask = 1; ask <= 4; ask++) expect((await postmap('learned.test', port)).exitCode, `lookup ${ask}`).toBe(0);
      // By the worker that learned it, not again by each one told.
      expect(sightingLines()).toHaveLength(1);
    });
  });

  describe('end to end, Postfix A with deploy/postfix/outbound-lookup.cf', () => {
    let postfixA: PostfixInstance;
    let legacy: PostfixInstance;

    beforeAll(async () => {
      legacy = await startPostfix({ hostname: 'mx.legacy.test', mailboxes: ['carol@legacy.test'] });
      const lookup = mainCfSnippet('outbound-lookup.cf');
      // This Postfix does not use DNS: the legacy domains get explicit next hops after blackpony's map.
      const nexthops = `inline:{ {legacy.test=smtp:[127.0.0.1]:${legacy.port}}, {strict.test=smtp:[${MX_LEGACY}]:${legacyMx.port}} }`;
      postfixA = await startPostfix({
        hostname: 'mx.a.test',
        mainCf: {
          ...lookup,
          transport_maps: `${lookup.transport_maps!.replace(SNIPPET_LOOKUP_PORT, String(lookupPort))}, ${nexthops}`,
          smtp_tls_policy_maps: `inline:{ {[${MX_LEGACY}]:${legacyMx.port}=encrypt} }`,
          default_transport: 'error:no route in this test',
        },
        masterCf: [masterCfEntries('outbound-master.cf')],
      });
      expect(lookup.transport_maps).toContain(SNIPPET_LOOKUP_PORT);
      expect(SNIPPET_OUTBOUND_PORT).toBe('10587');
    });

    afterAll(async () => {
      await postfixA?.stop();
      await legacy?.stop();
    });

    it("sends mail for a blackpony domain through the tunnel, and mail for a legacy domain through Postfix's own smtp", async () => {
      const tunnelled = await runSwaks({
        server: `127.0.0.1:${postfixA.port}`,
        from: 'alice@a.test',
        to: 'bob@rec.test',
        headers: { Subject: 'through the tunnel' },
      });
      expect(tunnelled.exitCode, tunnelled.transcript).toBe(0);
      const [delivered] = await behindB.postfix.waitForDelivery('bob@rec.test', 1);
      expect(delivered!.bytes.toString('latin1')).toMatch(/^X-Pony-Trace: .*via=xpony/m);

      const plain = await runSwaks({
        server: `127.0.0.1:${postfixA.port}`,
        from: 'alice@a.test',
        to: 'carol@legacy.test',
        headers: { Subject: 'the legacy way' },
      });
      expect(plain.exitCode, plain.transcript).toBe(0);
      const [legacyCopy] = await legacy.waitForDelivery('carol@legacy.test', 1);
      expect(legacyCopy!.bytes.toString('latin1')).not.toMatch(/X-Pony-Trace/);
      await postfixA.waitForLog(/to=<carol@legacy\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent/);
      // blackpony was asked about it, and never saw the message.
      expect(jsonLogLines(daemonA).some((l) => l.key === 'carol@legacy.test' && l.route === 'postfix')).toBe(true);
      expect(jsonLogLines(daemonA).filter((l) => typeof l.msg === 'string' && l.msg.startsWith('delivery') && l.domain === 'legacy.test')).toEqual([]);
    });

    it('with blackpony down, Postfix keeps the mail deferred (nothing bounced, nothing sent the legacy way) and delivers it once blackpony is back', async () => {
      const downPort = await freePort();
      const lookup = mainCfSnippet('outbound-lookup.cf');
      const postfixC = await startPostfix({
        hostname: 'mx.c.test',
        mainCf: {
          ...lookup,
          transport_maps: lookup.transport_maps!.replace(SNIPPET_LOOKUP_PORT, String(downPort)),
          default_transport: 'error:no route in this test',
          // smtpd keeps resolved addresses, failures included, for its process's lifetime; a client's
          // retry minutes later meets a new process (max_idle), which one use per process stands in for.
          max_use: '1',
        },
        masterCf: [masterCfEntries('outbound-master.cf')],
      });
      let daemonC: ManagedProcess | undefined;
      try {
        const sent = await runSwaks({
          server: `127.0.0.1:${postfixC.port}`,
          from: 'carl@c.test',
          to: 'bob@rec.test',
          headers: { Subject: 'while blackpony was down' },
        });
        // Postfix cannot resolve the recipient's transport now: smtpd answers 4xx (the client retries) or queues and defers.
        const deferredAtRcpt = /<\*\* +4\d\d /.test(sent.transcript);
        if (!deferredAtRcpt) {
          expect(sent.exitCode, sent.transcript).toBe(0);
          await postfixC.waitForQueue('the message deferred', (queue) =>
            queue.some((m) => m.recipients.some((r) => r.address === 'bob@rec.test' && r.delayReason !== undefined)),
          );
        }
        expect(await postfixC.readLog()).not.toMatch(/status=bounced/);
        ({ daemon: daemonC } = await startDaemon(
          'c',
          generateKeys(),
          [
            'inbound: {enabled: false}',
            `outbound: {listen: "127.0.0.1:${await freePort()}", resolver: ["127.0.0.1:${dns.port}"], mx_port: ${mxPortShared},`,
            `  transport_lookup: {listen: "127.0.0.1:${downPort}"}}`,
            'metrics: {listen: ""}',
            '',
          ].join('\n'),
        ));
        if (deferredAtRcpt) {
          // The client retries, as any SMTP client does after a 4xx, until Postfix asks blackpony again.
          await waitFor(
            'the retried message accepted',
            async () =>
              (
                await runSwaks({
                  server: `127.0.0.1:${postfixC.port}`,
                  from: 'carl@c.test',
                  to: 'bob@rec.test',
                  headers: { Subject: 'while blackpony was down' },
                })
              ).exitCode === 0
                ? true
                : undefined,
            { intervalMs: 1_000, diagnostics: () => postfixC.readLog() },
          );
        }
        // Queue runs retry what qmgr deferred while the lookup failed; a flush asks for one now.
        await waitFor(
          'the message delivered through the tunnel',
          async () => {
            await postfixC.flush();
            const delivered = await behindB.postfix.maildirMessages('bob@rec.test');
            return delivered.some((m) => /Subject: while blackpony was down/.test(m.bytes.toString('latin1'))) ? true : undefined;
          },
          { intervalMs: 1_000, diagnostics: async () => `${await postfixC.readLog()}\n${daemonC?.output() ?? ''}` },
        );
      } finally {
        await daemonC?.stop();
        await postfixC.stop();
      }
    });

    it("keeps Postfix's own TLS policy for legacy mail: an encrypt entry defers mail to a receiver without STARTTLS", async () => {
      const sent = await runSwaks({
        server: `127.0.0.1:${postfixA.port}`,
        from: 'alice@a.test',
        to: 'dave@strict.test',
        headers: { Subject: 'must be encrypted' },
      });
      expect(sent.exitCode, sent.transcript).toBe(0);
      const [queued] = await postfixA.waitForQueue('dave@strict.test deferred for want of TLS', (queue) =>
        queue.some((m) => m.recipients.some((r) => r.address === 'dave@strict.test' && /TLS is required/.test(r.delayReason ?? ''))),
      );
      expect(queued).toBeDefined();
      expect(legacyMx.messageCount()).toBe(0);
    });
  });
});
