/**
 * age keys: the X-Wing KEM under the hybrid recipient agrees with @noble/post-quantum's
 * ml_kem768_x25519 in both directions, and recipient/identity strings are validated strictly.
 */
import { ml_kem768_x25519 } from '@noble/post-quantum/hybrid.js';
import { bech32 } from '@scure/base';
import { describe, expect, it } from 'vitest';
import { randomBytes } from '../../src/crypto/primitives.js';
import { XWingDecapsulationKey, XWingEncapsulationKey } from '../../src/crypto/age/xwing.js';
import { AgeError, generateHybridIdentity, generateX25519Identity, identityToRecipient, parseIdentity, parseRecipient } from '../../src/crypto/age/index.js';

function expectKeyError(f: () => unknown, message: RegExp): void {
  let error: unknown;
  try {
    f();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(AgeError);
  expect((error as AgeError).kind).toBe('key');
  expect((error as Error).message).toMatch(message);
}

describe('X-Wing (ML-KEM-768 + X25519) against @noble/post-quantum', () => {
  it('derives the same public key from a seed and agrees on shared secrets both ways', () => {
    for (let i = 0; i < 5; i++) {
      const seed = randomBytes(32);
      const ours = new XWingDecapsulationKey(seed);
      expect(ours.publicKey).toEqual(ml_kem768_x25519.getPublicKey(seed));
      const theirs = ml_kem768_x25519.encapsulate(ours.publicKey);
      expect(ours.decapsulate(theirs.cipherText)).toEqual(theirs.sharedSecret);
      const mine = new XWingEncapsulationKey(ours.publicKey).encapsulate();
      expect(ml_kem768_x25519.decapsulate(mine.ciphertext, seed)).toEqual(mine.sharedSecret);
    }
  });

  it('keeps agreeing when one key on each side serves many messages', () => {
    const seed = randomBytes(32);
    const ours = new XWingDecapsulationKey(seed);
    const recipient = new XWingEncapsulationKey(ours.publicKey);
    const secrets = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const mine = recipient.encapsulate();
      secrets.add(Buffer.from(mine.sharedSecret).toString('hex'));
      expect(ml_kem768_x25519.decapsulate(mine.ciphertext, seed)).toEqual(mine.sharedSecret);
      const theirs = ml_kem768_x25519.encapsulate(ours.publicKey);
      expect(ours.decapsulate(theirs.cipherText)).toEqual(theirs.sharedSecret);
      expect(ours.decapsulate(mine.ciphertext)).toEqual(mine.sharedSecret);
    }
    expect(secrets.size).toBe(4);
  });

  it('gives an unrelated secret for a corrupted ML-KEM ciphertext (implicit rejection)', () => {
    const seed = randomBytes(32);
    const key = new XWingDecapsulationKey(seed);
    const { ciphertext, sharedSecret } = new XWingEncapsulationKey(key.publicKey).encapsulate();
    ciphertext[10] = (ciphertext[10] as number) ^ 1;
    const rejected = key.decapsulate(ciphertext);
    expect(rejected).not.toEqual(sharedSecret);
    // The key decapsulates differently from its second use on: the same rejection, as noble's.
    expect(key.decapsulate(ciphertext)).toEqual(rejected);
    expect(rejected).toEqual(ml_kem768_x25519.decapsulate(ciphertext, seed));
  });
});

describe('age recipient and identity strings', () => {
  it('generates identities whose recipients have the age encodings', () => {
    const x25519 = generateX25519Identity();
    expect(x25519).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    expect(identityToRecipient(x25519)).toMatch(/^age1[0-9a-z]{58}$/);
    const hybrid = generateHybridIdentity();
    expect(hybrid).toMatch(/^AGE-SECRET-KEY-PQ-1[0-9A-Z]{58}$/);
    const pq = identityToRecipient(hybrid);
    expect(pq.startsWith('age1pq1')).toBe(true);
    expect(pq.length).toBeGreaterThan(1900);
    expect(parseRecipient(pq).toString()).toBe(pq);
  });

  it('refuses malformed recipients with AgeError("key")', () => {
    const good = identityToRecipient(generateX25519Identity());
    const flipped = good.slice(0, -1) + (good.endsWith('q') ? 'p' : 'q');
    expectKeyError(() => parseRecipient(flipped), /Bech32/);
    expectKeyError(() => parseRecipient(good.toUpperCase()), /unsupported type/);
    expectKeyError(() => parseRecipient(good.slice(0, 10) + good.slice(10).toUpperCase()), /Bech32/);
    expectKeyError(() => parseRecipient(bech32.encode('age', bech32.toWords(new Uint8Array(31)))), /31 bytes/);
    // A low-order point: every sender would derive an all-zero secret.
    expectKeyError(() => parseRecipient(bech32.encode('age', bech32.toWords(new Uint8Array(32)))), /low order|all-zero/);
    expectKeyError(() => parseRecipient(bech32.encode('age1pq', bech32.toWords(new Uint8Array(1215)), false)), /1215 bytes/);
    expectKeyError(() => parseRecipient('age1tag1qqqqqqqq'), /Bech32|unsupported/);
    expectKeyError(() => parseRecipient('ssh-ed25519 AAAA'), /unsupported type/);
    expectKeyError(() => parseRecipient(''), /unsupported type/);
  });

  it('validates a recipient string once and refuses a bad one every time', () => {
    const pq = identityToRecipient(generateHybridIdentity());
    // The second parse is the first one's object: its ML-KEM trial encapsulation is not redone.
    expect(parseRecipient(pq)).toBe(parseRecipient(pq));
    // The same key with its first ML-KEM coefficient set to 4095 (>= q): the encapsulation-key check fails.
    const bytes = Uint8Array.from(bech32.fromWords(bech32.decode(pq as `${string}1${string}`, false).words));
    bytes[0] = 0xff;
    bytes[1] = bytes[1]! | 0x0f;
    const outOfRange = bech32.encode('age1pq', bech32.toWords(bytes), false);
    expectKeyError(() => parseRecipient(outOfRange), /invalid public key/);
    expectKeyError(() => parseRecipient(outOfRange), /invalid public key/);
  });

  it('refuses malformed identities with AgeError("key")', () => {
    const good = generateX25519Identity();
    expectKeyError(() => parseIdentity(good.toLowerCase()), /unsupported type/);
    expectKeyError(() => parseIdentity(`${good.slice(0, -1)}${good.endsWith('Q') ? 'P' : 'Q'}`), /Bech32/);
    expectKeyError(() => parseIdentity(bech32.encode('AGE-SECRET-KEY-', bech32.toWords(new Uint8Array(33))).toUpperCase()), /33 bytes/);
    expectKeyError(() => parseIdentity(bech32.encode('AGE-SECRET-KEY-PQ-', bech32.toWords(new Uint8Array(64)), false).toUpperCase()), /64 bytes/);
    expectKeyError(() => identityToRecipient(identityToRecipient(good)), /unsupported type/);
  });
});
