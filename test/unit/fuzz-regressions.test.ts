/**
 * Inputs the fuzzer (scripts/fuzz.ts) found mishandled, kept with the typed error they must get.
 * Each parser must answer the same whatever the network's split of the bytes.
 */
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { AgeError, createOpenStream, openBytes, sealBytes } from '../../src/crypto/age/index.js';
import { FrameError, FrameReader, FrameType, sealFrame } from '../../src/xpony/frames.js';
import { createUnwrapStream, SealedMessageError, WRAPPER_HEADER } from '../../src/xpony/sealed-message.js';
import { frameCipher, FUZZ_AGE_IDENTITY, FUZZ_AGE_RECIPIENT } from '../../scripts/fuzz-fixtures.js';

function pieces(octets: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < octets.length; i += size) out.push(octets.subarray(i, i + size));
  return out;
}

function ageFailure(f: () => unknown): AgeError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(AgeError);
    return error as AgeError;
  }
  throw new Error('expected an AgeError');
}

/** The error `stream` fails with when `octets` are written to it in pieces of `size`. */
async function streamFailure(stream: NodeJS.ReadWriteStream, octets: Buffer, size: number): Promise<unknown> {
  return buffer(Readable.from(pieces(octets, size)).pipe(stream) as NodeJS.ReadableStream & AsyncIterable<Buffer>).then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe('tunnel frames: nothing may follow the close frame', () => {
  // Found by tunnel-frames: frames sealed under frameCipher(), a close frame, then 43 more octets.
  // Fed whole it failed; fed byte by byte the reader took the octets after the close frame.
  const AFTER_CLOSE = Buffer.from(
    '002b5923ac67529450a185c43a40d14ad0d9d3d7c8bc84e1c16f8bc005d3c59912f8290f29386b0b1d34f2a26b00118cc5d7eb8f935eda13bb0c12b83a' +
      '692b70001731da7c17324a458afc62c01fa3627705ced4720afd298c001198a1aab1148b9f303ef08e0f5e2a61212a720afd298c001198a1aab1148b9f303ef08e',
    'hex',
  );

  it('fails fed whole', () => {
    expect(() => new FrameReader(frameCipher()).push(AFTER_CLOSE)).toThrow(new FrameError('data after the close frame'));
  });

  it('fails fed byte by byte', () => {
    const reader = new FrameReader(frameCipher());
    expect(() => pieces(AFTER_CLOSE, 1).forEach((byte) => reader.push(byte))).toThrow(new FrameError('data after the close frame'));
  });

  it('fails on one octet in the push after the close frame', () => {
    const reader = new FrameReader(frameCipher());
    expect(reader.push(Buffer.concat(sealFrame(frameCipher(), FrameType.close))).map((f) => f.type)).toEqual([FrameType.close]);
    expect(reader.push(Buffer.alloc(0))).toEqual([]);
    expect(() => reader.push(Buffer.of(0))).toThrow(new FrameError('data after the close frame'));
  });
});

describe('armored age file: errors come in input order, however the input is split', () => {
  // Found by sealed-message (a mutated sealed message, reduced by hand): the header is not for our
  // identity (451, retry later) and a later armor line is bad (554, damaged). Fed whole, the armor
  // error won; in pieces, the header's. The header comes first, so "not for us" it is, both ways.
  const FILE = Buffer.from(
    '-----BEGIN AGE ENCRYPTED FILE-----\n' +
      'YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IHgKCi0tLSBBQUFBQUFBQUFBQUFBQUFB\n' +
      'QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBCg==\n' +
      '!!!!\n' +
      '-----END AGE ENCRYPTED FILE-----\n',
    'latin1',
  );

  it('openBytes: no-match', () => {
    expect(ageFailure(() => openBytes(FILE, [FUZZ_AGE_IDENTITY])).kind).toBe('no-match');
  });

  it.each([1, 7, 64, FILE.length])('createOpenStream in %i-octet pieces: no-match', async (size) => {
    const error = await streamFailure(createOpenStream([FUZZ_AGE_IDENTITY]), FILE, size);
    expect(error).toBeInstanceOf(AgeError);
    expect((error as AgeError).kind).toBe('no-match');
  });

  it.each([1, 61, 4096])('sealed message in %i-octet pieces: not-for-us', async (size) => {
    const message = Buffer.concat([WRAPPER_HEADER, Buffer.from(FILE.toString('latin1').replaceAll('\n', '\r\n'), 'latin1')]);
    const error = await streamFailure(createUnwrapStream([FUZZ_AGE_IDENTITY]), message, size);
    expect(error).toBeInstanceOf(SealedMessageError);
    expect((error as SealedMessageError).kind).toBe('not-for-us');
  });

  it.each([1, 64, 4096])('a bad armor line after a header that is ours still fails, in %s-octet pieces', async (size) => {
    const sealed = Buffer.from(sealBytes(Buffer.from('hello'), [FUZZ_AGE_RECIPIENT], { armor: true })).toString('latin1');
    const file = Buffer.from(sealed.replace('-----END', '!!!!\n-----END'), 'latin1');
    expect(ageFailure(() => openBytes(file, [FUZZ_AGE_IDENTITY])).kind).toBe('armor');
    const error = await streamFailure(createOpenStream([FUZZ_AGE_IDENTITY]), file, size);
    expect((error as AgeError).kind).toBe('armor');
  });
});
