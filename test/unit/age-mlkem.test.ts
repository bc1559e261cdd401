/**
 * The ML-KEM-768 behind the hybrid recipient and the Noise HFS handshake: the implementation chosen
 * at load is node:crypto's exactly when this Node has crypto.encapsulate, a Node without it (or with
 * a broken one) falls back to the project's JavaScript one (mlkem-js.ts), and both agree with the
 * independent @noble/post-quantum byte for byte: same encapsulation key from a seed, the same
 * ciphertext and secret from the same randomness (JavaScript; node:crypto takes none), secrets that
 * cross in both directions, the same implicit rejection of a forged ciphertext and the same refusal
 * of an invalid encapsulation key. Node 20 has no native ML-KEM; test/unit/node24-crypto.test.ts
 * runs this file under Node 24, where the native group must run.
 */
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import * as nodeCrypto from 'node:crypto';
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encapsulateDerandomized, mlkem768, MLKEM768_CIPHERTEXT_LENGTH, MLKEM768_PUBLIC_KEY_LENGTH, MLKEM768_SEED_LENGTH } from '../../src/crypto/age/mlkem.js';
import { javascriptMlKem768 } from '../../src/crypto/age/mlkem-js.js';
import { loadNativeMlKem768 } from '../../src/crypto/age/mlkem-native.js';
import { nobleMlKem768 } from '../harness/noble-mlkem.js';

const HAS_NATIVE_API = typeof (nodeCrypto as { encapsulate?: unknown }).encapsulate === 'function';
/** Set by the Node 24 run: a missing native path fails there instead of skipping. */
const NATIVE_REQUIRED = process.env.BLACKPONY_EXPECT_NATIVE_MLKEM === '1';
const native = loadNativeMlKem768();

/** An encapsulation key whose first coefficient is 4095 >= q, which FIPS 203's input check refuses. */
function unreducedKey(publicKey: Uint8Array): Uint8Array {
  const key = new Uint8Array(publicKey);
  key[0] = 0xff;
  key[1]! |= 0x0f;
  return key;
}

describe('ML-KEM-768 selection', () => {
  it('runs node:crypto exactly when this Node has crypto.encapsulate', () => {
    expect(mlkem768.implementation).toBe(HAS_NATIVE_API ? 'node:crypto' : 'JS + OpenSSL SHA-3');
    if (NATIVE_REQUIRED) expect(mlkem768.implementation).toBe('node:crypto');
  });

  it('falls back when the native API is absent', () => {
    const { createPrivateKey, createPublicKey } = nodeCrypto;
    expect(loadNativeMlKem768({ createPrivateKey, createPublicKey })).toBeNull();
  });

  it('falls back when the native API cannot make ml-kem-768 keys or does not round-trip', () => {
    const { createPrivateKey, createPublicKey } = nodeCrypto;
    const unsupported = () => {
      throw new Error('Unsupported key type');
    };
    expect(loadNativeMlKem768({ createPrivateKey: unsupported, createPublicKey, encapsulate: unsupported, decapsulate: unsupported })).toBeNull();
    if (!HAS_NATIVE_API) return;
    const api = nodeCrypto as unknown as { encapsulate: unknown };
    const wrongSecret = () => Buffer.alloc(32);
    expect(loadNativeMlKem768({ createPrivateKey, createPublicKey, encapsulate: api.encapsulate, decapsulate: wrongSecret })).toBeNull();
  });

  it('noble: a secret encapsulated to a seed-derived key decapsulates', () => {
    const key = nobleMlKem768.fromSeed(randomBytes(MLKEM768_SEED_LENGTH));
    expect(key.publicKey.length).toBe(MLKEM768_PUBLIC_KEY_LENGTH);
    const { ciphertext, sharedSecret } = nobleMlKem768.encapsulate(key.publicKey);
    expect(ciphertext.length).toBe(MLKEM768_CIPHERTEXT_LENGTH);
    expect(key.decapsulate(ciphertext)).toEqual(sharedSecret);
  });
});

/**
 * Whether SampleNTT needs more than the first three SHAKE128 blocks for some entry of the matrix of
 * the key made from `seed`: the rare path (about one key in 14) where mlkem-js.ts asks for more output.
 */
function needsLongerXof(seed: Uint8Array): boolean {
  const rho = createHash('sha3-512').update(seed.subarray(0, 32)).update(Uint8Array.of(3)).digest().subarray(0, 32);
  for (let entry = 0; entry < 9; entry++) {
    const stream = createHash('shake128', { outputLength: 504 })
      .update(Buffer.concat([rho, Uint8Array.of(entry % 3, Math.floor(entry / 3))]))
      .digest();
    let accepted = 0;
    for (let pos = 0; pos < stream.length; pos += 3) {
      accepted += Number((stream[pos]! | ((stream[pos + 1]! & 0x0f) << 8)) < 3329) + Number(((stream[pos + 1]! >> 4) | (stream[pos + 2]! << 4)) < 3329);
    }
    if (accepted < 256) return true;
  }
  return false;
}

