/**
 * `blackpony run` as users run it (the built CLI, a child process) in front of a real Postfix:
 * it relays mail, reloads keys and settings on SIGHUP without dropping sessions, survives a broken
 * config on SIGHUP, drains a session in progress on SIGTERM, and takes its socket from systemd.
 * With Postfix unreachable or refusing XCLIENT, clients learn nothing of it and the log says why.
 */
import { writeFileSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/crypto/fingerprint.js';
import { generateKeys, writeKeyFile, type Keys } from '../../src/crypto/keyfile.js';
import { connectXpony } from '../../src/xpony/index.js';
import { openInnerSmtp } from './inner-smtp.js';
import { cliWorkDir, PROJECT_ROOT, runCli } from '../harness/cli.js';
import { freePort } from '../harness/ports.js';
import { startPostfix, type PostfixInstance } from '../harness/postfix.js';
import { startProcess, type ManagedProcess } from '../harness/processes.js';
import { jsonLogLines } from '../harness/daemon-log.js';
import { ListenError, systemdSockets } from '../../src/daemon/listen.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { startSocketActivated, SYSTEMD_SOCKET_ACTIVATE } from '../harness/socket-activate.js';
import { runSwaks } from '../harness/swaks.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { loadScaled, waitFor } from '../harness/wait.js';
import { MAILBOX, startPostfixBehind, type PostfixBehind } from './inbound-fixtures.js';
import { clientKeys, RawSmtp } from './xpony-fixtures.js';

const CLI = join(PROJECT_ROOT, 'bin/blackpony.js');
const HOST = 'mx.daemon.test';

/**
 * Inbound in front of Postfix, naming clients through `ports.dns`; outbound and metrics on the
 * given ports, or off. The outbound side sends d.test mail to the inbound side (`listen`).
 */
function configText(keysPath: string, listen: string, postfixPort: number, ports: { outbound?: number; metrics?: number; dns?: number } = {}): string {
  return [
    `hostname: ${HOST}`,
    `keys: ${keysPath}`,
    'state_dir: .',
    // One process: per-client limits, log lines and SIGTERM here are one daemon's (workers.test.ts has several).
    'workers: 1',
    'inbound:',
    `  listen: "${listen}"`,
    `  postfix: 127.0.0.1:${postfixPort}`,
    ...(ports.dns === undefined ? [] : [`  resolver: ["127.0.0.1:${ports.dns}"]`]),
    ports.outbound === undefined
      ? 'outbound: {enabled: false}'
      : `outbound: {listen: "127.0.0.1:${ports.outbound}", routes: {d.test: "${listen.replace(/^([^:]+):/, '[$1]:')}"}}`,
    `metrics: {listen: "${ports.metrics === undefined ? '' : `127.0.0.1:${ports.metrics}`}"}`,
    '',
  ].join('\n');
}

async function waitForLog(daemon: ManagedProcess, msg: string, count = 1): Promise<Array<Record<string, unknown>>> {
  return waitFor(
    `blackpony log line "${msg}" (${count})`,
    () => {
      const lines = jsonLogLines(daemon, msg);
      return lines.length >= count ? lines : undefined;
    },
    { diagnostics: () => daemon.output() },
  );
}

/** Replaces a key file the way an operator would: a new file renamed over the old one. */
async function replaceKeyFile(path: string, keys: Keys): Promise<void> {
  await writeKeyFile(`${path}.new`, keys);
  await rename(`${path}.new`, path);
}

/** Where sendOne's client connects from, and the name DNS gives that address. */
const CLIENT = { address: '127.0.0.7', name: 'client.daemon.test' };

async function sendOne(port: number, subject: string, behind: PostfixBehind): Promise<string> {
  const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
  const result = await runSwaks({
    server: `127.0.0.1:${port}`,
    from: 'alice@sender.test',
    to: MAILBOX,
    headers: { Subject: subject },
    extraArgs: ['--local-interface', CLIENT.address],
  });
  expect(result.exitCode, result.transcript).toBe(0);
  const delivered = await behind.postfix.waitForDelivery(MAILBOX, before + 1);
  return delivered.map((message) => message.bytes.toString('utf8')).find((text) => text.includes(`Subject: ${subject}`)) ?? '';
}

/** The server's Noise static key as an XPONY client sees it. */
/** What the server's Noise message 2 said: its key's fingerprint, and whether it announced the sealed relay. */
async function serverHandshake(port: number): Promise<{ fingerprint: string; sealedRelay: boolean }> {
  const result = await connectXpony({ host: '127.0.0.1', port, localHostName: 'mta.sender.test', keys: clientKeys() });
  if (result.kind !== 'tunnel') throw new Error('expected an XPONY tunnel');
  const inner = await openInnerSmtp(result.tunnel, { localHostName: 'mta.sender.test' });
  await inner.quit();
  return { fingerprint: result.fingerprint, sealedRelay: result.sealedRelay };
}

async function serverKeyFingerprint(port: number): Promise<string> {
  return (await serverHandshake(port)).fingerprint;
}

describe('systemd socket activation variables', () => {
  it('takes LISTEN_FDS sockets from fd 3 for this process with their names, and removes the variables', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '1234', LISTEN_FDS: '3', LISTEN_FDNAMES: 'smtp:smtp:outbound', PATH: '/bin' };
    expect(systemdSockets('inbound.listen', env, 1234)).toEqual([
      { fd: 3, name: 'smtp' },
      { fd: 4, name: 'smtp' },
      { fd: 5, name: 'outbound' },
    ]);
    expect(env).toEqual({ PATH: '/bin' });
    // systemd-socket-activate without --fdname passes no names: sd_listen_fds_with_names says "unknown".
    expect(systemdSockets('inbound.listen', { LISTEN_PID: '1234', LISTEN_FDS: '1' }, 1234)).toEqual([{ fd: 3, name: 'unknown' }]);
  });

  it('refuses sockets meant for another process, missing variables, and a bad count', () => {
    expect(() => systemdSockets('inbound.listen', { LISTEN_PID: '99', LISTEN_FDS: '1' }, 1234)).toThrow(
      new ListenError('inbound.listen: "systemd", but the passed sockets are for process "99", not this one (1234)'),
    );
    expect(() => systemdSockets('outbound.listen', {}, 1234)).toThrow(
      /^outbound\.listen: "systemd", but no sockets were passed \(LISTEN_PID and LISTEN_FDS unset\)/,
    );
    for (const count of ['0', '-1', 'two', '']) {
      expect(() => systemdSockets('inbound.listen', { LISTEN_PID: '1234', LISTEN_FDS: count }, 1234)).toThrow(ListenError);
    }
  });
});

