/**
 * ML-KEM-768 (FIPS 203) for the X-Wing hybrid recipient and the Noise HFS handshake: node:crypto's
 * where the running Node has it (Node >= 24.7), else this project's JavaScript one over
 * node:crypto's SHA-3 (mlkem-js.ts). Chosen once, at load, by trying the native API (feature
 * detection, never the version string); nothing else knows which one runs.
 */
import { encapsulateDerandomized as javascriptEncapsulateDerandomized, javascriptMlKem768 } from './mlkem-js.js';
import { loadNativeMlKem768 } from './mlkem-native.js';
import type { MlKem768 } from './mlkem-interface.js';

export {
  MLKEM768_CIPHERTEXT_LENGTH,
  MLKEM768_ENCAPSULATION_RANDOMNESS_LENGTH,
  MLKEM768_PUBLIC_KEY_LENGTH,
  MLKEM768_SEED_LENGTH,
  type MlKem768,
  type MlKem768DecapsulationKey,
  type MlKem768EncapsulationKey,
} from './mlkem-interface.js';

export const mlkem768: MlKem768 = loadNativeMlKem768() ?? javascriptMlKem768;

/** Encapsulation with fixed randomness m, always the JavaScript one's (node:crypto takes none): test vectors only. */
export const encapsulateDerandomized: (publicKey: Uint8Array, randomness: Uint8Array) => { ciphertext: Uint8Array; sharedSecret: Uint8Array } =
  javascriptEncapsulateDerandomized;
