/**
 * Fuzz inputs as fast-check arbitraries: random bytes, and seeds changed by a few mutations (bit
 * flips, truncation, insertion, deletion, duplicated slices, splices of two seeds). Mutations are
 * data, so a failure shrinks to the fewest and smallest mutations of the first seed that fail.
 */
import fc from 'fast-check';

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'duplicate'; from: number; length: number; to: number }
  | { kind: 'splice'; seed: number; from: number; at: number };

/** Bytes that delimit or terminate something in one of the formats. */
const INTERESTING_BYTES = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x2c, 0x2d, 0x2e, 0x31, 0x3a, 0x3b, 0x3d, 0x7f, 0x80, 0xff];

const position = fc.nat({ max: 1 << 20 });

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: position, byte: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.nat({ max: 255 })) }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), from: position, length: fc.integer({ min: 1, max: 256 }), to: position }),
  fc.record({ kind: fc.constant('splice' as const), seed: fc.nat(), from: position, at: position }),
);

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function apply(input: Uint8Array, m: Mutation, seeds: readonly Uint8Array[]): Uint8Array {
  const at = (n: number, length = input.length): number => n % (length + 1);
  switch (m.kind) {
    case 'flip': {
      if (input.length === 0) return input;
      const out = Uint8Array.from(input);
      const i = m.at % input.length;
      out[i] = out[i]! ^ (1 << m.bit);
      return out;
    }
    case 'set': {
      if (input.length === 0) return Uint8Array.of(m.byte);
      const out = Uint8Array.from(input);
      out[m.at % input.length] = m.byte;
      return out;
    }
    case 'truncate':
      return input.subarray(0, at(m.at));
    case 'insert':
      return concat(input.subarray(0, at(m.at)), m.bytes, input.subarray(at(m.at)));
    case 'delete':
      return concat(input.subarray(0, at(m.at)), input.subarray(at(m.at) + m.length));
    case 'duplicate': {
      const slice = input.subarray(at(m.from), at(m.from) + m.length);
      return concat(input.subarray(0, at(m.to)), slice, input.subarray(at(m.to)));
    }
    case 'splice': {
      const other = seeds[m.seed % seeds.length]!;
      return concat(input.subarray(0, at(m.at)), other.subarray(at(m.from, other.length)));
    }
  }
}

/** A seed changed by one to four mutations. */
export function mutatedSeed(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([index, mutations]) => mutations.reduce((input, m) => apply(input, m, seeds), seeds[index]!));
}

/** Random bytes, text-like bytes and (mostly) mutated seeds; `extra` adds arbitraries that know the format. */
export function fuzzBytes(seeds: readonly Uint8Array[], ...extra: fc.Arbitrary<Uint8Array>[]): fc.Arbitrary<Uint8Array> {
  const random = fc.uint8Array({ maxLength: 512 });
  const ascii = fc.string({ unit: 'binary-ascii', maxLength: 256 }).map((s) => new Uint8Array(Buffer.from(s, 'latin1')));
  const seeded =
    seeds.length === 0
      ? []
      : [
          { arbitrary: mutatedSeed(seeds), weight: 6 },
          { arbitrary: fc.constantFrom(...seeds), weight: 1 },
        ];
  return fc.oneof({ arbitrary: random, weight: 1 }, { arbitrary: ascii, weight: 1 }, ...seeded, ...extra.map((arbitrary) => ({ arbitrary, weight: 2 })));
}

/** Bytes of a text, as the parser under test would receive it. */
export function textBytes(text: fc.Arbitrary<string>, encoding: BufferEncoding = 'latin1'): fc.Arbitrary<Uint8Array> {
  return text.map((s) => new Uint8Array(Buffer.from(s, encoding)));
}