describe('blackpony run: configuration problems', () => {
  it('prints every problem, one per line, and exits 1 without starting', () => {
    const dir = cliWorkDir('run-config');
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'hostname: not a host\ninbound:\n  listen: nowhere\n');
    const run = runCli(dir, ['run', '--config', path]);
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trimEnd().split('\n')).toEqual([
      'blackpony: run: config: hostname: expected a fully qualified domain name like mail.example.org, got "not a host"',
      'blackpony: run: config: keys: required',
      'blackpony: run: config: inbound.listen: expected HOST:PORT or "systemd", got "nowhere" (no port)',
    ]);
  });

  it('shows an example in --help, and says what SIGHUP does', () => {
    const help = runCli(cliWorkDir('run-help'), ['run', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('blackpony run --config /etc/blackpony/config.yaml --keys /etc/blackpony/keys');
    expect(help.stdout).toMatch(/SIGHUP reloads the configuration and key file/);
  });
});

describeWith([ROOT, POSTFIX, SWAKS, DNSMASQ], 'blackpony run in front of a real Postfix', () => {
  let behind: PostfixBehind;
  let dns: TestDns;
  let dir: string;
  let configPath: string;
  let keysPath: string;
  let port: number;
  let outboundPort: number;
  let metricsPort: number;
  let daemon: ManagedProcess;
  const firstKeys = generateKeys();

  beforeAll(async () => {
    behind = await startPostfixBehind();
    // The client's name, which the daemon looks up (inbound.client_name_lookup) and Postfix records.
    dns = await startDns({ a: [{ host: CLIENT.name, address: CLIENT.address }] });
    dir = await makeTempDir('daemon-run');
    keysPath = join(dir, 'keys');
    configPath = join(dir, 'config.yaml');
    await writeKeyFile(keysPath, firstKeys);
    [port, outboundPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
    await writeFile(
      configPath,
      configText(keysPath, `127.0.0.1:${port}`, behind.listenerPort, { outbound: outboundPort, metrics: metricsPort, dns: dns.port }),
    );
    daemon = await startProcess('blackpony run', process.execPath, [CLI, 'run', '--config', configPath], { cwd: dir });
    await waitForLog(daemon, 'listening');
  });
  afterAll(async () => {
    await daemon?.stop();
    await behind?.postfix.stop();
    await dns?.stop();
  });

  it('logs one "listening" line with the inbound, outbound and metrics addresses and the public fingerprint', () => {
    const [listening] = jsonLogLines(daemon, 'listening');
    expect(listening?.addresses).toEqual({ inbound: [`127.0.0.1:${port}`], outbound: [`127.0.0.1:${outboundPort}`], metrics: `127.0.0.1:${metricsPort}` });
    expect(listening?.fingerprint).toBe(fingerprint(firstKeys.noise.publicKey));
  });

  it('serves Prometheus metrics, and its outbound side answers Postfix over LMTP', async () => {
    const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(scraped).toMatch(/^blackpony_build_info\{version="[^"]+"\} 1$/m);
    const lmtp = await RawSmtp.connect(outboundPort);
    expect((await lmtp.reply()).lines[0]).toMatch(/ LMTP/);
    expect(await lmtp.command('LHLO client.test')).toMatch(/^250 /);
    expect(await lmtp.command('QUIT')).toMatch(/^221 /);
  });

  it("relays a message to Postfix's Maildir, and counts the session and the message", async () => {
    const delivered = await sendOne(port, 'through the daemon', behind);
    expect(delivered).toMatch(new RegExp(`^X-Pony-Trace: v=1; by=${HOST.replace(/\./g, '\\.')}; via=plain;`, 'm'));
    expect(delivered).toMatch(/^Received: from \S+ \(client\.daemon\.test \[127\.0\.0\.7\]\)/m);
    const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(scraped).toMatch(/^blackpony_inbound_messages_total\{via="plain",sealed="false",outcome="accepted"\} [1-9]/m);
    expect(scraped).toMatch(/^blackpony_sessions_total\{side="inbound"\} [1-9]/m);
    // One log line per message, tied to Postfix's queue id by Postfix's own reply.
    const [line] = jsonLogLines(daemon, 'message accepted: via plain');
    expect(line).toMatchObject({ side: 'inbound', outcome: 'accepted', via: 'plain', sealed: false, client: CLIENT.address });
    expect(line?.reply).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-Za-z]+$/);
    expect(line?.bytes).toBeGreaterThan(100);
  });

  it('SIGHUP with a new key file: keeps serving, and new XPONY handshakes show the new key', async () => {
    expect(await serverKeyFingerprint(port)).toBe(fingerprint(firstKeys.noise.publicKey));
    const nextKeys = generateKeys();
    await replaceKeyFile(keysPath, nextKeys);
    process.kill(daemon.pid, 'SIGHUP');
    await waitForLog(daemon, 'reloaded');
    expect(await serverKeyFingerprint(port)).toBe(fingerprint(nextKeys.noise.publicKey));
    await sendOne(port, 'after the key reload', behind);
    // The log names the key file and its public fingerprint, never the secret.
    for (const keys of [firstKeys, nextKeys]) {
      expect(daemon.stderr()).not.toContain(Buffer.from(keys.noise.privateKey).toString('base64'));
      expect(daemon.stderr()).not.toContain(keys.ageX25519Identity);
      expect(daemon.stderr()).not.toContain(keys.ageHybridIdentity);
    }
    expect(daemon.stderr()).not.toMatch(/AGE-SECRET-KEY|noise-static/i);
  });

  it('SIGHUP turning inbound.sealed_relay on: new handshakes announce the sealed relay, and stop when it is off again', async () => {
    const good = configText(keysPath, `127.0.0.1:${port}`, behind.listenerPort, { outbound: outboundPort, metrics: metricsPort, dns: dns.port });
    expect((await serverHandshake(port)).sealedRelay).toBe(false);
    const announcing = good.replace(`  postfix: 127.0.0.1:${behind.listenerPort}`, `  postfix: 127.0.0.1:${behind.listenerPort}\n  sealed_relay: true`);
    expect(announcing).toContain('sealed_relay: true');
    for (const [text, expected] of [
      [announcing, true],
      [good, false],
    ] as const) {
      await writeFile(configPath, text);
      const reloads = jsonLogLines(daemon, 'reloaded').length;
      process.kill(daemon.pid, 'SIGHUP');
      await waitForLog(daemon, 'reloaded', reloads + 1);
      expect((await serverHandshake(port)).sealedRelay).toBe(expected);
    }
  });

  it('SIGHUP with a broken config: logs every problem, keeps the previous configuration and serves on', async () => {
    const good = configText(keysPath, `127.0.0.1:${port}`, behind.listenerPort, { dns: dns.port });
    await writeFile(configPath, good.replace(`hostname: ${HOST}`, 'hostname: not a host').replace('  postfix: ', '  postfix: nowhere\n  bogus: '));
    const failures = jsonLogLines(daemon, 'reload failed; still running with the previous configuration').length;
    process.kill(daemon.pid, 'SIGHUP');
    await waitForLog(daemon, 'reload failed; still running with the previous configuration', failures + 1);
    expect(jsonLogLines(daemon, 'config: hostname: expected a fully qualified domain name like mail.example.org, got "not a host"')).toHaveLength(1);
    expect(jsonLogLines(daemon, 'config: inbound.bogus: unknown setting')).toHaveLength(1);
    expect(daemon.status).toBeNull();
    await sendOne(port, 'after the broken reload', behind);
    await writeFile(configPath, good);
  });

  it('SIGHUP with changed settings: a session in progress completes, new sessions get them, restart-only changes are named', async () => {
    const good = configText(keysPath, `127.0.0.1:${port}`, behind.listenerPort, { outbound: outboundPort, metrics: metricsPort, dns: dns.port });
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    const inProgress = await RawSmtp.connect(port);
    expect((await inProgress.reply()).code).toBe(220);
    expect(await inProgress.command('EHLO early.sender.test')).toMatch(/^250 /);
    expect(await inProgress.command('MAIL FROM:<early@sender.test>')).toMatch(/^250 /);
    expect(await inProgress.command(`RCPT TO:<${MAILBOX}>`)).toMatch(/^250 /);

    const changed = good
      .replace(`  postfix: 127.0.0.1:${behind.listenerPort}`, `  postfix: 127.0.0.1:${behind.listenerPort}\n  max_clients: 1\n  timeouts: {idle_seconds: 2}`)
      .replace(`metrics: {listen: "127.0.0.1:${metricsPort}"}`, 'metrics: {listen: ""}\nlog: {level: debug}');
    expect(changed).toContain('max_clients: 1');
    expect(changed).toContain('metrics: {listen: ""}');
    await writeFile(configPath, changed);
    const reloads = jsonLogLines(daemon, 'reloaded').length;
    process.kill(daemon.pid, 'SIGHUP');
    await waitForLog(daemon, 'reloaded', reloads + 1);
    const [warning] = daemon
      .stderr()
      .split('\n')
      .filter((line) => line.includes('take effect on restart'))
      .slice(-1)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(warning?.settings).toEqual(['metrics.listen']);
    // metrics.listen is restart-only: still served.
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(200);

    // max_clients 1: the session in progress fills it, so a new client is turned away...
    const second = await RawSmtp.connect(port);
    expect(`${(await second.reply()).code}`).toBe('421');
    await second.closed();
    // ...while the session that began before the reload completes its message.
    expect(await inProgress.command('DATA')).toMatch(/^354 /);
    inProgress.write('Subject: begun before the reload\r\n\r\nbody\r\n.\r\n');
    expect((await inProgress.reply()).code).toBe(250);
    expect(await inProgress.command('QUIT')).toMatch(/^221 /);
    const delivered = await behind.postfix.waitForDelivery(MAILBOX, before + 1);
    expect(delivered.some((m) => m.bytes.includes('Subject: begun before the reload'))).toBe(true);

    // idle_seconds 2 for new sessions; log.level debug takes effect too.
    const idle = await RawSmtp.connect(port);
    expect((await idle.reply()).code).toBe(220);
    const started = performance.now();
    expect((await idle.reply()).code).toBe(421);
    expect(performance.now() - started).toBeLessThan(loadScaled(10_000));
    await idle.closed();
    expect(daemon.stderr()).toMatch(/"level":20,/);

    const restores = jsonLogLines(daemon, 'reloaded').length;
    await writeFile(configPath, good);
    process.kill(daemon.pid, 'SIGHUP');
    await waitForLog(daemon, 'reloaded', restores + 1);
  });

  it('SIGHUP with new per-client limits: they apply at once, the refusal is logged and counted', async () => {
    const good = configText(keysPath, `127.0.0.1:${port}`, behind.listenerPort, { outbound: outboundPort, metrics: metricsPort, dns: dns.port });
    const limited = good.replace(
      `  postfix: 127.0.0.1:${behind.listenerPort}`,
      `  postfix: 127.0.0.1:${behind.listenerPort}\n  limits: {connections_per_client: 1, exemptions: ["127.0.0.1"]}`,
    );
    expect(limited).toContain('connections_per_client: 1');
    await writeFile(configPath, limited);
    const reloads = jsonLogLines(daemon, 'reloaded').length;
    process.kill(daemon.pid, 'SIGHUP');
    await waitForLog(daemon, 'reloaded', reloads + 1);

    // 127.0.0.2 is no longer exempt (loopback was, by default): its second connection is refused.
    const first = await RawSmtp.connect(port, '127.0.0.2');
    expect((await first.reply()).code).toBe(220);
    const second = await RawSmtp.connect(port, '127.0.0.2');
    const refusal = await second.reply();
    expect(`${refusal.code} ${refusal.lines[0]}`).toBe(`421 4.7.0 ${HOST} Error: too many connections from 127.0.0.2`);
    await second.closed();
    // Another address, and the exempt one, are still served.
    const other = await RawSmtp.connect(port, '127.0.0.3');
    expect((await other.reply()).code).toBe(220);
    const exempt = [await RawSmtp.connect(port), await RawSmtp.connect(port)];
    for (const smtp of exempt) expect((await smtp.reply()).code).toBe(220);
    for (const smtp of [first, other, ...exempt]) expect(await smtp.command('QUIT')).toMatch(/^221 /);

    await waitForLog(daemon, 'limit connections_per_client: 127.0.0.2');
    const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(scraped).toMatch(/^blackpony_limit_refusals_total\{limit="connections_per_client"\} 1$/m);

    const restores = jsonLogLines(daemon, 'reloaded').length;
    await writeFile(configPath, good);
    process.kill(daemon.pid, 'SIGHUP');
    await waitForLog(daemon, 'reloaded', restores + 1);
  });

  it('SIGTERM during a slow DATA, inbound and outbound: both sessions complete and are delivered, new connections are refused, exit 0', async () => {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    // Outbound: Postfix's LMTP session, relayed through a tunnel to this daemon's own inbound side.
    const sides = [
      { port: outboundPort, greeting: 'LHLO postfix.daemon.test', from: 'out@daemon.test', body: 'the outbound body, sent after SIGTERM' },
      { port, greeting: 'EHLO slow.sender.test', from: 'slow@sender.test', body: 'the body, sent after SIGTERM' },
    ];
    const sessions: RawSmtp[] = [];
    for (const side of sides) sessions.push(await startSlowData(side.port, side.greeting, side.from));

    process.kill(daemon.pid, 'SIGTERM');
    await waitForLog(daemon, 'stopping: no new connections; waiting for sessions in progress');
    for (const side of sides) {
      const refused = await RawSmtp.connect(side.port).then(
        () => false,
        (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED',
      );
      expect(refused, `new connection to ${side.port}`).toBe(true);
    }
    expect(daemon.status).toBeNull();

    for (const [i, side] of sides.entries()) {
      const session = sessions[i]!;
      session.write(`${side.body}\r\n.\r\n`);
      const reply = await session.reply();
      expect(`${reply.code} ${reply.lines[0] ?? ''}`).toMatch(/^250 .*queued as /);
      // The transaction in progress finished; the next command is refused, and the connection closed.
      expect(await session.command('MAIL FROM:<again@sender.test>')).toMatch(/^421 .*Server shutting down$/);
      await session.closed();
    }
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
    expect(jsonLogLines(daemon, 'stopped')).toHaveLength(1);
    const delivered = await behind.postfix.waitForDelivery(MAILBOX, before + 2);
    for (const { body } of sides) {
      expect(
        delivered.filter((message) => message.bytes.toString('utf8').includes(body)),
        body,
      ).toHaveLength(1);
    }
  });
});

/** A session to `port` (SMTP, or LMTP with LHLO) that is inside DATA, its header sent, its body not yet. */
async function startSlowData(port: number, greeting: string, from: string): Promise<RawSmtp> {
  const session = await RawSmtp.connect(port);
  expect((await session.reply()).code).toBe(220);
  expect(await session.command(greeting)).toMatch(/^250 /);
  expect(await session.command(`MAIL FROM:<${from}>`)).toMatch(/^250 /);
  expect(await session.command(`RCPT TO:<${MAILBOX}>`)).toMatch(/^250 /);
  expect(await session.command('DATA')).toMatch(/^354 /);
  session.write(`From: ${from}\r\nSubject: slow data\r\nDate: Sun, 22 Nov 2026 00:00:00 +0000\r\nMessage-ID: <slow-${port}@sender.test>\r\n\r\n`);
  return session;
}

describeWith([ROOT, POSTFIX, SWAKS, SYSTEMD_SOCKET_ACTIVATE], 'blackpony run with systemd socket activation', () => {
  let behind: PostfixBehind;
  let daemon: ManagedProcess;
  let ports: number[];

  beforeAll(async () => {
    behind = await startPostfixBehind();
    const dir = await makeTempDir('daemon-systemd');
    const keysPath = join(dir, 'keys');
    await writeKeyFile(keysPath, generateKeys());
    const configPath = join(dir, 'config.yaml');
    await writeFile(configPath, configText(keysPath, 'systemd', behind.listenerPort));
    ports = [await freePort(), await freePort()];
    // Two sockets, like blackpony.socket's IPv4 and IPv6 port 25: systemd-socket-activate binds them,
    // then execs the daemon with LISTEN_FDS=2 and LISTEN_PID set to the daemon's own pid.
    daemon = await startSocketActivated(
      'blackpony run (socket-activated)',
      ports.map((port) => `127.0.0.1:${port}`),
      [process.execPath, CLI, 'run', '--config', configPath],
      { cwd: dir },
    );
  });
  afterAll(async () => {
    await daemon?.stop();
    await behind?.postfix.stop();
  });

  it('serves on both passed sockets (fds 3 and 4) and relays a message through each', async () => {
    // In non-accept mode the daemon starts at the first connection; swaks waits for the greeting meanwhile.
    await sendOne(ports[0]!, 'socket activated, fd 3', behind);
    await sendOne(ports[1]!, 'socket activated, fd 4', behind);
    const [listening] = await waitForLog(daemon, 'listening');
    expect(listening?.addresses).toEqual({ inbound: ports.map((port) => `127.0.0.1:${port}`), outbound: [], metrics: undefined });
  });

  it('stops with exit 0 on SIGTERM', async () => {
    expect(await daemon.stop()).toEqual({ code: 0, signal: null });
  });
});

describeWith([ROOT, POSTFIX], 'blackpony run when Postfix cannot be used', () => {
  let postfix: PostfixInstance;
  let daemon: ManagedProcess;
  let dir: string;
  let configPath: string;
  let port: number;
  let metricsPort: number;
  let refusingPort: number;

  /** One client session up to MAIL; resolves with the reply to MAIL. */
  async function mailReply(): Promise<string> {
    const smtp = await RawSmtp.connect(port);
    try {
      await smtp.reply();
      expect(await smtp.command('EHLO client.daemon.test')).toMatch(/^250/);
      return await smtp.command('MAIL FROM:<a@sender.test>');
    } finally {
      smtp.stream.destroy();
    }
  }

  async function failuresCounted(kind: string): Promise<number> {
    const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return Number(new RegExp(`^blackpony_postfix_failures_total\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(scraped)?.[1]);
  }

  beforeAll(async () => {
    // A Postfix whose smtpd does not grant XCLIENT (the harness's own listener), and a port nobody listens on.
    postfix = await startPostfix();
    dir = await makeTempDir('daemon-postfix-down');
    const keysPath = join(dir, 'keys');
    configPath = join(dir, 'config.yaml');
    await writeKeyFile(keysPath, generateKeys());
    [port, metricsPort, refusingPort] = [await freePort(), await freePort(), await freePort()];
    await writeFile(
      configPath,
      configText(keysPath, `127.0.0.1:${port}`, refusingPort, { metrics: metricsPort }).replace('  postfix: ', '  client_name_lookup: false\n  postfix: '),
    );
    daemon = await startProcess('blackpony run', process.execPath, [CLI, 'run', '--config', configPath], { cwd: dir });
    await waitForLog(daemon, 'listening');
  });
  afterAll(async () => {
    await daemon?.stop();
    await postfix?.stop();
  });

  it('connection refused: the client gets 451 4.4.1 without address, port or errno; the log names the listener and the reason once', async () => {
    // The look at Postfix at start failed already, and says so.
    const [first] = await waitForLog(daemon, 'postfix unavailable');
    expect(first).toMatchObject({ level: 40, side: 'inbound', kind: 'connect', postfix: `127.0.0.1:${refusingPort}` });
    expect(first?.reason).toMatch(new RegExp(`127\\.0\\.0\\.1:${refusingPort}: connect ECONNREFUSED`));
    const replies = [await mailReply(), await mailReply()];
    for (const reply of replies) {
      expect(reply).toBe('451 4.4.1 mail system temporarily unavailable, try again later');
      expect(reply).not.toMatch(new RegExp(`127\\.0\\.0\\.1|${refusingPort}|ECONNREFUSED`));
    }
    expect(await failuresCounted('connect')).toBe(3);
    // Repeats of the same failure within the minute are counted, not logged.
    expect(jsonLogLines(daemon, 'postfix unavailable')).toHaveLength(1);
  });

  it('XCLIENT not offered: 451 4.3.0 for the client, a warning that says what to set for the operator', async () => {
    await writeFile(configPath, (await readFile(configPath, 'utf8')).replace(`postfix: 127.0.0.1:${refusingPort}`, `postfix: 127.0.0.1:${postfix.port}`));
    process.kill(daemon.pid, 'SIGHUP');
    await waitForLog(daemon, 'reloaded');
    expect(await mailReply()).toBe('451 4.3.0 mail system temporarily unavailable, try again later');
    const [, line] = await waitForLog(daemon, 'postfix unavailable', 2);
    expect(line).toMatchObject({ level: 40, kind: 'refused', postfix: `127.0.0.1:${postfix.port}` });
    expect(line?.reason).toMatch(/^XCLIENT not offered \(set smtpd_authorized_xclient_hosts/);
    expect(await failuresCounted('refused')).toBe(1);
  });
});
