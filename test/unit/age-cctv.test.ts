/**
 * The official age test vectors (C2SP CCTV, npm package cctv-age): every vector for the recipient
 * types we implement (X25519, mlkem768x25519) must give exactly the expected result, including the
 * failure class, and a payload failure must release only the plaintext the vector allows.
 */
import { createHash } from 'node:crypto';
import { inflateSync } from 'node:zlib';
import * as cctv from 'cctv-age';
import { describe, expect, it } from 'vitest';
import { AgeError, createOpenStream, generateX25519Identity, type AgeErrorKind } from '../../src/crypto/age/index.js';

interface Vector {
  name: string;
  expect: string;
  payloadSha256: string | null;
  identities: string[];
  passphrases: string[];
  file: Buffer;
}

function parseVector(name: string, raw: Uint8Array): Vector {
  const bytes = Buffer.from(raw);
  const split = bytes.indexOf('\n\n');
  const fields = bytes
    .subarray(0, split)
    .toString()
    .split('\n')
    .map((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)] as const);
  const values = (key: string): string[] => fields.filter(([k]) => k === key).map(([, v]) => v);
  const body = bytes.subarray(split + 2);
  return {
    name,
    expect: values('expect')[0] ?? '',
    payloadSha256: values('payload')[0] ?? null,
    identities: values('identity'),
    passphrases: values('passphrase'),
    file: values('compressed')[0] === 'zlib' ? inflateSync(body) : body,
  };
}

const EXPECTED_KIND: Record<string, AgeErrorKind | null> = {
  success: null,
  'no match': 'no-match',
  'HMAC failure': 'hmac',
  'header failure': 'header',
  'armor failure': 'armor',
  'payload failure': 'payload',
};

/** Runs the open stream over `file`, the header a byte at a time (to exercise incremental parsing), then in 64 KiB+3 pieces. */
async function openVector(vector: Vector): Promise<{ output: Buffer; error: unknown }> {
  const stream = createOpenStream(vector.identities.length > 0 ? vector.identities : [ANY_IDENTITY]);
  const output: Buffer[] = [];
  stream.on('data', (piece: Buffer) => output.push(piece));
  const finished = new Promise<unknown>((resolve) => {
    stream.on('end', () => resolve(null));
    stream.on('error', resolve);
  });
  const bytewise = Math.min(vector.file.length, 3000);
  for (let i = 0; i < bytewise; i++) stream.write(vector.file.subarray(i, i + 1));
  for (let i = bytewise; i < vector.file.length; i += 65539) stream.write(vector.file.subarray(i, i + 65539));
  stream.end();
  const error = await finished;
  return { output: Buffer.concat(output), error };
}

const vectors = Object.entries(cctv as Record<string, Uint8Array>)
  .map(([name, raw]) => parseVector(name, raw))
  .sort((a, b) => a.name.localeCompare(b.name));
// Passphrase (scrypt) files are not implemented: blackpony only seals to keys.
const unsupported = vectors.filter((v) => v.identities.length === 0 && v.passphrases.length > 0);
const supported = vectors.filter((v) => !unsupported.includes(v));
// Vectors without keys ("empty") are header failures before any key is used: any identity will do.
const ANY_IDENTITY = generateX25519Identity();

describe('age CCTV vectors', () => {
  it('are all loaded and only the passphrase-only (scrypt) ones are unsupported', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(143);
    expect(unsupported.every((v) => v.passphrases.length > 0)).toBe(true);
    expect(unsupported.map((v) => v.name).every((name) => name.startsWith('scrypt') || name === 'armor_scrypt')).toBe(true);
    // 118 in cctv-age 0.2.0: X25519, hybrid, armor, header, HMAC and STREAM vectors.
    expect(supported.length).toBeGreaterThanOrEqual(118);
    expect(supported.filter((v) => v.identities.some((id) => id.startsWith('AGE-SECRET-KEY-PQ-1'))).length).toBeGreaterThanOrEqual(17);
    expect(supported.filter((v) => v.expect === 'payload failure').length).toBeGreaterThanOrEqual(19);
    expect(supported.filter((v) => v.expect === 'armor failure').length).toBeGreaterThanOrEqual(22);
    for (const v of supported) expect(Object.keys(EXPECTED_KIND)).toContain(v.expect);
  });

  for (const vector of unsupported) {
    it.skip(`${vector.name} (unsupported: passphrase/scrypt recipients are not implemented)`, () => {});
  }

  for (const vector of supported) {
    it(`${vector.name}: ${vector.expect}`, async () => {
      const { output, error } = await openVector(vector);
      const kind = EXPECTED_KIND[vector.expect];
      if (kind === null) {
        expect(error).toBeNull();
      } else {
        expect(error).toBeInstanceOf(AgeError);
        expect((error as AgeError).kind, (error as Error).message).toBe(kind);
      }
      if (vector.payloadSha256 !== null) {
        expect(createHash('sha256').update(output).digest('hex')).toBe(vector.payloadSha256);
      } else {
        expect(output.length).toBe(0);
      }
    });
  }
});
