/**
 * The age seal/open streams as streams: exact sizes at the 64 KiB chunk boundaries, any write
 * pattern, output released chunk by chunk as input arrives, and bounded memory for a 100 MiB
 * message flowing through seal and open with backpressure.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import {
  AgeError,
  createOpenStream,
  createSealStream,
  generateHybridIdentity,
  generateX25519Identity,
  identityToRecipient,
  open,
  seal,
} from '../../src/crypto/age/index.js';

const CHUNK = 65536;
const identity = generateX25519Identity();
const recipient = identityToRecipient(identity);

function headerLength(file: Buffer): number {
  return file.indexOf('\n', file.indexOf('\n---') + 1) + 1;
}

describe('age streams', () => {
  it('round-trips every size around the chunk boundaries with the exact STREAM overhead', async () => {
    for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1]) {
      const plaintext = randomBytes(size);
      const file = Buffer.from(await seal(plaintext, [recipient]));
      const chunks = Math.max(1, Math.ceil(size / CHUNK));
      expect(file.length - headerLength(file) - 16, `${size} bytes`).toBe(size + 16 * chunks);
      expect(Buffer.from(await open(file, [identity])).equals(plaintext), `${size} bytes`).toBe(true);
    }
  });

  it('gives the same result for any write pattern on either side', async () => {
    const plaintext = randomBytes(3 * CHUNK + 123);
    const file = Buffer.from(await seal(plaintext, [recipient]));
    for (const piece of [1, 1000, CHUNK, CHUNK + 16, CHUNK + 17, 200_000]) {
      const sealer = createSealStream([recipient]);
      const sealed = collect(sealer);
      for (let i = 0; i < plaintext.length; i += piece) sealer.write(plaintext.subarray(i, i + piece));
      sealer.end();
      expect(Buffer.from(await open(await sealed, [identity])).equals(plaintext), `seal in ${piece}-byte writes`).toBe(true);
      const opener = createOpenStream([identity]);
      const opened = collect(opener);
      for (let i = 0; i < file.length; i += piece) opener.write(file.subarray(i, i + piece));
      opener.end();
      expect((await opened).equals(plaintext), `open in ${piece}-byte writes`).toBe(true);
    }
  });

  it('releases each chunk as soon as the next one starts, and nothing for a header alone', async () => {
    const plaintext = randomBytes(3 * CHUNK);
    const file = Buffer.from(await seal(plaintext, [recipient]));
    const opener = createOpenStream([identity]);
    const released: Buffer[] = [];
    opener.on('data', (piece: Buffer) => released.push(piece));
    const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const payloadStart = headerLength(file) + 16;
    opener.write(file.subarray(0, payloadStart));
    await tick();
    expect(released.length).toBe(0);
    // A full chunk is held until it is known whether it is the last one.
    opener.write(file.subarray(payloadStart, payloadStart + CHUNK + 16));
    await tick();
    expect(Buffer.concat(released).length).toBe(0);
    opener.write(file.subarray(payloadStart + CHUNK + 16, payloadStart + CHUNK + 17));
    await tick();
    expect(Buffer.concat(released).equals(plaintext.subarray(0, CHUNK))).toBe(true);
    opener.end(file.subarray(payloadStart + CHUNK + 17));
    await new Promise((resolve) => opener.on('end', resolve));
    expect(Buffer.concat(released).equals(plaintext)).toBe(true);
  });

  it('seals to several recipients of both types, each of which can open', async () => {
    const hybrid = generateHybridIdentity();
    const plaintext = randomBytes(5000);
    const file = await seal(plaintext, [recipient, identityToRecipient(hybrid)], { armor: true });
    for (const id of [identity, hybrid]) expect(Buffer.from(await open(file, [id])).equals(plaintext)).toBe(true);
    expect(Buffer.from(await open(file, [generateX25519Identity(), hybrid])).equals(plaintext)).toBe(true);
  });

  it('writes strict armor: 64-column lines, only the last shorter, BEGIN/END lines', async () => {
    for (const size of [0, 1, 47, 48, 49, 1000]) {
      const text = Buffer.from(await seal(randomBytes(size), [recipient], { armor: true })).toString('latin1');
      const lines = text.split('\n');
      expect(lines[0]).toBe('-----BEGIN AGE ENCRYPTED FILE-----');
      expect(lines.at(-2)).toBe('-----END AGE ENCRYPTED FILE-----');
      expect(lines.at(-1)).toBe('');
      const body = lines.slice(1, -2);
      expect(body.slice(0, -1).every((line) => line.length === 64)).toBe(true);
      expect(body.at(-1)?.length).toBeGreaterThan(0);
      expect(body.at(-1)?.length).toBeLessThanOrEqual(64);
    }
  });

  it('opens armor with CRLF line ends and surrounding whitespace, whole or in odd pieces', async () => {
    const plaintext = randomBytes(3 * CHUNK + 5);
    const armored = Buffer.from(await seal(plaintext, [recipient], { armor: true })).toString('latin1');
    const crlf = Buffer.from(`\r\n \t${armored.replaceAll('\n', '\r\n')}\n\n`, 'latin1');
    expect(Buffer.from(await open(crlf, [identity])).equals(plaintext)).toBe(true);
    const opener = createOpenStream([identity]);
    const opened = collect(opener);
    for (let i = 0; i < crlf.length; i += 1001) opener.write(crlf.subarray(i, i + 1001));
    opener.end();
    expect((await opened).equals(plaintext)).toBe(true);
  });

  it('refuses to seal without recipients or open without identities', async () => {
    expect(() => createSealStream([])).toThrow(AgeError);
    expect(() => createOpenStream([])).toThrow(AgeError);
    await expect(seal(new Uint8Array(1), [])).rejects.toMatchObject({ kind: 'usage' });
    expect(() => createSealStream(['age1tag1qqqq'])).toThrow(AgeError);
  });

  for (const armor of [false, true]) {
    const size = 100 * 1024 * 1024;
    it(`streams ${size / 1024 / 1024} MiB${armor ? ' armored' : ''} through seal and open with bounded memory`, async () => {
      const block = randomBytes(CHUNK);
      let produced = 0;
      const source = new Readable({
        read() {
          if (produced >= size) {
            this.push(null);
            return;
          }
          // Vary the block so reordering would show in the hash.
          const piece = Buffer.from(block);
          piece.writeUInt32BE(produced / CHUNK);
          produced += piece.length;
          this.push(piece);
        },
      });
      const sourceHash = createHash('sha256');
      source.on('data', (piece: Buffer) => sourceHash.update(piece));
      const outputHash = createHash('sha256');
      let received = 0;
      global.gc?.();
      const rssBefore = process.memoryUsage().rss;
      let rssPeak = rssBefore;
      const sink = new Writable({
        write(piece: Buffer, _encoding, callback) {
          outputHash.update(piece);
          received += piece.length;
          if (received % (8 * CHUNK) === 0) rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
          callback();
        },
      });
      await pipeline(source, createSealStream([recipient], { armor }), createOpenStream([identity]), sink);
      expect(received).toBe(size);
      expect(outputHash.digest('hex')).toBe(sourceHash.digest('hex'));
      expect(rssPeak - rssBefore).toBeLessThan(64 * 1024 * 1024);
    });
  }
});

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of stream) pieces.push(piece as Buffer);
  return Buffer.concat(pieces);
}
