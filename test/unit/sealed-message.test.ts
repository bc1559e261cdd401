/**
 * The sealed message as streams: byte-exact round trips, the wire shape, pass-through of messages
 * that are not sealed, and the attacker's side (truncated, altered, foreign-key, trailing garbage,
 * missing armor), each failing with a SealedMessageError of the kind the spec's reply needs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { generateHybridIdentity, generateX25519Identity, identityToRecipient, parseRecipient } from '../../src/crypto/age/index.js';
import {
  armoredSealedSize,
  createUnwrapStream,
  createWrapStream,
  MAX_HEADER_BLOCK,
  SealedMessageError,
  sealedMessageReply,
  WRAPPER_HEADER,
} from '../../src/xpony/sealed-message.js';

const identity = generateX25519Identity();
const recipient = identityToRecipient(identity);
const stranger = generateX25519Identity();

/** Feeds `octets` in pieces of `pieceSize` through `transform`. */
function through(transform: NodeJS.ReadWriteStream, octets: Buffer, pieceSize = 4096): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let i = 0; i < octets.length; i += pieceSize) pieces.push(octets.subarray(i, i + pieceSize));
  return buffer(Readable.from(pieces).pipe(transform) as NodeJS.ReadableStream & AsyncIterable<Buffer>);
}

/** Length and SHA-256: vitest's deep equality is far too slow for megabytes. */
const digest = (octets: Buffer): string => `${octets.length}:${createHash('sha256').update(octets).digest('hex')}`;

const wrap = (octets: Buffer): Promise<Buffer> => through(createWrapStream([recipient]), octets);
const unwrap = (octets: Buffer, pieceSize?: number): Promise<Buffer> => through(createUnwrapStream([identity]), octets, pieceSize);

async function failure(octets: Buffer, identities = [identity]): Promise<SealedMessageError> {
  const error = await through(createUnwrapStream(identities), octets).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SealedMessageError);
  return error as SealedMessageError;
}

describe('sealed message round trip', () => {
  const cases: [string, Buffer][] = [
    ['an empty message', Buffer.alloc(0)],
    ['binary 8-bit content', randomBytes(100_000)],
    ['lines with lone dots', Buffer.from('Subject: dots\r\n\r\n.\r\n..\r\nx\r\n.\r\n', 'latin1')],
    ['bare LF and CRLF mixed', Buffer.from('Subject: mixed\n\r\nline\nline\r\n\r\r\nend', 'latin1')],
    ['5 MiB', randomBytes(5 * 1024 * 1024)],
  ];
  for (const [name, original] of cases) {
    it(`gives back ${name} byte for byte`, async () => {
      const sealed = await wrap(original);
      expect(digest(await unwrap(sealed))).toBe(digest(original));
      // Small pieces split the header block and the armor lines anywhere.
      if (original.length < 1_000_000) expect(digest(await unwrap(sealed, 7))).toBe(digest(original));
    });
  }

  it('emits the wrapper header, then armor in CRLF lines no longer than 998 octets, 7-bit only', async () => {
    const sealed = await wrap(randomBytes(200_000));
    expect(sealed.subarray(0, WRAPPER_HEADER.length).toString('latin1')).toBe(
      'X-Pony-Sealed: 1\r\nMIME-Version: 1.0\r\nContent-Type: application/vnd.blackpony.sealed\r\nContent-Transfer-Encoding: 7bit\r\n\r\n',
    );
    const text = sealed.subarray(WRAPPER_HEADER.length).toString('latin1');
    expect(text.startsWith('-----BEGIN AGE ENCRYPTED FILE-----\r\n')).toBe(true);
    expect(text.endsWith('-----END AGE ENCRYPTED FILE-----\r\n')).toBe(true);
    expect(text.replaceAll('\r\n', '')).not.toMatch(/[\r\n]/);
    expect(Math.max(...text.split('\r\n').map((line) => line.length))).toBe(64);
    expect(sealed.every((byte) => byte < 0x80)).toBe(true);
  });
});

