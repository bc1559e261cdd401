/**
 * ML-KEM-768 in JavaScript (@noble/post-quantum), for a Node without native ML-KEM.
 *
 * Half of an encapsulation, and of a decapsulation (which encapsulates again to check), is the
 * expansion of the key's public matrix from its seed. noble's `prepare` does that once per key, so
 * keys used many times (a domain's recipient key, an age identity) keep it: ~0.47 ms per operation
 * becomes ~0.28 ms here. A key used once skips it, as preparing would cost more than it saves.
 */
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import type { MlKem768 } from './mlkem-interface.js';

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

/**
 * FIPS 203 encapsulation with the 32-byte message m given instead of drawn: for test vectors only
 * (node:crypto takes no randomness, so vectors are made and checked with noble).
 */
export function nobleEncapsulateDerandomized(publicKey: Uint8Array, randomness: Uint8Array): { ciphertext: Uint8Array; sharedSecret: Uint8Array } {
  const { cipherText, sharedSecret } = ml_kem768.encapsulate(publicKey, randomness);
  return { ciphertext: cipherText, sharedSecret };
}
