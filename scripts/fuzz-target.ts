/**
 * What a fuzz target is, and the helpers every target's check uses: a check throws FuzzFailure
 * when the parser misbehaves (an exception other than its own typed error, an accepted input that
 * does not survive re-serializing, an answer that depends on how the input was split).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { fuzzBytes } from './fuzz-mutations.js';

/** A parser misbehaved on a fuzz input. */
export class FuzzFailure extends Error {
  override readonly name = 'FuzzFailure';
}

export interface FuzzTarget<T> {
  name: string;
  /** Inputs the arbitrary starts from: the files of test/fuzz/corpus/<name>, none for generated values. */
  seeds(): T[];
  arbitrary(seeds: readonly T[]): fc.Arbitrary<T>;
  /** Throws FuzzFailure when the parser misbehaves on `input`. */
  check(input: T): void | Promise<void>;
}

/** Longest a single input may take: every input here is a few KiB at most. */
export const DEADLINE_MS = 5_000;

const ROOT = projectRoot(dirname(fileURLToPath(import.meta.url)));
export const CORPUS_DIR = join(ROOT, 'test', 'fuzz', 'corpus');

/** The folder holding package.json: scripts/ in the source tree, dist/scripts/ once built. */
function projectRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`fuzz: no package.json above ${from}`);
  }
}

export function loadCorpus(name: string): Uint8Array[] {
  const dir = join(CORPUS_DIR, name);
  const files = existsSync(dir) ? readdirSync(dir).sort() : [];
  if (files.length === 0) throw new Error(`fuzz ${name}: no seed corpus in ${dir} (node dist/scripts/fuzz-corpus.js writes it)`);
  return files.map((file) => new Uint8Array(readFileSync(join(dir, file))));
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** `run`'s value, or the error it threw when that is one of `expected`; any other exception is a FuzzFailure. */
export async function settle<T>(expected: readonly ErrorClass[], run: () => T | Promise<T>): Promise<{ value: T } | { error: Error }> {
  try {
    return { value: await run() };
  } catch (error) {
    if (error instanceof FuzzFailure) throw error;
    if (expected.some((type) => error instanceof type)) return { error: error as Error };
    const e = error as Error;
    throw new FuzzFailure(`unexpected ${e?.name ?? typeof error}: ${e?.message ?? String(error)}`, { cause: error });
  }
}

export function expectEqual(actual: unknown, expected: unknown, what: string): void {
  if (!isDeepStrictEqual(actual, expected)) throw new FuzzFailure(`${what}: ${fc.stringify(actual)} != ${fc.stringify(expected)}`);
}

export const bytes = (input: Uint8Array | Buffer): Uint8Array => new Uint8Array(input);
export const latin1 = (input: Uint8Array): string => Buffer.from(input).toString('latin1');

export function pieces(input: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < input.length; i += size) out.push(input.subarray(i, i + size));
  return out;
}

/** A byte target: seeds from its corpus, inputs from fuzzBytes. */
export function byteTarget(name: string, check: (input: Uint8Array) => void | Promise<void>, ...extra: fc.Arbitrary<Uint8Array>[]): FuzzTarget<Uint8Array> {
  return { name, seeds: () => loadCorpus(name), arbitrary: (seeds) => fuzzBytes(seeds, ...extra), check };
}

/** A serializer target: generated valid values, no corpus. */
export function valueTarget<T>(name: string, arbitrary: fc.Arbitrary<T>, check: (value: T) => void | Promise<void>): FuzzTarget<T> {
  return { name, seeds: () => [], arbitrary: () => arbitrary, check };
}

/** Printable ASCII without space, `min` to `max` characters. */
export const printable = (min: number, max: number) =>
  fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: min, maxLength: max });