describe('the armored size a relay is told (SIZE)', () => {
  it('is never less than the sealed message to one X25519 or one hybrid recipient, and at most a few octets more', async () => {
    const hybrid = identityToRecipient(generateHybridIdentity());
    for (const to of [recipient, hybrid]) {
      const parsed = parseRecipient(to);
      for (const size of [0, 1, 2, 3, 47, 48, 1000, 65_535, 65_536, 65_537, 3 * 65_536, 300_001]) {
        const sealed = await through(createWrapStream([to]), randomBytes(size));
        const declared = armoredSealedSize(size, [parsed]);
        expect(declared, `${to.slice(0, 8)}, size ${size}`).toBeGreaterThanOrEqual(sealed.length);
        expect(declared - sealed.length, `${to.slice(0, 8)}, size ${size}`).toBeLessThanOrEqual(4);
      }
    }
  });
});

describe('messages that are not sealed', () => {
  it('pass through unchanged', async () => {
    const message = Buffer.from('From: a@b.test\r\nSubject: plain\r\n\r\nhello\r\n.dot\r\n', 'latin1');
    expect(await unwrap(message, 3)).toEqual(message);
  });

  it('pass through when the marker is in the body, or has another value', async () => {
    const inBody = Buffer.from('Subject: x\r\n\r\nX-Pony-Sealed: 1\r\n\r\n-----BEGIN AGE ENCRYPTED FILE-----\r\n', 'latin1');
    expect(await unwrap(inBody)).toEqual(inBody);
    const otherValue = Buffer.from('X-Pony-Sealed: 2\r\n\r\nbody\r\n', 'latin1');
    expect(await unwrap(otherValue)).toEqual(otherValue);
  });

  it('pass through empty input and a header-only message', async () => {
    expect(await unwrap(Buffer.alloc(0))).toEqual(Buffer.alloc(0));
    const headerOnly = Buffer.from('Subject: only\r\n', 'latin1');
    expect(await unwrap(headerOnly)).toEqual(headerOnly);
  });

  it('pass through when the header block is larger than the bound, even with the marker', async () => {
    const sealed = await wrap(Buffer.from('secret\r\n'));
    const padding = Buffer.from(`X-Padding: ${'p'.repeat(MAX_HEADER_BLOCK)}\r\n`, 'latin1');
    const oversized = Buffer.concat([padding, sealed]);
    expect(await unwrap(oversized)).toEqual(oversized);
  });
});

describe('fields added on the way', () => {
  it('keeps a Received: field added before the marker, verbatim and in front', async () => {
    const original = Buffer.from('Subject: inner\r\n\r\nbody\r\n', 'latin1');
    const received = Buffer.from('Received: from backup.test (backup.test [192.0.2.1])\r\n\tby mx.test; Sun, 22 Nov 2026 01:00:00 +0000\r\n', 'latin1');
    const relayed = Buffer.concat([received, await wrap(original)]);
    expect(await unwrap(relayed, 5)).toEqual(Buffer.concat([received, original]));
  });

  it('drops the wrapper fields that follow the marker', async () => {
    const original = Buffer.from('Subject: inner\r\n\r\nbody\r\n', 'latin1');
    const sealed = await wrap(original);
    const withExtra = Buffer.concat([sealed.subarray(0, WRAPPER_HEADER.length - 2), Buffer.from('X-Spam: no\r\n\r\n'), sealed.subarray(WRAPPER_HEADER.length)]);
    expect(await unwrap(withExtra)).toEqual(original);
  });
});

