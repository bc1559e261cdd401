import { describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/crypto/fingerprint.js';
import { KeyError, x25519GenerateKeyPair } from '../../src/crypto/primitives.js';

// Bob's public key from RFC 7748 section 6.1.
const RFC7748_BOB = Buffer.from('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f', 'hex');

describe('fingerprint', () => {
  it('is pinned for a fixed key (changing the scheme breaks every published pin)', () => {
    // Computed independently with node:crypto and a hand-written base32:
    // SHA-256("blackpony fingerprint v1\0" || key), first 20 bytes, base32 lower case, groups of 4.
    expect(fingerprint(RFC7748_BOB)).toBe('bh2q-ytie-oqfn-7r43-kj2n-mhl3-d7nu-xh5g');
  });

  it('has 8 groups of 4 base32 characters', () => {
    for (let i = 0; i < 20; i++) {
      expect(fingerprint(x25519GenerateKeyPair().publicKey)).toMatch(/^[a-z2-7]{4}(-[a-z2-7]{4}){7}$/);
    }
  });

  it('changes with any single bit of the key', () => {
    const reference = fingerprint(RFC7748_BOB);
    for (let bit = 0; bit < 256; bit++) {
      const flipped = Buffer.from(RFC7748_BOB);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      expect(fingerprint(flipped)).not.toBe(reference);
    }
  });

  it('refuses keys of the wrong length', () => {
    for (const length of [0, 31, 33, 64]) {
      expect(() => fingerprint(new Uint8Array(length))).toThrow(KeyError);
    }
    expect(() => fingerprint(new Uint8Array(31))).toThrow(/expected a 32-byte X25519 public key, got 31 bytes/);
  });
});