describe('ML-KEM-768 in JavaScript (mlkem-js.ts) against noble', () => {
  it('derives the same keys and makes the same ciphertexts and secrets from the same randomness', () => {
    for (let i = 0; i < 24; i++) {
      const seed = randomBytes(MLKEM768_SEED_LENGTH);
      const ours = javascriptMlKem768.fromSeed(seed);
      const theirs = ml_kem768.keygen(seed);
      expect(Buffer.from(ours.publicKey).equals(theirs.publicKey)).toBe(true);
      const m = randomBytes(32);
      const sent = encapsulateDerandomized(ours.publicKey, m);
      const expected = ml_kem768.encapsulate(theirs.publicKey, m);
      expect(Buffer.from(sent.ciphertext).equals(expected.cipherText)).toBe(true);
      expect(Buffer.from(sent.sharedSecret).equals(expected.sharedSecret)).toBe(true);
      expect(Buffer.from(ours.decapsulate(expected.cipherText)).equals(expected.sharedSecret)).toBe(true);
      const drawn = javascriptMlKem768.encapsulate(theirs.publicKey);
      expect(Buffer.from(ml_kem768.decapsulate(drawn.ciphertext, theirs.secretKey)).equals(drawn.sharedSecret)).toBe(true);
    }
  });

  it('agrees with noble where a matrix entry needs more than three SHAKE128 blocks', () => {
    let seed = randomBytes(MLKEM768_SEED_LENGTH);
    for (let tries = 0; !needsLongerXof(seed); tries++) {
      expect(tries).toBeLessThan(2000);
      seed = randomBytes(MLKEM768_SEED_LENGTH);
    }
    const theirs = ml_kem768.keygen(seed);
    const ours = javascriptMlKem768.fromSeed(seed);
    expect(Buffer.from(ours.publicKey).equals(theirs.publicKey)).toBe(true);
    const m = randomBytes(32);
    expect(Buffer.from(encapsulateDerandomized(theirs.publicKey, m).ciphertext).equals(ml_kem768.encapsulate(theirs.publicKey, m).cipherText)).toBe(true);
  });

  it('rejects every tampered ciphertext implicitly, with the secret noble derives for it', () => {
    const seed = randomBytes(MLKEM768_SEED_LENGTH);
    const key = javascriptMlKem768.fromSeed(seed);
    const { secretKey } = ml_kem768.keygen(seed);
    const { ciphertext, sharedSecret } = javascriptMlKem768.encapsulate(key.publicKey);
    // A flipped bit in each part (u, v), the first and last octets, and a truncated-and-padded one.
    for (const position of [0, 1, 319, 640, 959, 960, 1000, MLKEM768_CIPHERTEXT_LENGTH - 1]) {
      const forged = new Uint8Array(ciphertext);
      forged[position]! ^= 1 << (position % 8);
      const rejected = key.decapsulate(forged);
      expect(Buffer.from(rejected).equals(sharedSecret)).toBe(false);
      expect(Buffer.from(rejected).equals(ml_kem768.decapsulate(forged, secretKey))).toBe(true);
    }
    expect(Buffer.from(key.decapsulate(ciphertext)).equals(sharedSecret)).toBe(true);
  });

  it('refuses keys, ciphertexts and seeds of the wrong length, and a key that fails the modulus check', () => {
    const key = javascriptMlKem768.fromSeed(randomBytes(MLKEM768_SEED_LENGTH));
    expect(() => javascriptMlKem768.encapsulate(key.publicKey.subarray(1))).toThrow(/encapsulation key: expected 1184 bytes, got 1183/);
    expect(() => javascriptMlKem768.encapsulate(unreducedKey(key.publicKey))).toThrow(/not reduced modulo q/);
    expect(() => key.decapsulate(new Uint8Array(MLKEM768_CIPHERTEXT_LENGTH - 1))).toThrow(/ciphertext: expected 1088 bytes, got 1087/);
    expect(() => javascriptMlKem768.fromSeed(new Uint8Array(32))).toThrow(/seed: expected 64 bytes, got 32/);
    expect(() => encapsulateDerandomized(key.publicKey, new Uint8Array(31))).toThrow(/message: expected 32 bytes, got 31/);
  });
});

