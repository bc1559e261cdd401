import { describe, expect, it } from 'vitest';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 as nobleX25519 } from '@noble/curves/ed25519.js';
import { blake2s, blake2b } from '@noble/hashes/blake2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import {
  AuthenticationError,
  KeyError,
  aeadOpen,
  aeadSeal,
  hash,
  hmac,
  randomBytes,
  x25519,
  x25519GenerateKeyPair,
  x25519PublicKey,
} from '../../src/crypto/primitives.js';

// node:crypto primitives, cross-checked against the independent @noble implementations.
describe('primitives', () => {
  it('X25519 agrees with @noble/curves (RFC 7748 test vector and random keys)', () => {
    const alicePriv = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex');
    const bobPub = Buffer.from('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f', 'hex');
    expect(Buffer.from(x25519(alicePriv, bobPub)).toString('hex')).toBe(
      '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
    );
    for (let i = 0; i < 10; i++) {
      const a = x25519GenerateKeyPair();
      const b = x25519GenerateKeyPair();
      expect(x25519PublicKey(a.privateKey)).toEqual(a.publicKey);
      expect(nobleX25519.getPublicKey(a.privateKey)).toEqual(a.publicKey);
      expect(x25519(a.privateKey, b.publicKey)).toEqual(nobleX25519.getSharedSecret(a.privateKey, b.publicKey));
    }
  });

  it('X25519 refuses a low-order point and wrong key lengths', () => {
    const priv = randomBytes(32);
    expect(() => x25519(priv, new Uint8Array(32))).toThrow(KeyError);
    expect(() => x25519(priv, new Uint8Array(31))).toThrow(/expected 32 bytes, got 31/);
  });

  it('ChaCha20-Poly1305 agrees with @noble/ciphers and rejects any altered byte', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const ad = randomBytes(13);
    const pt = randomBytes(1000);
    const sealed = aeadSeal(key, nonce, pt, ad);
    expect(sealed).toEqual(chacha20poly1305(key, nonce, ad).encrypt(pt));
    expect(aeadOpen(key, nonce, sealed, ad)).toEqual(pt);
    for (const index of [0, 500, sealed.length - 1]) {
      const bad = sealed.slice();
      bad[index]! ^= 1;
      expect(() => aeadOpen(key, nonce, bad, ad)).toThrow(AuthenticationError);
    }
    expect(() => aeadOpen(key, nonce, sealed, randomBytes(13))).toThrow(AuthenticationError);
    expect(() => aeadOpen(key, nonce, sealed.subarray(0, 15), ad)).toThrow(AuthenticationError);
    expect(aeadOpen(key, nonce, aeadSeal(key, nonce, new Uint8Array(0)))).toEqual(new Uint8Array(0));
  });

  it('BLAKE2 hashes and HMACs agree with @noble/hashes', () => {
    const key = randomBytes(32);
    const data = randomBytes(200);
    expect(hash('BLAKE2s', data)).toEqual(blake2s(data));
    expect(hash('BLAKE2b', data)).toEqual(blake2b(data));
    expect(hmac('BLAKE2s', key, data)).toEqual(nobleHmac(blake2s, key, data));
    expect(hmac('BLAKE2b', key, data)).toEqual(nobleHmac(blake2b, key, data));
  });
});
