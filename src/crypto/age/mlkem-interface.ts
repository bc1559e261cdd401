/** What each ML-KEM-768 implementation (mlkem-native.ts, mlkem-js.ts; noble's in the tests) offers; mlkem.ts picks one. */

export const MLKEM768_SEED_LENGTH = 64;
export const MLKEM768_PUBLIC_KEY_LENGTH = 1184;
export const MLKEM768_CIPHERTEXT_LENGTH = 1088;
/** The message m of FIPS 203's ML-KEM.Encaps_internal. */
export const MLKEM768_ENCAPSULATION_RANDOMNESS_LENGTH = 32;

export interface MlKem768DecapsulationKey {
  /** The encapsulation key, 1184 bytes. */
  readonly publicKey: Uint8Array;
  /** The 32-byte shared secret (implicit rejection: a bad ciphertext gives a pseudorandom one). */
  decapsulate(ciphertext: Uint8Array): Uint8Array;
}

/** An encapsulation key checked and imported once, for a key that is encapsulated to again and again. */
export interface MlKem768EncapsulationKey {
  encapsulate(): { ciphertext: Uint8Array; sharedSecret: Uint8Array };
}

export interface MlKem768 {
  /** Which implementation this is, for the tests and the benchmark. */
  readonly implementation: 'node:crypto' | 'JS + OpenSSL SHA-3' | '@noble/post-quantum';
  /** Expands the 64-byte seed d || z of FIPS 203 (the form X-Wing derives). */
  fromSeed(seed: Uint8Array): MlKem768DecapsulationKey;
  /** Throws for an encapsulation key that fails FIPS 203's input check. */
  encapsulate(publicKey: Uint8Array): { ciphertext: Uint8Array; sharedSecret: Uint8Array };
  /**
   * For a key used many times (a domain's recipient key): the work every encapsulation would
   * repeat is done once. Throws, here or at an encapsulation, as encapsulate does.
   */
  encapsulationKey(publicKey: Uint8Array): MlKem768EncapsulationKey;
}
