/**
 * @noble/post-quantum's ML-KEM-768 behind the project's MlKem768 interface: the independent
 * implementation the tests and `npm run bench:crypto` check the project's own ones against
 * (src/crypto/age/mlkem-js.ts, and node:crypto's on Node 24). noble's `prepare` keeps a key's
 * expanded matrix from its second use, as the daemon's implementations keep theirs.
 */
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import type { MlKem768 } from '../../src/crypto/age/mlkem-interface.js';

export const nobleMlKem768: MlKem768 = {
  implementation: '@noble/post-quantum',
  fromSeed(seed) {
    const { publicKey, secretKey } = ml_kem768.keygen(seed);
    // A Noise ephemeral decapsulates once, an age identity once per message: prepared from the second use.
    let prepared: { decapsulate(ciphertext: Uint8Array, secretKey: Uint8Array): Uint8Array } | undefined;
    let used = false;
    return {
      publicKey,
      decapsulate(ciphertext) {
        if (!used) {
          used = true;
          return ml_kem768.decapsulate(ciphertext, secretKey);
        }
        prepared ??= ml_kem768.prepare(publicKey);
        return prepared.decapsulate(ciphertext, secretKey);
      },
    };
  },
  encapsulate(publicKey) {
    const { cipherText, sharedSecret } = ml_kem768.encapsulate(publicKey);
    return { ciphertext: cipherText, sharedSecret };
  },
  encapsulationKey(publicKey) {
    const prepared = ml_kem768.prepare(publicKey);
    return {
      encapsulate() {
        const { cipherText, sharedSecret } = prepared.encapsulate();
        return { ciphertext: cipherText, sharedSecret };
      },
    };
  },
};
