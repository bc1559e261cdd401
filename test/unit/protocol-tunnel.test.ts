/** The Tunnel stream over a real loopback socket pair: data, rekeys, close frame, abort, tampering. */
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { CHACHA_POLY } from '../../src/crypto/noise/cipher-functions.js';
import { CipherState } from '../../src/crypto/noise/index.js';
import { randomBytes } from '../../src/crypto/primitives.js';
import { FrameError } from '../../src/xpony/frames.js';
import { MAX_RAW_RUN } from '../../src/xpony/limits.js';
import { Tunnel } from '../../src/xpony/tunnel.js';

async function socketPair(): Promise<[Socket, Socket]> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const [[serverSide]] = await Promise.all([accepted, once(client, 'connect')]);
  server.close();
  return [client, serverSide];
}

/** Two tunnels on a loopback connection; `acceptRawRuns`: b takes raw runs, as a server offering XPONY-RAW-PAYLOAD. */
async function tunnelPair(acceptRawRuns = false): Promise<{ a: Tunnel; b: Tunnel; rawA: Socket; rawB: Socket }> {
  const [rawA, rawB] = await socketPair();
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const a = new Tunnel({ socket: rawA, send: new CipherState(CHACHA_POLY, k1), receive: new CipherState(CHACHA_POLY, k2) });
  const b = new Tunnel({
    socket: rawB,
    send: new CipherState(CHACHA_POLY, Uint8Array.from(k2)),
    receive: new CipherState(CHACHA_POLY, Uint8Array.from(k1)),
    acceptRawRuns,
  });
  // Each test watches the error it expects; a peer going away afterwards is no failure.
  a.on('error', () => undefined);
  b.on('error', () => undefined);
  return { a, b, rawA, rawB };
}

const collect = (stream: Tunnel): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });

describe('Tunnel', () => {
  it('carries a byte stream larger than a frame across rekeys, ends on the close frame, then closes', async () => {
    const { a, b } = await tunnelPair();
    const opened = once(b, 'tunnel-open');
    a.open();
    expect(await opened).toEqual([true]);
    const received = collect(b);
    const closed = Promise.all([once(a, 'close'), once(b, 'close')]);
    const payload = randomBytes(300_000);
    a.write(payload.subarray(0, 100_000));
    a.rekey();
    a.write(payload.subarray(100_000));
    a.rekey();
    a.end();
    expect(Buffer.from(await received)).toEqual(Buffer.from(payload));
    expect(a.rekeysSent).toBe(2);
    expect(b.rekeysReceived).toBe(2);
    await closed; // the receiver of a close frame closes the connection
  });

  it('cuts writes made together into full frames across their boundaries', async () => {
    const { a, b, rawB } = await tunnelPair();
    // The frames' lengths as they arrive, read from their 2-octet headers.
    const frameLengths: number[] = [];
    let pending = Buffer.alloc(0);
    rawB.prependListener('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        frameLengths.push(pending.readUInt16BE(0));
        pending = pending.subarray(2 + pending.readUInt16BE(0));
      }
    });
    const received = collect(b);
    const payload = randomBytes(200_000);
    a.cork();
    for (let offset = 0; offset < payload.length; offset += 30_000) a.write(payload.subarray(offset, offset + 30_000));
    a.uncork();
    a.end();
    expect(Buffer.from(await received)).toEqual(Buffer.from(payload));
    const full = 65535;
    // Three full frames and the rest, then the close frame: none cut short at a write's end.
    expect(frameLengths).toEqual([full, full, full, 200_000 - 3 * (full - 17) + 17, 17]);
  });

  it('reports a first frame other than the empty data frame as not tunnel-open', async () => {
    const { a, b } = await tunnelPair();
    const opened = once(b, 'tunnel-open');
    a.write('EHLO x\r\n');
    expect(await opened).toEqual([false]);
    a.destroy();
  });

  it('fails with FrameError when the connection ends without a close frame', async () => {
    const { a, b, rawA } = await tunnelPair();
    const failed = once(b, 'error');
    a.write('MAIL FROM:<a@b>\r\n');
    rawA.end();
    const [error] = await failed;
    expect(error).toBeInstanceOf(FrameError);
    expect((error as Error).message).toMatch(/closed without a close frame/);
  });

  it('fails with FrameError and closes the socket on a tampered frame, passing none of its content on', async () => {
    const { b, rawA, rawB } = await tunnelPair();
    const received: Buffer[] = [];
    b.on('data', (c: Buffer) => received.push(c));
    const failed = once(b, 'error');
    rawA.write(Buffer.concat([Buffer.from([0, 40]), randomBytes(40)]));
    const [error] = await failed;
    expect((error as Error).message).toMatch(/failed authentication/);
    expect(received).toEqual([]);
    await once(rawB, 'close');
  });

  it('stands in for a socket: addresses, readyState and timeout events', async () => {
    const { a, rawA } = await tunnelPair();
    expect(a.remoteAddress).toBe('127.0.0.1');
    expect(a.remotePort).toBe(rawA.remotePort);
    expect(a.readyState).toBe('open');
    const timedOut = new Promise<void>((resolve) => a.setTimeout(50, resolve));
    await timedOut;
    a.destroy();
    expect(a.readyState).toBe('closed');
  });

  it('sends a marked write as raw runs, in order with framed writes, and counts what came raw', async () => {
    const { a, b, rawB } = await tunnelPair(true);
    const wire: Buffer[] = [];
    rawB.prependListener('data', (data: Buffer) => wire.push(data));
    const received = collect(b);
    const payload = Buffer.from(randomBytes(MAX_RAW_RUN + 100_000));
    const framed = randomBytes(1000);
    a.write(Buffer.from('BDAT 1\r\n', 'latin1'));
    a.write(a.markRaw(payload));
    a.write(framed);
    a.end();
    expect(Buffer.from(await received)).toEqual(Buffer.concat([Buffer.from('BDAT 1\r\n', 'latin1'), payload, framed]));
    expect(b.rawOctetsReceived).toBe(payload.length);
    const onWire = Buffer.concat(wire);
    // Two runs (the first of MAX_RAW_RUN octets), each verbatim; the unmarked write only encrypted.
    expect(onWire.indexOf(payload.subarray(0, MAX_RAW_RUN))).toBeGreaterThan(0);
    expect(onWire.indexOf(payload.subarray(MAX_RAW_RUN))).toBeGreaterThan(0);
    expect(onWire.indexOf(framed.subarray(0, 100))).toBe(-1);
  });

  it('ends the tunnel with FrameError on a raw run to a side that did not offer them, passing none of it on', async () => {
    const { a, b } = await tunnelPair();
    const received: Buffer[] = [];
    b.on('data', (c: Buffer) => received.push(c));
    const failed = once(b, 'error');
    a.write(a.markRaw(Buffer.from('RCPT TO:<x@y>\r\n', 'latin1')));
    const [error] = await failed;
    expect(error).toBeInstanceOf(FrameError);
    expect((error as Error).message).toMatch(/type 0x3 unknown/);
    expect(received).toEqual([]);
  });
});
