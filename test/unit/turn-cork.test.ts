/**
 * TurnCork (src/turn-cork.ts): what is written in one event-loop turn leaves in one system call.
 * On our SMTP servers that means pipelined commands answered at once share a socket write (the
 * outbound answers Postfix's pipelined LMTP commands: each write of ours woke Postfix's lmtp once
 * more); and nothing held is lost where the stream is dropped or handed over (STARTTLS).
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { PromptServer } from '../../src/smtp/index.js';
import { TurnCork } from '../../src/turn-cork.js';
import { selfSignedCertificate } from '../harness/certificates.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { countSocketWrites } from '../harness/socket-writes.js';

/** Reads from `socket` until what arrived matches `pattern`, and returns it all; the socket stays open. */
function readUntil(socket: Socket | TLSSocket, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      if (!pattern.test(text)) return;
      socket.off('data', onData).off('close', onClose);
      resolve(text);
    };
    const onClose = (): void => reject(new Error(`connection closed before ${pattern} (got ${JSON.stringify(text)})`));
    socket.on('data', onData).once('close', onClose);
  });
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listen(server: PromptServer): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.server.address() as AddressInfo).port;
}

async function clientOf(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  cleanups.push(async () => void socket.destroy());
  await readUntil(socket, /^220 .*\r\n/);
  return socket;
}

/** A TCP server that takes one connection and gives everything that arrived on it once it closes. */
async function startSink(): Promise<{ port: number; arrived: Promise<string> }> {
  let resolveArrived: (text: string) => void = () => {};
  const arrived = new Promise<string>((resolve) => (resolveArrived = resolve));
  const sink = createServer((socket) => {
    const received: Buffer[] = [];
    socket.on('data', (data: Buffer) => received.push(data));
    socket.on('close', () => resolveArrived(Buffer.concat(received).toString('latin1')));
  });
  sink.listen(0, '127.0.0.1');
  await once(sink, 'listening');
  cleanups.push(() => new Promise<void>((resolve) => sink.close(() => resolve())));
  return { port: (sink.address() as AddressInfo).port, arrived };
}

describe('TurnCork', () => {
  it('sends what is written in one turn in one socket write, and what it holds before a destroy', async () => {
    const sink = await startSink();
    const socket = connect(sink.port, '127.0.0.1');
    await once(socket, 'connect');
    const cork = new TurnCork(socket);
    const writes = countSocketWrites();
    try {
      for (const line of ['one\r\n', 'two\r\n', 'three\r\n']) {
        cork.hold();
        socket.write(line);
      }
      expect(writes.count).toBe(0);
      await nextTurn();
      expect(writes.count).toBe(1);
      // Destroying a corked socket drops what the cork holds: release() lets it leave first.
      cork.hold();
      socket.write('last\r\n');
      cork.release();
      socket.destroy();
    } finally {
      writes.stop();
    }
    expect(await sink.arrived).toBe('one\r\ntwo\r\nthree\r\nlast\r\n');
  });
});

describe('our SMTP server with TurnCork', () => {
  it('answers pipelined commands answered in one turn in one socket write', async () => {
    // Handlers that answer at once, as the outbound's do for XFORWARD and MAIL (smtp-server's
    // defaults wait a turn each).
    const server = new PromptServer({
      logger: false,
      disabledCommands: ['AUTH', 'STARTTLS'],
      onMailFrom: (_address, _session, callback) => callback(),
      onRcptTo: (_address, _session, callback) => callback(),
      onData: (stream, _session, callback) => stream.resume().on('end', () => callback()),
    });
    const client = await clientOf(await listen(server));
    client.write('EHLO client.test\r\n');
    await readUntil(client, /^250 .*\r\n/m);
    const writes = countSocketWrites();
    let replies: string;
    try {
      client.write('MAIL FROM:<a@client.test>\r\nRCPT TO:<b@server.test>\r\nRCPT TO:<c@server.test>\r\nDATA\r\n');
      replies = await readUntil(client, /^354 .*\r\n/m);
    } finally {
      writes.stop();
    }
    expect(replies.match(/^\d{3} /gm)).toEqual(['250 ', '250 ', '250 ', '354 ']);
    // One write of the server's; the client's own command write is the other.
    expect(writes.count).toBe(2);
  });

  it('sends the 220 to a pipelined STARTTLS before TLS takes the connection over', async () => {
    const certificate = await selfSignedCertificate(await makeTempDir('turn-cork'), 'server', 'server.test');
    const server = new PromptServer({
      logger: false,
      disabledCommands: ['AUTH'],
      key: readFileSync(certificate.keyFile),
      cert: readFileSync(certificate.certFile),
    });
    const client = await clientOf(await listen(server));
    // EHLO and STARTTLS answered in one turn: both replies held by the cork when the upgrade begins.
    client.write('EHLO client.test\r\nSTARTTLS\r\n');
    expect(await readUntil(client, /^220 .*\r\n/m)).toMatch(/^250[- ]STARTTLS\r\n/m);
    const tls = tlsConnect({ socket: client, rejectUnauthorized: false, servername: 'server.test' });
    await once(tls, 'secureConnect');
    tls.write('EHLO client.test\r\n');
    expect(await readUntil(tls, /^250 .*\r\n/m)).toMatch(/^250[- ]/m);
    tls.destroy();
  });
});
