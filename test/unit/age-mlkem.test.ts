/**
 * The ML-KEM-768 behind the hybrid recipient: the implementation chosen at load is node:crypto's
 * exactly when this Node has crypto.encapsulate, a Node without it (or with a broken one) falls back
 * to @noble/post-quantum, and the native one agrees with noble byte for byte: same encapsulation
 * key from a seed, secrets that cross in both directions, the same implicit rejection of a forged
 * ciphertext and the same refusal of an invalid encapsulation key. Node 20 has no native ML-KEM;
 * test/unit/node24-crypto.test.ts runs this file under Node 24, where the native group must run.
 */
import * as nodeCrypto from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { mlkem768, MLKEM768_CIPHERTEXT_LENGTH, MLKEM768_PUBLIC_KEY_LENGTH, MLKEM768_SEED_LENGTH } from '../../src/crypto/age/mlkem.js';
import { loadNativeMlKem768 } from '../../src/crypto/age/mlkem-native.js';
import { nobleMlKem768 } from '../../src/crypto/age/mlkem-noble.js';

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
    expect(mlkem768.implementation).toBe(HAS_NATIVE_API ? 'node:crypto' : '@noble/post-quantum');
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

describe('ML-KEM-768 keys used many times (noble prepares them, node:crypto imports them once)', () => {
  const implementations = [nobleMlKem768, ...(native === null ? [] : [native])];

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
