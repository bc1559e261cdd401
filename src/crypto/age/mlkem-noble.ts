/** ML-KEM-768 in JavaScript (@noble/post-quantum), for a Node without native ML-KEM. */
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import type { MlKem768 } from './mlkem.js';

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
