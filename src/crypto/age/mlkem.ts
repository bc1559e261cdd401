/**
 * ML-KEM-768 (FIPS 203) for the X-Wing hybrid recipient: node:crypto's where the running Node has
 * it (Node >= 24.7, ~15x faster), else @noble/post-quantum. Chosen once, at load, by trying the
 * native API (feature detection, never the version string); nothing else knows which one runs.
 */
import { loadNativeMlKem768 } from './mlkem-native.js';
import { nobleMlKem768 } from './mlkem-noble.js';

export const MLKEM768_SEED_LENGTH = 64;
export const MLKEM768_PUBLIC_KEY_LENGTH = 1184;
export const MLKEM768_CIPHERTEXT_LENGTH = 1088;

export interface MlKem768DecapsulationKey {
  /** The encapsulation key, 1184 bytes. */
  readonly publicKey: Uint8Array;
  /** The 32-byte shared secret (implicit rejection: a bad ciphertext gives a pseudorandom one). */
  decapsulate(ciphertext: Uint8Array): Uint8Array;
}

export interface MlKem768 {
  /** Which implementation this is, for the tests and the benchmark. */
  readonly implementation: 'node:crypto' | '@noble/post-quantum';
  /** Expands the 64-byte seed d || z of FIPS 203 (the form X-Wing derives). */
  fromSeed(seed: Uint8Array): MlKem768DecapsulationKey;
  /** Throws for an encapsulation key that fails FIPS 203's input check. */
  encapsulate(publicKey: Uint8Array): { ciphertext: Uint8Array; sharedSecret: Uint8Array };
}

export const mlkem768: MlKem768 = loadNativeMlKem768() ?? nobleMlKem768;
