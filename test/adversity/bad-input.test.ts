/**
 * Adversity, part 3: bad input against `blackpony run` (a child process) in front of a real
 * Postfix. Each case expects the reply docs/PROTOCOL.md gives (or the connection closed where it
 * says so), and afterwards a normal message must still go through: the process stays up and
 * serves other clients. Its peak memory is printed at the end.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeMessage } from '../../scripts/adversity-messages.js';
import { connectXpony } from '../../src/xpony/index.js';
import { describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { loadScaled, sleep, waitFor } from '../harness/wait.js';
import { MAILBOX } from '../integration/inbound-fixtures.js';
import { clientKeys, RawSmtp } from '../integration/xpony-fixtures.js';
import { startInboundDaemon, type InboundDaemon } from './daemon-site.js';
import { peakRssMib } from '../harness/peak-rss.js';
import { copiesOf, printFigure } from './fixtures.js';

const HOST = 'mx.d.test';
/** The test holds CONNECTIONS sockets and 1,000 more, the daemon (same limit) as many: scaled to `ulimit -n`. */
const OPEN_FILES = openFileLimit();
const CONNECTIONS = Math.min(5_000, OPEN_FILES - 1_200);
const MAX_CLIENTS = CONNECTIONS + 500;
/** Streamed against Postfix's 10 MB limit (about 20 s on loopback here). */
const BIG_MESSAGE_OCTETS = 1024 * 1024 * 1024;
const MEMORY_BOUND_MIB = 300;

