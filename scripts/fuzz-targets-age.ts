/** Fuzz targets of src/crypto/age: ASCII armor, the header, and whole files opened at once and as a stream. */
import fc from 'fast-check';
import { ArmorDecoder, ArmorEncoder } from '../src/crypto/age/armor.js';
import { encodeHeader, encodeHeaderNoMac, HeaderReader, parseHeader, type Stanza } from '../src/crypto/age/format.js';
import { AgeError, createOpenStream, openBytes } from '../src/crypto/age/index.js';
import { FUZZ_AGE_IDENTITY } from './fuzz-fixtures.js';
import { byteTarget, bytes, expectEqual, FuzzFailure, pieces, printable, settle, valueTarget, type FuzzTarget } from './fuzz-target.js';

function dearmor(input: Uint8Array, size: number): Uint8Array {
  const decoder = new ArmorDecoder();
  const out = pieces(input, size).map((piece) => decoder.push(piece));
  decoder.end();
  return bytes(Buffer.concat(out));
}

function armor(data: Uint8Array, size: number): Uint8Array {
  const encoder = new ArmorEncoder();
  return bytes(Buffer.concat([...pieces(data, size).map((piece) => encoder.push(piece)), encoder.end()]));
}

async function settleAge<T>(kind: AgeError['kind'], run: () => T): Promise<{ value: T } | { error: Error }> {
  const result = await settle([AgeError], run);
  if ('error' in result && (result.error as AgeError).kind !== kind)
    throw new FuzzFailure(`AgeError of kind ${(result.error as AgeError).kind}, expected ${kind}`);
  return result;
}

const ageArmor = byteTarget('age-armor', async (input) => {
  const whole = await settleAge('armor', () => dearmor(input, Math.max(1, input.length)));
  const inPieces = await settleAge('armor', () => dearmor(input, 7));
  expectEqual('error' in inPieces, 'error' in whole, 'decoded in 7-octet pieces, the armor failed');
  if ('value' in whole) {
    expectEqual(inPieces, whole, 'armor decoded in pieces');
    expectEqual(dearmor(armor(whole.value, 100), 50), whole.value, 'armor re-encoded');
  }
});

const armorRoundTrip = valueTarget(
  'age-armor-roundtrip',
  fc.record({ data: fc.uint8Array({ maxLength: 600 }), pieceSize: fc.integer({ min: 1, max: 200 }) }),
  ({ data, pieceSize }) => {
    const text = armor(data, pieceSize);
    expectEqual(text, armor(data, Math.max(1, data.length)), 'armor encoded in pieces');
    expectEqual(dearmor(text, pieceSize), data, 'armor round trip');
  },
);

const ageHeader = byteTarget('age-header', async (input) => {
  const parsed = await settleAge('header', () => parseHeader(input));
  if (!('value' in parsed)) return;
  const { header, rest } = parsed.value;
  const consumed = input.subarray(0, input.length - rest.length);
  expectEqual(bytes(header.headerNoMac), encodeHeaderNoMac(header.stanzas), 'header re-encoded without its MAC');
  expectEqual(encodeHeader(encodeHeaderNoMac(header.stanzas), header.mac), bytes(consumed), 'header re-encoded');
  const reader = new HeaderReader();
  let inPieces = null;
  for (const piece of pieces(consumed, 5)) inPieces ??= reader.push(piece);
  expectEqual(inPieces?.header, header, 'header read in 5-octet pieces');
});

const stanzaArgument = printable(1, 20);

const headerRoundTrip = valueTarget(
  'age-header-roundtrip',
  fc.record({
    stanzas: fc.array(
      fc.record({ type: stanzaArgument, args: fc.array(stanzaArgument, { maxLength: 3 }), body: fc.uint8Array({ maxLength: 150 }) }, { noNullPrototype: true }),
      {
        maxLength: 5,
      },
    ),
    mac: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  }),
  ({ stanzas, mac }) => {
    // The header grammar allows an scrypt stanza only alone.
    const valid: Stanza[] = stanzas.some((s) => s.type === 'scrypt') && stanzas.length > 1 ? stanzas.filter((s) => s.type !== 'scrypt') : stanzas;
    const headerNoMac = encodeHeaderNoMac(valid);
    const { header, rest } = parseHeader(encodeHeader(headerNoMac, mac));
    expectEqual(
      { stanzas: header.stanzas, mac: header.mac, headerNoMac: header.headerNoMac, rest },
      { stanzas: valid, mac, headerNoMac, rest: new Uint8Array(0) },
      'header round trip',
    );
  },
);

/** Opens `input` with createOpenStream, fed in pieces of `size`. */
async function openInPieces(input: Uint8Array, size: number): Promise<Uint8Array> {
  const stream = createOpenStream([FUZZ_AGE_IDENTITY]);
  const output: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => output.push(chunk));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  for (const piece of pieces(input, size)) stream.write(Buffer.from(piece));
  stream.end();
  await done;
  return bytes(Buffer.concat(output));
}

const ageOpen = byteTarget('age-open', async (input) => {
  const whole = await settle([AgeError], () => bytes(openBytes(input, [FUZZ_AGE_IDENTITY])));
  if ('error' in whole && (whole.error as AgeError).kind === 'usage') throw new FuzzFailure(`AgeError of kind usage: ${whole.error.message}`);
  const streamed = await settle([AgeError], () => openInPieces(input, 13));
  const outcome = (run: typeof whole) => ('error' in run ? (run.error as AgeError).kind : run.value);
  expectEqual(outcome(streamed), outcome(whole), 'opened as a stream of 13-octet pieces');
});

export const AGE_TARGETS: readonly FuzzTarget<unknown>[] = [ageArmor, armorRoundTrip, ageHeader, headerRoundTrip, ageOpen];
