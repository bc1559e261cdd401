/**
 * ML-KEM-768 (FIPS 203) for the X-Wing hybrid recipient: node:crypto's where the running Node has
 * it (Node >= 24.7, ~15x faster), else @noble/post-quantum. Chosen once, at load, by trying the
 * native API (feature detection, never the version string); nothing else knows which one runs.
 */
import { loadNativeMlKem768 } from './mlkem-native.js';
import type { MlKem768 } from './mlkem-interface.js';
import { nobleEncapsulateDerandomized, nobleMlKem768 } from './mlkem-noble.js';

export {
  MLKEM768_CIPHERTEXT_LENGTH,
  MLKEM768_ENCAPSULATION_RANDOMNESS_LENGTH,
  MLKEM768_PUBLIC_KEY_LENGTH,
  MLKEM768_SEED_LENGTH,
  type MlKem768,
  type MlKem768DecapsulationKey,
  type MlKem768EncapsulationKey,
} from './mlkem-interface.js';

export const mlkem768: MlKem768 = loadNativeMlKem768() ?? nobleMlKem768;

/** Encapsulation with fixed randomness m, always noble's (node:crypto has none): test vectors only. */
export const encapsulateDerandomized: (publicKey: Uint8Array, randomness: Uint8Array) => { ciphertext: Uint8Array; sharedSecret: Uint8Array } =
  nobleEncapsulateDerandomized;