describeWith([ROOT, POSTFIX, SWAKS], 'adversity 3: bad input against blackpony run in front of Postfix', () => {
  let site: InboundDaemon;
  let served = 0;

  beforeAll(async () => {
    site = await startInboundDaemon(HOST, { maxClients: MAX_CLIENTS });
  });
  afterAll(() => site?.stop());

  /** A normal client gets its message delivered: the daemon is up and serving. */
  async function stillServes(): Promise<void> {
    expect(site.daemon.process.status).toBeNull();
    const id = `served-${++served}`;
    const message = makeMessage(id, 'alice@sender.test', [MAILBOX]);
    const result = await runSwaks({ server: `127.0.0.1:${site.port}`, from: 'alice@sender.test', to: MAILBOX, data: message.text });
    expect(result.exitCode, result.transcript).toBe(0);
    await site.behind.postfix.waitForDelivery(MAILBOX, served);
    expect(await copiesOf(site.behind.postfix, MAILBOX, id)).toBe(1);
  }

  async function session(): Promise<RawSmtp> {
    const smtp = await RawSmtp.connect(site.port);
    expect((await smtp.reply()).code).toBe(220);
    return smtp;
  }

  it('malformed XPONY commands get the replies of docs/PROTOCOL.md section 3, and the session goes on', async () => {
    const cases: Array<[string, RegExp]> = [
      ['XPONY', /^501 5\.5\.2 XPONY: /],
      ['XPONY 1', /^501 5\.5\.2 XPONY: /],
      ['XPONY 1 !!!!', /^501 5\.5\.2 XPONY: /],
      ['XPONY 1 QUJDRA', /^501 5\.5\.2 XPONY: /],
      ['XPONY 1 QUJD RA==', /^501 5\.5\.2 XPONY: /],
      ['XPONY 1 QUJDRB==', /^501 5\.5\.2 XPONY: /],
      [`XPONY 1 ${'A'.repeat(5_000)}`, /^501 5\.5\.2 XPONY: /],
      ['XPONY 9 QUJDRA==', /^504 5\.5\.4 XPONY: version 9 not supported/],
      ['XPONY 1 QUJDRA==', /^535 5\.7\.8 XPONY: handshake failed: /],
    ];
    const smtp = await session();
    for (const [line, reply] of cases) {
      expect(await smtp.command('EHLO client.test')).toMatch(/^250 /);
      expect(await smtp.command(line), line.slice(0, 40)).toMatch(reply);
    }
    expect(await smtp.command('XPONY 1 QUJDRA==')).toMatch(/^503 5\.5\.1 XPONY: /);
    expect(await smtp.command('QUIT')).toMatch(/^221 /);
    await stillServes();
  });

  it('a malformed Noise message 3 (bad base64; valid base64 that is not Noise) gets 501 or 535, and the client can still QUIT', async () => {
    for (const [continuation, reply] of [
      ['!!!not base64!!!', /^501 5\.5\.2 XPONY: /],
      ['QUJDRA==', /^535 5\.7\.8 XPONY: handshake failed: /],
    ] as const) {
      const smtp = await session();
      expect(await smtp.command('EHLO client.test')).toMatch(/^250 /);
      // Any 32 octets are a well-formed Noise message 1 (an ephemeral key, an empty payload).
      expect(await smtp.command(`XPONY 1 ${Buffer.alloc(32, 7).toString('base64')}`)).toMatch(/^334 [A-Za-z0-9+/]+=*$/);
      expect(await smtp.command(continuation)).toMatch(reply);
      expect(await smtp.command('QUIT')).toMatch(/^221 /);
    }
    await stillServes();
  });

  it('an oversized command line (100 KiB) gets 421 and the connection is closed (docs/PROTOCOL.md section 3)', async () => {
    const smtp = await session();
    smtp.write(`EHLO ${'x'.repeat(100 * 1024)}\r\n`);
    const reply = await smtp.reply();
    expect(`${reply.code} ${reply.lines.join(' ')}`).toBe('421 4.4.2 Error: Command line too long');
    await smtp.closed();
    await stillServes();
  });

  it('frames of a bad length inside a tunnel (below 16, and 65535 octets of garbage) end that tunnel without a reply', async () => {
    for (const frame of [Buffer.from([0x00, 0x05, 1, 2, 3, 4, 5]), Buffer.concat([Buffer.from([0xff, 0xff]), Buffer.alloc(65_535, 0x41)])]) {
      const result = await connectXpony({ host: '127.0.0.1', port: site.port, localHostName: 'client.test', keys: clientKeys(), timeoutMs: loadScaled(5_000) });
      if (result.kind !== 'tunnel') throw new Error('expected a tunnel');
      const socket = result.tunnel.socket;
      result.tunnel.on('error', () => undefined);
      const received: Buffer[] = [];
      socket.on('data', (data: Buffer) => received.push(data));
      const closed = once(socket, 'close');
      socket.write(frame);
      await closed;
      // Only the inner greeting's frame (if it came first) and nothing in plaintext.
      expect(Buffer.concat(received).toString('latin1')).not.toMatch(/^[245]\d\d /m);
    }
    await stillServes();
  });

  it('garbage right after connect (a TLS hello, an HTTP request) gets one 421 and a closed connection', async () => {
    const garbage: Array<[string, RegExp]> = [
      ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 GET / HTTP/1.1\r\n\r\n', /^421 4\.7\.0 Error: not an SMTP command, closing connection$/],
      ['GET / HTTP/1.1\r\nHost: mx.d.test\r\n\r\n', /^421 .*HTTP requests not allowed$/],
    ];
    for (const [bytes, reply] of garbage) {
      const socket = connect(site.port, '127.0.0.1');
      await once(socket, 'connect');
      socket.write(Buffer.from(bytes, 'latin1'));
      const lines = (await readUntilClosed(socket)).split('\r\n');
      expect(lines[0]).toMatch(/^220 /);
      expect(lines[1]).toMatch(reply);
      expect(lines.slice(2)).toEqual(['']);
    }
    await stillServes();
  });

  it('a slowloris client (one byte per second) does not keep others from being served', async () => {
    const smtp = await session();
    let stop = false;
    const line = 'EHLO slowloris.test\r\nMAIL FROM:<slow@sender.test>\r\n';
    const drip = (async () => {
      for (let i = 0; !stop && !smtp.stream.destroyed; i = (i + 1) % line.length) {
        smtp.stream.write(line[i]!);
        await sleep(1_000);
      }
    })();
    for (let i = 0; i < 3; i++) await stillServes();
    const parallel = await Promise.all(
      Array.from({ length: 10 }, (_, i) => runSwaks({ server: `127.0.0.1:${site.port}`, from: 'alice@sender.test', to: MAILBOX, body: `parallel ${i}` })),
    );
    expect(parallel.map((r) => r.exitCode)).toEqual(Array(10).fill(0));
    served += 10;
    stop = true;
    await drip;
    smtp.stream.destroy();
    await stillServes();
  });

  it(`${CONNECTIONS} simultaneous connections are all greeted and held, more than max_clients get 421, others are still served`, async () => {
    // Opened in batches: a burst beyond the listen backlog (511) is dropped by the kernel before
    // blackpony sees it, and a client that sends nothing never learns (tcp_abort_on_overflow=0).
    const held: Socket[] = [];
    const open = async (count: number): Promise<string[]> => {
      const lines: string[] = [];
      for (let batch = 0; batch < count; batch += 250) {
        const sockets = Array.from({ length: Math.min(250, count - batch) }, () => connect(site.port, '127.0.0.1').on('error', () => undefined));
        held.push(...sockets);
        lines.push(...(await Promise.all(sockets.map(firstLine))));
      }
      return lines;
    };
    try {
      const first = await open(CONNECTIONS);
      expect(first.filter((l) => l.startsWith('220 ')).length).toBe(CONNECTIONS);
      await stillServes();
      const beyond = await open(1_000);
      const refused = beyond.filter((l) => l.startsWith('421 ')).length;
      expect(beyond.every((l) => l.startsWith('220 ') || l.startsWith('421 '))).toBe(true);
      expect(refused).toBeGreaterThanOrEqual(500);
      const rss = Math.round(await peakRssMib(site.daemon.process.pid));
      printFigure(
        `connections: ${CONNECTIONS} held at once (ulimit -n ${OPEN_FILES}), ${beyond.length} more over max_clients ${MAX_CLIENTS}: ${refused} refused with 421; peak RSS ${rss} MiB`,
      );
      expect(rss).toBeLessThan(MEMORY_BOUND_MIB);
    } finally {
      for (const socket of held) socket.destroy();
    }
    // Once blackpony has seen those closes, a new client is greeted again rather than refused.
    await waitFor('a new client greeted with 220 after the held connections closed', async () => {
      const socket = connect(site.port, '127.0.0.1').on('error', () => undefined);
      const line = await firstLine(socket);
      socket.destroy();
      return line.startsWith('220 ') ? true : undefined;
    });
    await stillServes();
  });

  it('a message far beyond the size limit, streamed without SIZE, gets 552 and memory stays bounded', async () => {
    const smtp = await session();
    expect(await smtp.command('EHLO big.sender.test')).toMatch(/^250 /);
    expect(await smtp.command('MAIL FROM:<big@sender.test>')).toMatch(/^250 /);
    expect(await smtp.command(`RCPT TO:<${MAILBOX}>`)).toMatch(/^250 /);
    expect(await smtp.command('DATA')).toMatch(/^354 /);
    const started = performance.now();
    const chunk = Buffer.from(`Subject: big\r\n\r\n${'0123456789abcdef'.repeat(4).concat('\r\n').repeat(16_384)}`, 'latin1');
    for (let sent = 0; sent < BIG_MESSAGE_OCTETS; sent += chunk.length) {
      if (!smtp.stream.write(chunk)) await once(smtp.stream, 'drain');
    }
    smtp.write('\r\n.\r\n');
    const reply = await smtp.reply();
    const seconds = (performance.now() - started) / 1000;
    expect(`${reply.code} ${reply.lines[0] ?? ''}`).toMatch(/^552 /);
    const rss = Math.round(await peakRssMib(site.daemon.process.pid));
    printFigure(`size limit: ${BIG_MESSAGE_OCTETS / 1024 / 1024} MiB streamed in ${seconds.toFixed(1)} s, reply ${reply.code}, peak RSS ${rss} MiB`);
    expect(rss).toBeLessThan(MEMORY_BOUND_MIB);
    expect(await smtp.command('QUIT')).toMatch(/^221 /);
    await stillServes();
  });

  it('after all of it the process is up, and its peak memory is bounded', async () => {
    await stillServes();
    const rss = Math.round(await peakRssMib(site.daemon.process.pid));
    printFigure(`bad input: process up, served ${served} normal messages between attacks, peak RSS ${rss} MiB (bound ${MEMORY_BOUND_MIB} MiB)`);
    expect(rss).toBeLessThan(MEMORY_BOUND_MIB);
  });
});

/** The first reply line the server sends, or '' when it closes first. */
function firstLine(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1');
      if (text.includes('\r\n')) resolve(text.slice(0, text.indexOf('\r\n')));
    });
    socket.on('close', () => resolve(text));
  });
}

function readUntilClosed(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (data: Buffer) => (text += data.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(text));
  });
}

/** This process's soft limit on open files (the daemon inherits it). */
function openFileLimit(): number {
  const limit = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
  if (limit === undefined) throw new Error('/proc/self/limits: no "Max open files" line');
  return Number(limit);
}