describe("sealed messages from the attacker's side", () => {
  const original = randomBytes(200_000);
  const sealedOnce = wrap(original);

  it('refuses a truncated armor as damaged', async () => {
    const sealed = await sealedOnce;
    for (const cut of [WRAPPER_HEADER.length + 10, Math.floor(sealed.length / 2), sealed.length - 40]) {
      expect((await failure(sealed.subarray(0, cut))).kind).toBe('damaged');
    }
  });

  it('refuses a bit-flipped armor body as damaged', async () => {
    const sealed = Buffer.from(await sealedOnce);
    const at = sealed.length - 200;
    // Swap one base64 letter for another: the armor stays well-formed, the ciphertext does not authenticate.
    sealed[at] = sealed[at] === 0x41 ? 0x42 : 0x41;
    const error = await failure(sealed);
    expect(error.kind).toBe('damaged');
    expect(sealedMessageReply(error)).toEqual({ code: 554, text: `5.6.0 sealed message damaged: ${error.reason}` });
  });

  it('refuses a message sealed to another key as not for us (451 4.7.5)', async () => {
    const error = await failure(await sealedOnce, [stranger]);
    expect(error.kind).toBe('not-for-us');
    expect(sealedMessageReply(error)).toEqual({ code: 451, text: "4.7.5 sealed message not addressed to this host's keys" });
  });

  it('refuses garbage after the armor end, and accepts whitespace there', async () => {
    const sealed = await sealedOnce;
    expect((await failure(Buffer.concat([sealed, Buffer.from('junk\r\n')]))).kind).toBe('damaged');
    expect(digest(await unwrap(Buffer.concat([sealed, Buffer.from('\r\n \r\n')])))).toBe(digest(original));
  });

  it('refuses a wrapper without armor, or with a binary age file', async () => {
    expect((await failure(WRAPPER_HEADER)).kind).toBe('damaged');
    expect((await failure(Buffer.concat([WRAPPER_HEADER, Buffer.from('hello\r\n')]))).kind).toBe('damaged');
    expect((await failure(Buffer.concat([WRAPPER_HEADER, Buffer.from('age-encryption.org/v1\n')]))).kind).toBe('damaged');
  });

  it('emits nothing of a chunk that fails to authenticate', async () => {
    const sealed = Buffer.from(await sealedOnce);
    const at = sealed.length - 200;
    sealed[at] = sealed[at] === 0x41 ? 0x42 : 0x41;
    const stream = createUnwrapStream([identity]);
    const out: Buffer[] = [];
    stream.on('data', (piece: Buffer) => out.push(piece));
    const ended = new Promise<unknown>((resolve) => {
      stream.once('error', resolve);
      stream.once('end', () => resolve(undefined));
    });
    stream.end(sealed);
    expect(await ended).toBeInstanceOf(SealedMessageError);
    const emitted = Buffer.concat(out);
    // The first three 64 KiB chunks authenticated; the last one (altered) never came out.
    expect(emitted.length).toBe(3 * 64 * 1024);
    expect(digest(emitted)).toBe(digest(original.subarray(0, emitted.length)));
  });
});

describe('memory', () => {
  /** Writes pieces without reading until the stream pushes back; the octets it took by then. */
  function takenBeforeBackpressure(stream: NodeJS.WritableStream, pieces: Iterable<Buffer>): number {
    let taken = 0;
    for (const piece of pieces) {
      taken += piece.length;
      if (!stream.write(piece)) return taken;
    }
    return Number.POSITIVE_INFINITY;
  }
  function* split(octets: Buffer, size: number): Generator<Buffer> {
    for (let i = 0; i < octets.length; i += size) yield octets.subarray(i, i + size);
  }

  it('wrapping and unwrapping push back on a reader that does not read, long before 5 MiB', async () => {
    const original = randomBytes(5 * 1024 * 1024);
    const wrapStream = createWrapStream([recipient]);
    expect(takenBeforeBackpressure(wrapStream, split(original, 16 * 1024))).toBeLessThan(1024 * 1024);
    wrapStream.destroy();
    const sealed = await wrap(original);
    const unwrapStream = createUnwrapStream([identity]);
    expect(takenBeforeBackpressure(unwrapStream, split(sealed, 16 * 1024))).toBeLessThan(1024 * 1024);
    unwrapStream.destroy();
  });
});
