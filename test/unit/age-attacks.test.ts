/**
 * The age open stream from the attacker's side: truncated, bit-flipped, reordered, extended,
 * oversized and garbage input must fail with a typed AgeError and never release a byte that was
 * not authenticated (at most whole chunks of the genuine plaintext, in order).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AgeError,
  MAX_HEADER_SIZE,
  MAX_LINE_LENGTH,
  MAX_STANZAS,
  createOpenStream,
  generateHybridIdentity,
  generateX25519Identity,
  identityToRecipient,
  parseIdentity,
  seal,
  type AgeErrorKind,
} from '../../src/crypto/age/index.js';

const CHUNK = 65536;
const ENCRYPTED_CHUNK = CHUNK + 16;

interface Outcome {
  output: Buffer;
  error: unknown;
}

/** Feeds `file` in `piece`-sized writes and collects what the open stream released. */
async function attempt(file: Uint8Array, identities: string[], piece = 4096): Promise<Outcome> {
  const stream = createOpenStream(identities);
  const output: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => output.push(chunk));
  const done = new Promise<unknown>((resolve) => {
    stream.on('end', () => resolve(null));
    stream.on('error', resolve);
  });
  for (let i = 0; i < file.length; i += piece) stream.write(file.subarray(i, i + piece));
  stream.end();
  return { error: await done, output: Buffer.concat(output) };
}

function expectFailure(outcome: Outcome, kinds: AgeErrorKind[]): void {
  expect(outcome.error).toBeInstanceOf(AgeError);
  expect(kinds, (outcome.error as Error).message).toContain((outcome.error as AgeError).kind);
}

/** Released output must be whole leading chunks of the genuine plaintext, and not all of it. */
function expectAuthenticatedPrefix(outcome: Outcome, plaintext: Buffer): void {
  expect(outcome.output.length % CHUNK).toBe(0);
  expect(outcome.output.length).toBeLessThan(Math.max(plaintext.length, 1));
  expect(outcome.output.equals(plaintext.subarray(0, outcome.output.length))).toBe(true);
}

const identity = generateX25519Identity();
const recipient = identityToRecipient(identity);
// Three chunks: two full, one short.
const plaintext = randomBytes(2 * CHUNK + 1000);
const file = Buffer.from(await seal(plaintext, [recipient]));
const headerLength = file.indexOf('\n', file.indexOf('\n---') + 1) + 1;
const payloadStart = headerLength + 16;
const chunkAt = (i: number): number => payloadStart + i * ENCRYPTED_CHUNK;

