/** ML-KEM-768 in JavaScript (@noble/post-quantum), for a Node without native ML-KEM. */
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import type { MlKem768 } from './mlkem-interface.js';

export const nobleMlKem768: MlKem768 = {
  implementation: '@noble/post-quantum',
  fromSeed(seed) {
    const { publicKey, secretKey } = ml_kem768.keygen(seed);
    return { publicKey, decapsulate: (ciphertext) => ml_kem768.decapsulate(ciphertext, secretKey) };
  },
  encapsulate(publicKey) {
    const { cipherText, sharedSecret } = ml_kem768.encapsulate(publicKey);
    return { ciphertext: cipherText, sharedSecret };
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
