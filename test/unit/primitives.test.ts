import { hkdfSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 as nobleX25519 } from '@noble/curves/ed25519.js';
import { blake2s, blake2b } from '@noble/hashes/blake2.js';
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import {
  AuthenticationError,
  KeyError,
  aeadOpen,
  aeadOpenParts,
  aeadSeal,
  aeadSealParts,
  hash,
  hkdfSha256,
  hmac,
  randomBytes,
  x25519,
  x25519Ephemeral,
  x25519StaticKey,
  x25519GenerateKey,
  x25519GenerateKeyPair,
  x25519PublicKey,
} from '../../src/crypto/primitives.js';

// node:crypto primitives, cross-checked against the independent @noble implementations.
describe('primitives', () => {
  it('X25519 agrees with @noble/curves (RFC 7748 test vector and random keys)', () => {
    const alicePriv = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex');
    const bobPub = Buffer.from('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f', 'hex');
    expect(Buffer.from(x25519(alicePriv, bobPub)).toString('hex')).toBe('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
    for (let i = 0; i < 10; i++) {
      const a = x25519GenerateKeyPair();
      const b = x25519GenerateKeyPair();
      expect(x25519PublicKey(a.privateKey)).toEqual(a.publicKey);
      expect(nobleX25519.getPublicKey(a.privateKey)).toEqual(a.publicKey);
      expect(x25519(a.privateKey, b.publicKey)).toEqual(nobleX25519.getSharedSecret(a.privateKey, b.publicKey));
    }
  });

  it('HKDF-SHA-256 matches RFC 5869 test cases 1 and 3 and node:crypto hkdfSync', () => {
    const ikm = Buffer.alloc(22, 0x0b);
    const salt = Buffer.from('000102030405060708090a0b0c', 'hex');
    const info = Buffer.from('f0f1f2f3f4f5f6f7f8f9', 'hex');
    expect(Buffer.from(hkdfSha256(ikm, salt, info, 42)).toString('hex')).toBe(
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    );
    expect(Buffer.from(hkdfSha256(ikm, new Uint8Array(0), new Uint8Array(0), 42)).toString('hex')).toBe(
      '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    );
    // Node 24's hkdfSync refuses length 0 (OpenSSL 3.5), so that one is checked on its own.
    expect(hkdfSha256(ikm, salt, info, 0)).toEqual(new Uint8Array(0));
    for (const length of [1, 32, 33, 64, 100, 255 * 32]) {
      const [k, s, i] = [randomBytes(16), randomBytes(length % 40), randomBytes(7)];
      expect(hkdfSha256(k, s, i, length)).toEqual(new Uint8Array(hkdfSync('sha256', k, s, i, length)));
    }
    expect(() => hkdfSha256(ikm, salt, info, 255 * 32 + 1)).toThrow(RangeError);
  });

  it('X25519 static and ephemeral keys agree with @noble/curves and refuse low-order points', () => {
    for (let i = 0; i < 10; i++) {
      const a = x25519GenerateKeyPair();
      const b = x25519GenerateKeyPair();
      const staticKey = x25519StaticKey(a.privateKey);
      expect(staticKey.publicKey).toEqual(a.publicKey);
      expect(staticKey.agree(b.publicKey)).toEqual(nobleX25519.getSharedSecret(a.privateKey, b.publicKey));
      const ephemeral = x25519Ephemeral(a.publicKey);
      expect(staticKey.agree(ephemeral.ephemeralPublicKey)).toEqual(ephemeral.sharedSecret);
    }
    expect(() => x25519StaticKey(randomBytes(32)).agree(new Uint8Array(32))).toThrow(KeyError);
    expect(() => x25519Ephemeral(new Uint8Array(32))).toThrow(KeyError);
    expect(() => x25519StaticKey(new Uint8Array(31))).toThrow(/expected 32 bytes, got 31/);
  });

  it('x25519GenerateKey makes distinct keys whose agreements match @noble/curves', () => {
    const peer = x25519GenerateKeyPair();
    const first = x25519GenerateKey();
    const second = x25519GenerateKey();
    expect(first.publicKey).not.toEqual(second.publicKey);
    for (const key of [first, second]) {
      expect(key.publicKey).toHaveLength(32);
      expect(key.agree(peer.publicKey)).toEqual(nobleX25519.getSharedSecret(peer.privateKey, key.publicKey));
    }
    expect(() => first.agree(new Uint8Array(32))).toThrow(KeyError);
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

  it('ChaCha20-Poly1305 over pieces is the same AEAD as over the whole, and releases nothing altered', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const ad = randomBytes(7);
    const pt = randomBytes(3000);
    const cuts = [[], [0], [1], [1499, 1500], [0, 3000], [64, 2999, 3000]];
    for (const at of cuts) {
      const pieces = [0, ...at, pt.length].slice(1).map((end, i, ends) => pt.subarray(i === 0 ? 0 : ends[i - 1], end));
      const sealed = aeadSealParts(key, nonce, pieces, ad);
      expect(sealed.map((piece) => piece.length)).toEqual([...pieces.map((piece) => piece.length), 16]);
      const whole = chacha20poly1305(key, nonce, ad).encrypt(pt);
      expect(Buffer.concat(sealed)).toEqual(Buffer.from(whole));
      const body = sealed.slice(0, -1);
      const tag = sealed.at(-1)!;
      expect(Buffer.concat(aeadOpenParts(key, nonce, body, tag, ad))).toEqual(Buffer.from(pt));
      const badTag = Uint8Array.from(tag);
      badTag[15]! ^= 0x80;
      expect(() => aeadOpenParts(key, nonce, body, badTag, ad)).toThrow(AuthenticationError);
    }
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
