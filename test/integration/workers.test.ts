/**
 * `blackpony run` with `workers: 2` (the built CLI, a child process) in front of a real Postfix:
 * sessions are served by both workers, each message arrives byte for byte, a worker SIGKILLed in
 * the middle of DATA costs its client the connection (never a 250) and is restarted while the
 * other serves, /metrics counts every worker's messages, SIGHUP reaches each worker (the primary is
 * done once each has reloaded), SIGTERM to
 * the primary stops them all; the same under systemd socket activation; and the outbound side's
 * unix socket file and the transport lookup's port served by both.
 */
import { once } from 'node:events';
import { stat, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateKeys, writeKeyFile } from '../../src/crypto/keyfile.js';
import { connectXpony } from '../../src/xpony/index.js';
import { PROJECT_ROOT } from '../harness/cli.js';
import { jsonLogLines } from '../harness/daemon-log.js';
import { freePort } from '../harness/ports.js';
import { startProcess, type ManagedProcess } from '../harness/processes.js';
import { describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { startSocketActivated, SYSTEMD_SOCKET_ACTIVATE } from '../harness/socket-activate.js';
import { runSwaks } from '../harness/swaks.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';
import { MAILBOX, startPostfixBehind, type PostfixBehind } from './inbound-fixtures.js';
import { openInnerSmtp } from './inner-smtp.js';
import { clientKeys, RawSmtp } from './xpony-fixtures.js';

const CLI = join(PROJECT_ROOT, 'bin/blackpony.js');

/** What a message's sender wrote; it must arrive unchanged below Postfix's Received and the trace header. */
function original(subject: string): string {
  return [
    'From: Alice <alice@sender.test>',
    `To: ${MAILBOX}`,
    `Subject: ${subject}`,
    'Date: Sat, 05 Dec 2026 00:00:00 +0000',
    `Message-ID: <${subject.replace(/\W/g, '-')}@sender.test>`,
    '',
    '.a line with a dot',
    'caf\u00e9 8-bit',
    '',
  ].join('\n');
}

/** A `blackpony run` with two workers and debug logging (each session's opening names its worker). */
async function startWorkers(
  behind: PostfixBehind,
  listen: string,
  launch: (configPath: string) => Promise<ManagedProcess>,
  metricsPort?: number,
): Promise<ManagedProcess> {
  const dir = await makeTempDir('workers');
  await writeKeyFile(join(dir, 'keys'), generateKeys());
  const configPath = join(dir, 'config.yaml');
  const config = [
    'hostname: mx.workers.test',
    'keys: keys',
    'state_dir: .',
    'workers: 2',
    'log: {level: debug}',
    `inbound: {listen: "${listen}", postfix: "127.0.0.1:${behind.listenerPort}"}`,
    'outbound: {enabled: false}',
    `metrics: {listen: "${metricsPort === undefined ? '' : `127.0.0.1:${metricsPort}`}"}`,
    '',
  ];
  await writeFile(configPath, config.join('\n'));
  return launch(configPath);
}

function logLines(daemon: ManagedProcess, msg: string, count = 1): Promise<Array<Record<string, unknown>>> {
  return waitFor(
    `log line "${msg}" (${count})`,
    () => {
      const lines = jsonLogLines(daemon, msg);
      return lines.length >= count ? lines : undefined;
    },
    { diagnostics: () => daemon.output() },
  );
}

/** Sends `original(subject)` with swaks; resolves with the delivered bytes. */
async function deliver(port: number, subject: string, behind: PostfixBehind): Promise<Buffer> {
  const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
  const result = await runSwaks({ server: `127.0.0.1:${port}`, from: 'alice@sender.test', to: MAILBOX, data: Buffer.from(original(subject), 'utf8') });
  expect(result.exitCode, result.transcript).toBe(0);
  const delivered = await behind.postfix.waitForDelivery(MAILBOX, before + 1);
  const message = delivered.map((entry) => entry.bytes).find((bytes) => bytes.includes(`Subject: ${subject}\n`));
  expect(message, `delivered: ${subject}`).toBeDefined();
  return message!;
}

function expectByteForByte(delivered: Buffer, subject: string): void {
  const sent = Buffer.from(original(subject), 'utf8');
  expect(delivered.subarray(delivered.length - sent.length).equals(sent), delivered.toString('utf8')).toBe(true);
}

/** The pids of the workers that served messages, from their "message accepted" lines. */
function servingPids(daemon: ManagedProcess): Set<unknown> {
  return new Set(jsonLogLines(daemon, 'message accepted: via plain').map((line) => line.pid));
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describeWith([ROOT, POSTFIX, SWAKS], 'blackpony run with two workers in front of a real Postfix', () => {
  let behind: PostfixBehind;
  let daemon: ManagedProcess;
  let port: number;
  let metricsPort: number;
  let workerPids: number[];

  beforeAll(async () => {
    behind = await startPostfixBehind();
    [port, metricsPort] = [await freePort(), await freePort()];
    daemon = await startWorkers(
      behind,
      `127.0.0.1:${port}`,
      (config) => startProcess('blackpony run (2 workers)', process.execPath, [CLI, 'run', '--config', config], { cwd: PROJECT_ROOT }),
      metricsPort,
    );
    const [listening] = await logLines(daemon, 'listening');
    workerPids = listening?.workers as number[];
  });
  afterAll(async () => {
    await daemon?.stop();
    await behind?.postfix.stop();
  });

  it('says "listening" once both workers listen, naming their pids (not its own)', () => {
    expect(workerPids).toHaveLength(2);
    expect(workerPids).not.toContain(daemon.pid);
    expect(new Set(jsonLogLines(daemon, 'worker listening').map((line) => line.pid))).toEqual(new Set(workerPids));
  });

  it('serves sessions in both workers; each message reaches Postfix byte for byte, plain or through a tunnel', async () => {
    for (let index = 0; index < 4; index++) expectByteForByte(await deliver(port, `worker message ${index}`, behind), `worker message ${index}`);
    expect(servingPids(daemon)).toEqual(new Set(workerPids));

    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    const result = await connectXpony({ host: '127.0.0.1', port, localHostName: 'mta.sender.test', keys: clientKeys() });
    if (result.kind !== 'tunnel') throw new Error(`expected an XPONY tunnel, got ${result.kind}`);
    const inner = await openInnerSmtp(result.tunnel, { localHostName: 'mta.sender.test' });
    const sent = original('tunnelled to a worker').replace(/\n/g, '\r\n');
    expect((await inner.send({ from: 'alice@sender.test', to: [MAILBOX] }, sent)).response).toMatch(/^250 2\.0\.0 Ok: queued as /);
    await inner.quit();
    const delivered = (await behind.postfix.waitForDelivery(MAILBOX, before + 1)).find((entry) => entry.bytes.includes('Subject: tunnelled to a worker\n'));
    expectByteForByte(delivered!.bytes, 'tunnelled to a worker');
  });

  it('serves one /metrics that counts the messages of every worker', async () => {
    const served = jsonLogLines(daemon, 'message accepted: via plain').length;
    const scraped = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(scraped).toMatch(new RegExp(`^blackpony_inbound_messages_total\\{via="plain",sealed="false",outcome="accepted"\\} ${served}$`, 'm'));
    expect(scraped).toMatch(/^blackpony_inbound_messages_total\{via="xpony",sealed="false",outcome="accepted"\} 1$/m);
    expect(scraped).toMatch(/^blackpony_build_info\{version="[^"]+"\} 1$/m);
  });

  it('SIGHUP to the primary reloads every worker, and the primary is done (ready again) only after both', async () => {
    process.kill(daemon.pid, 'SIGHUP');
    await logLines(daemon, 'reload done in every worker');
    const lines = jsonLogLines(daemon);
    const done = lines.findIndex((line) => line.msg === 'reload done in every worker');
    const reloaded = lines.slice(0, done).filter((line) => line.msg === 'reloaded');
    expect(new Set(reloaded.map((line) => line.pid)), daemon.output()).toEqual(new Set(workerPids));
  });

  it('a worker SIGKILLed in the middle of DATA: its client loses the connection, never hears 250, nothing is delivered; the primary starts another', async () => {
    const opened = jsonLogLines(daemon, 'session open').length;
    const smtp = await RawSmtp.connect(port);
    expect((await smtp.reply()).code).toBe(220);
    const [session] = (await logLines(daemon, 'session open', opened + 1)).slice(opened);
    const victim = session?.pid as number;
    expect(workerPids).toContain(victim);
    expect(await smtp.command('EHLO client.sender.test')).toMatch(/^250/);
    expect(await smtp.command('MAIL FROM:<alice@sender.test>')).toMatch(/^250 /);
    expect(await smtp.command(`RCPT TO:<${MAILBOX}>`)).toMatch(/^250 /);
    expect(await smtp.command('DATA')).toMatch(/^354 /);
    let after = '';
    smtp.stream.on('data', (chunk: Buffer) => (after += chunk.toString('latin1')));
    smtp.write(`${original('killed in DATA').replace(/\n/g, '\r\n')}`);
    process.kill(victim, 'SIGKILL');
    smtp.write('.\r\n');
    await smtp.closed();
    expect(after).not.toMatch(/^250/m);

    const [died] = await logLines(
      daemon,
      `worker ${jsonLogLines(daemon, 'worker listening').find((line) => line.pid === victim)?.worker} (pid ${victim}) died (killed by SIGKILL); starting another, the others keep serving`,
    );
    expect(died).toMatchObject({ pid: victim, signal: 'SIGKILL' });
    const relisten = await logLines(daemon, 'worker listening', 3);
    const replacement = relisten.at(-1)?.pid as number;
    expect(workerPids).not.toContain(replacement);
    workerPids = workerPids.map((pid) => (pid === victim ? replacement : pid));

    // Both serve again; the killed message is nowhere (each later one is delivered whole).
    const before = servingPids(daemon).size;
    for (let index = 0; index < 4; index++) expectByteForByte(await deliver(port, `after the kill ${index}`, behind), `after the kill ${index}`);
    expect(servingPids(daemon).size).toBe(before + 1);
    const mailbox = await behind.postfix.maildirMessages(MAILBOX);
    expect(mailbox.filter((entry) => entry.bytes.includes('killed in DATA'))).toEqual([]);
  });

  it('SIGTERM to the primary stops every worker, then the primary, leaving no process', async () => {
    process.kill(daemon.pid, 'SIGTERM');
    expect(await daemon.exited, daemon.output()).toEqual({ code: 0, signal: null });
    await waitFor('every worker gone', () => (workerPids.some(isRunning) ? undefined : true), { diagnostics: () => daemon.output() });
    expect(jsonLogLines(daemon, 'stopped')).toHaveLength(3);
  });
});

describeWith([ROOT, POSTFIX, SWAKS, SYSTEMD_SOCKET_ACTIVATE], 'blackpony run with two workers under systemd socket activation', () => {
  let behind: PostfixBehind;
  let daemon: ManagedProcess;
  let port: number;

  beforeAll(async () => {
    behind = await startPostfixBehind();
    port = await freePort();
    // Non-accept mode: blackpony starts at the first connection, with the listening socket as fd 3.
    daemon = await startWorkers(behind, 'systemd', (config) =>
      startSocketActivated('blackpony run (2 workers, socket-activated)', [`127.0.0.1:${port}`], [process.execPath, CLI, 'run', '--config', config], {
        cwd: PROJECT_ROOT,
      }),
    );
  });
  afterAll(async () => {
    await daemon?.stop();
    await behind?.postfix.stop();
  });

  it('both workers serve the passed socket, and each message arrives byte for byte', async () => {
    for (let index = 0; index < 4; index++) expectByteForByte(await deliver(port, `activated ${index}`, behind), `activated ${index}`);
    const [listening] = await logLines(daemon, 'listening');
    expect(listening?.addresses).toMatchObject({ inbound: [`127.0.0.1:${port}`] });
    expect(servingPids(daemon)).toEqual(new Set(listening?.workers as number[]));
  });
});

/** One socketmap request on a new connection, as Postfix's trivial-rewrite asks: the netstring answer. */
async function socketmapLookup(port: number, key: string): Promise<string> {
  const socket = connect({ port, host: '127.0.0.1' });
  await once(socket, 'connect');
  const request = `transport ${key}`;
  socket.end(`${Buffer.byteLength(request)}:${request},`);
  let answer = '';
  for await (const chunk of socket) answer += (chunk as Buffer).toString('latin1');
  return answer;
}

describeWith([ROOT], 'the outbound socket file and the transport lookup, shared by two workers', () => {
  let daemon: ManagedProcess;
  let socketPath: string;
  let lookupPort: number;

  beforeAll(async () => {
    const dir = await makeTempDir('workers-outbound');
    await writeKeyFile(join(dir, 'keys'), generateKeys());
    socketPath = join(dir, 'lmtp.sock');
    lookupPort = await freePort();
    const config = [
      'hostname: mx.workers.test',
      'keys: keys',
      'state_dir: .',
      'workers: 2',
      'inbound: {enabled: false}',
      `outbound: {listen: "unix:${socketPath}", listen_mode: "0660", mta_sts: false, transport_lookup: {listen: "127.0.0.1:${lookupPort}", learn_from_ehlo: false}}`,
      'metrics: {listen: ""}',
      '',
    ];
    await writeFile(join(dir, 'config.yaml'), config.join('\n'));
    daemon = await startProcess('blackpony run (2 workers, outbound)', process.execPath, [CLI, 'run', '--config', join(dir, 'config.yaml')], { cwd: dir });
    await logLines(daemon, 'listening');
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('both workers listen on the socket file, which has the configured mode, and on the lookup port; the file goes at SIGTERM', async () => {
    const workers = jsonLogLines(daemon, 'worker listening');
    expect(workers).toHaveLength(2);
    for (const line of workers) expect(line.addresses).toMatchObject({ outbound: [`unix:${socketPath}`], transportLookup: `127.0.0.1:${lookupPort}` });
    expect((await stat(socketPath)).mode & 0o777).toBe(0o660);
    for (let index = 0; index < 4; index++) {
      const socket = connect({ path: socketPath });
      await once(socket, 'connect');
      const lmtp = new RawSmtp(socket);
      expect((await lmtp.reply()).lines[0]).toMatch(/ LMTP/);
      expect(await lmtp.command('LHLO client.test')).toMatch(/^250 /);
      lmtp.stream.destroy();
      // An address is no domain: NOTFOUND at once, from whichever worker took the connection.
      expect(await socketmapLookup(lookupPort, `someone${index}@example.test`)).toBe('9:NOTFOUND ,');
    }
    process.kill(daemon.pid, 'SIGTERM');
    expect(await daemon.exited, daemon.output()).toEqual({ code: 0, signal: null });
    await expect(stat(socketPath)).rejects.toThrow(/ENOENT/);
  });
});

describeWith([ROOT], 'two workers that cannot listen', () => {
  it("the primary stops, exit 1, with the worker's reason on stderr, and leaves no process", async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as { port: number }).port;
    try {
      const dir = await makeTempDir('workers-taken');
      await writeKeyFile(join(dir, 'keys'), generateKeys());
      const config = [
        'hostname: mx.workers.test',
        'keys: keys',
        'state_dir: .',
        'workers: 2',
        `inbound: {listen: "127.0.0.1:${port}", postfix: "127.0.0.1:1"}`,
        'outbound: {enabled: false}',
        'metrics: {listen: ""}',
        '',
      ];
      await writeFile(join(dir, 'config.yaml'), config.join('\n'));
      const daemon = await startProcess('blackpony run (2 workers, port taken)', process.execPath, [CLI, 'run', '--config', join(dir, 'config.yaml')], {
        cwd: dir,
      });
      expect(await daemon.exited, daemon.output()).toEqual({ code: 1, signal: null });
      expect(daemon.stderr()).toContain(`blackpony: run: inbound.listen: 127.0.0.1:${port}:`);
      expect(daemon.stderr()).toContain('EADDRINUSE');
      expect(daemon.stderr()).toMatch(/blackpony: run: worker \d+ \(pid \d+\) stopped before it listened \(exit code 1\); its log lines say why/);
      const pids = [...daemon.stderr().matchAll(/\(pid (\d+)\)/g)].map((match) => Number(match[1]));
      await waitFor('every worker gone', () => (pids.some(isRunning) ? undefined : true), { diagnostics: () => daemon.output() });
    } finally {
      taken.close();
    }
  });
});