describe('age open under attack', () => {
  it('opens the untouched file (the baseline the attacks modify)', async () => {
    const outcome = await attempt(file, [identity]);
    expect(outcome.error).toBeNull();
    expect(outcome.output.equals(plaintext)).toBe(true);
    expect(file.length).toBe(chunkAt(2) + 1000 + 16);
  });

  it('rejects the header truncated at every byte, releasing nothing', async () => {
    for (let cut = 0; cut < headerLength; cut++) {
      const outcome = await attempt(file.subarray(0, cut), [identity], 7);
      expectFailure(outcome, ['header']);
      expect(outcome.output.length).toBe(0);
    }
  });

  it('rejects a truncated nonce as a header failure and truncated chunks as payload failures', async () => {
    for (const cut of [headerLength + 1, payloadStart - 1]) {
      expectFailure(await attempt(file.subarray(0, cut), [identity]), ['header']);
    }
    for (const cut of [payloadStart, payloadStart + 15, payloadStart + 16, chunkAt(1) - 1, chunkAt(1), chunkAt(1) + 17, chunkAt(2), file.length - 1]) {
      const outcome = await attempt(file.subarray(0, cut), [identity]);
      expectFailure(outcome, ['payload']);
      expectAuthenticatedPrefix(outcome, plaintext);
    }
  });

  it('rejects a bit flip anywhere in the header, releasing nothing', async () => {
    for (let i = 0; i < headerLength; i++) {
      const flipped = Buffer.from(file);
      flipped[i] = (flipped[i] as number) ^ 0x01;
      const outcome = await attempt(flipped, [identity]);
      // A changed first byte no longer looks like a binary file and is read as (bad) armor.
      expectFailure(outcome, i === 0 ? ['armor'] : ['header', 'no-match', 'hmac']);
      expect(outcome.output.length).toBe(0);
    }
  });

  it('names the failure: MAC flip is an HMAC failure, stanza body flip is no match', async () => {
    const macFlip = Buffer.from(file);
    macFlip[headerLength - 3] = macFlip[headerLength - 3] === 0x41 ? 0x42 : 0x41; // 'A'/'B' keep base64 valid
    const macOutcome = await attempt(macFlip, [identity]);
    // Changing the last MAC character can also make the base64 non-canonical: both are refusals.
    expectFailure(macOutcome, ['hmac', 'header']);
    const bodyLine = file.indexOf('\n', file.indexOf('-> X25519')) + 1;
    const bodyFlip = Buffer.from(file);
    bodyFlip[bodyLine] = bodyFlip[bodyLine] === 0x41 ? 0x42 : 0x41;
    expectFailure(await attempt(bodyFlip, [identity]), ['no-match']);
  });

  it('rejects a bit flip in the nonce or any chunk, releasing only the chunks before it', async () => {
    for (const at of [headerLength, payloadStart + 5, chunkAt(1) - 1, chunkAt(1) + 100, chunkAt(2), file.length - 1]) {
      const flipped = Buffer.from(file);
      flipped[at] = (flipped[at] as number) ^ 0x80;
      const outcome = await attempt(flipped, [identity]);
      expectFailure(outcome, ['payload']);
      expectAuthenticatedPrefix(outcome, plaintext);
      expect(outcome.output.length).toBe(at < chunkAt(1) ? 0 : at < chunkAt(2) ? CHUNK : 2 * CHUNK);
    }
  });

  it('rejects reordered and duplicated chunks', async () => {
    const chunk = (i: number): Buffer => file.subarray(chunkAt(i), Math.min(chunkAt(i + 1), file.length));
    const prefix = file.subarray(0, payloadStart);
    for (const order of [
      [1, 0, 2],
      [0, 2],
      [0, 0, 1, 2],
      [0, 1, 1, 2],
      [0, 1, 2, 2],
    ]) {
      const outcome = await attempt(Buffer.concat([prefix, ...order.map(chunk)]), [identity]);
      expectFailure(outcome, ['payload']);
      expectAuthenticatedPrefix(outcome, plaintext);
    }
  });

  it('rejects data appended after the last chunk', async () => {
    for (const tail of [Buffer.from([0]), randomBytes(16), randomBytes(ENCRYPTED_CHUNK), file.subarray(chunkAt(2))]) {
      const outcome = await attempt(Buffer.concat([file, tail]), [identity]);
      expectFailure(outcome, ['payload']);
      expectAuthenticatedPrefix(outcome, plaintext);
    }
  });

  it('rejects a last chunk that fills 64 KiB exactly when data follows it', async () => {
    const exact = randomBytes(CHUNK);
    const exactFile = Buffer.from(await seal(exact, [recipient]));
    const outcome = await attempt(Buffer.concat([exactFile, Buffer.from('x')]), [identity]);
    expectFailure(outcome, ['payload']);
    // The chunk authenticated as the last one; only what follows it is refused.
    expect(outcome.output.equals(exact)).toBe(true);
  });

  it('rejects oversized headers before buffering them', async () => {
    const version = 'age-encryption.org/v1\n';
    const longLine = `${version}-> X25519 ${'A'.repeat(MAX_LINE_LENGTH)}\n`;
    const manyStanzas = version + '-> x\n\n'.repeat(MAX_STANZAS + 1);
    const hugeBody = `${version}-> x\n${`${'A'.repeat(64)}\n`.repeat(MAX_HEADER_SIZE / 65 + 10)}`;
    for (const [text, reason] of [
      [longLine, `longer than ${MAX_LINE_LENGTH}`],
      [manyStanzas, `more than ${MAX_STANZAS} stanzas`],
      [hugeBody, `exceeds ${MAX_HEADER_SIZE}`],
    ] as const) {
      const outcome = await attempt(Buffer.from(text), [identity]);
      expectFailure(outcome, ['header']);
      expect((outcome.error as Error).message).toContain(reason);
    }
  });

  it("refuses a stanza beyond the caller's maxStanzas before unwrapping any", async () => {
    const file = Buffer.from(await seal(plaintext, [recipient, recipient, recipient]));
    const opened = (maxStanzas: number): Promise<Buffer> =>
      buffer(Readable.from([file]).pipe(createOpenStream([identity], { maxStanzas })) as AsyncIterable<Buffer> & NodeJS.ReadableStream);
    expect((await opened(3)).equals(plaintext)).toBe(true);
    const refused = await opened(2).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(AgeError);
    expect(refused).toMatchObject({ kind: 'header', message: 'age header: line 6: more than 2 stanzas' });
    for (const maxStanzas of [0, MAX_STANZAS + 1, 1.5]) expect(() => createOpenStream([identity], { maxStanzas })).toThrow(/maxStanzas must be 1-128/);
  });

  it('rejects garbage, binary or "armored", with a typed error and no output', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 2000 }), fc.boolean(), async (bytes, looksBinary) => {
        const input = looksBinary ? Buffer.concat([Buffer.from('age-encryption.org/v1\n'), bytes]) : Buffer.from(bytes);
        const outcome = await attempt(input, [identity], 97);
        expectFailure(outcome, ['header', 'armor', 'no-match']);
        expect(outcome.output.length).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects any single-byte change of a sealed file (property)', async () => {
    const small = randomBytes(300);
    const smallFile = Buffer.from(await seal(small, [recipient]));
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: smallFile.length - 1 }), fc.integer({ min: 1, max: 255 }), async (at, xor) => {
        const changed = Buffer.from(smallFile);
        changed[at] = (changed[at] as number) ^ xor;
        const outcome = await attempt(changed, [identity], 13);
        expectFailure(outcome, ['header', 'no-match', 'hmac', 'payload', 'armor']);
        expect(outcome.output.length).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects the wrong identity, of either type, as no match', async () => {
    for (const other of [generateX25519Identity(), generateHybridIdentity()]) {
      const outcome = await attempt(file, [other]);
      expectFailure(outcome, ['no-match']);
      expect(outcome.output.length).toBe(0);
    }
  });

  it('never echoes a malformed identity (it may be a secret) in the error', () => {
    const secretish = `AGE-SECRET-KEY-2${'Q'.repeat(58)}`;
    expect(() => parseIdentity(secretish)).toThrow(AgeError);
    try {
      parseIdentity(secretish);
    } catch (error) {
      expect((error as Error).message).not.toContain('QQQQ');
    }
  });
});