describe('ML-KEM-768 keys used many times (each implementation expands or imports them once)', () => {
  const implementations = [javascriptMlKem768, nobleMlKem768, ...(native === null ? [] : [native])];

  it.each(implementations.map((kem) => [kem.implementation, kem] as const))(
    '%s: an encapsulation key serves many encapsulations, each opening with noble',
    (_name, kem) => {
      const seed = randomBytes(MLKEM768_SEED_LENGTH);
      const theirs = nobleMlKem768.fromSeed(seed);
      const key = kem.encapsulationKey(theirs.publicKey);
      const secrets = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const { ciphertext, sharedSecret } = key.encapsulate();
        expect(ciphertext.length).toBe(MLKEM768_CIPHERTEXT_LENGTH);
        expect(nobleMlKem768.fromSeed(seed).decapsulate(ciphertext)).toEqual(sharedSecret);
        secrets.add(Buffer.from(sharedSecret).toString('hex'));
      }
      expect(secrets.size).toBe(4);
    },
  );

  it.each(implementations.map((kem) => [kem.implementation, kem] as const))(
    '%s: a decapsulation key gives the same secrets and rejections on every use',
    (_name, kem) => {
      const seed = randomBytes(MLKEM768_SEED_LENGTH);
      const key = kem.fromSeed(seed);
      const sent = [0, 1, 2].map(() => nobleMlKem768.encapsulate(key.publicKey));
      const forged = new Uint8Array(sent[0]!.ciphertext);
      forged[0]! ^= 1;
      // A fresh key's first use against a used key's later ones (noble prepares from the second use).
      const rejection = nobleMlKem768.fromSeed(seed).decapsulate(forged);
      for (let round = 0; round < 2; round++) {
        for (const { ciphertext, sharedSecret } of sent) expect(key.decapsulate(ciphertext)).toEqual(sharedSecret);
        expect(key.decapsulate(forged)).toEqual(rejection);
      }
      expect(rejection).not.toEqual(sent[0]!.sharedSecret);
    },
  );

  it.each(implementations.map((kem) => [kem.implementation, kem] as const))(
    '%s: an encapsulation key that fails the modulus check is refused',
    (_name, kem) => {
      const key = unreducedKey(nobleMlKem768.fromSeed(randomBytes(MLKEM768_SEED_LENGTH)).publicKey);
      expect(() => kem.encapsulationKey(key).encapsulate()).toThrow();
    },
  );
});

const nativeReason = `this Node (${process.version}) has no native ML-KEM; test/unit/node24-crypto.test.ts runs this under Node 24`;
const describeNative = native !== null || NATIVE_REQUIRED ? describe : describe.skip;

describeNative(native !== null || NATIVE_REQUIRED ? 'ML-KEM-768 native against noble' : `ML-KEM-768 native against noble (skipped: ${nativeReason})`, () => {
  const kem = () => {
    if (native === null) throw new Error(`native ML-KEM required (BLACKPONY_EXPECT_NATIVE_MLKEM=1) but ${nativeReason}`);
    return native;
  };

  it('derives the same encapsulation key from a seed', () => {
    for (let i = 0; i < 8; i++) {
      const seed = randomBytes(MLKEM768_SEED_LENGTH);
      expect(kem().fromSeed(seed).publicKey).toEqual(nobleMlKem768.fromSeed(seed).publicKey);
    }
  });

  it('native encapsulation opens with noble, noble encapsulation opens natively', () => {
    for (let i = 0; i < 8; i++) {
      const seed = randomBytes(MLKEM768_SEED_LENGTH);
      const ours = kem().fromSeed(seed);
      const theirs = nobleMlKem768.fromSeed(seed);
      const toNoble = kem().encapsulate(theirs.publicKey);
      expect(toNoble.ciphertext.length).toBe(MLKEM768_CIPHERTEXT_LENGTH);
      expect(theirs.decapsulate(toNoble.ciphertext)).toEqual(toNoble.sharedSecret);
      const toNative = nobleMlKem768.encapsulate(ours.publicKey);
      expect(ours.decapsulate(toNative.ciphertext)).toEqual(toNative.sharedSecret);
    }
  });

  it('rejects a forged ciphertext implicitly, with the same pseudorandom secret as noble', () => {
    const seed = randomBytes(MLKEM768_SEED_LENGTH);
    const { ciphertext, sharedSecret } = kem().encapsulate(kem().fromSeed(seed).publicKey);
    const forged = new Uint8Array(ciphertext);
    forged[0]! ^= 1;
    const rejected = kem().fromSeed(seed).decapsulate(forged);
    expect(rejected).not.toEqual(sharedSecret);
    expect(rejected).toEqual(nobleMlKem768.fromSeed(seed).decapsulate(forged));
  });

  it('refuses an encapsulation key that fails the modulus check, as noble does', () => {
    const key = unreducedKey(nobleMlKem768.fromSeed(randomBytes(MLKEM768_SEED_LENGTH)).publicKey);
    expect(() => nobleMlKem768.encapsulate(key)).toThrow();
    expect(() => kem().encapsulate(key)).toThrow();
  });
});
