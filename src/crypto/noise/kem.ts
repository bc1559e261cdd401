/**
 * KEM functions of the Noise HFS modifier (Noise HFS spec section 3), named after the DH function
 * in a protocol name: `25519+MLKEM768`. The one KEM is ML-KEM-768 (FIPS 203) from
 * ../age/mlkem.ts, so the handshake runs native ML-KEM wherever the sealed message does.
 */
import {
  encapsulateDerandomized,
  mlkem768,
  MLKEM768_CIPHERTEXT_LENGTH,
  MLKEM768_ENCAPSULATION_RANDOMNESS_LENGTH,
  MLKEM768_PUBLIC_KEY_LENGTH,
  MLKEM768_SEED_LENGTH,
  type MlKem768,
  type MlKem768DecapsulationKey,
} from '../age/index.js';
import { randomBytes } from '../primitives.js';
import { NoiseKeyError } from './errors.js';

const KEM_NAME = 'MLKEM768';
/** KEMPUBLICKEYLEN: the ML-KEM-768 encapsulation key. */
export const KEM_PUBLIC_KEY_LENGTH = MLKEM768_PUBLIC_KEY_LENGTH;
/** KEMCIPHERTEXTLEN. */
export const KEM_CIPHERTEXT_LENGTH = MLKEM768_CIPHERTEXT_LENGTH;
/** A fixed e1 key pair is its 64-octet FIPS 203 seed d || z. */
const KEM_SEED_LENGTH = MLKEM768_SEED_LENGTH;
/** Fixed ekem1 randomness is FIPS 203's 32-octet message m. */
const KEM_RANDOMNESS_LENGTH = MLKEM768_ENCAPSULATION_RANDOMNESS_LENGTH;

export type KemKeyPair = MlKem768DecapsulationKey;

export interface KemFunction {
  readonly name: string;
  /** GENERATE_KEM_KEYPAIR(); from `seed` (64 octets) for test vectors only. */
  generateKeyPair(seed?: Uint8Array): KemKeyPair;
  /**
   * GENERATE_KEM_CIPHERTEXT(public_key): the ciphertext and the KEM output; with `randomness`
   * (32 octets, test vectors only) deterministic. An invalid public key raises NoiseKeyError.
   */
  encapsulate(publicKey: Uint8Array, randomness?: Uint8Array): { ciphertext: Uint8Array; sharedSecret: Uint8Array };
}

/** The KEM function over one ML-KEM-768 implementation (default: the one mlkem.ts picked). */
export function mlkem768KemFunction(implementation: MlKem768 = mlkem768): KemFunction {
  return {
    name: KEM_NAME,
    generateKeyPair(seed) {
      if (seed !== undefined && seed.length !== KEM_SEED_LENGTH)
        throw new NoiseKeyError(`${KEM_NAME} key seed: expected ${KEM_SEED_LENGTH} bytes, got ${seed.length}`);
      return implementation.fromSeed(seed ?? randomBytes(KEM_SEED_LENGTH));
    },
    encapsulate(publicKey, randomness) {
      if (randomness !== undefined && randomness.length !== KEM_RANDOMNESS_LENGTH) {
        throw new NoiseKeyError(`${KEM_NAME} encapsulation randomness: expected ${KEM_RANDOMNESS_LENGTH} bytes, got ${randomness.length}`);
      }
      try {
        return randomness === undefined ? implementation.encapsulate(publicKey) : encapsulateDerandomized(publicKey, randomness);
      } catch (error) {
        throw new NoiseKeyError(`${KEM_NAME} public key refused (FIPS 203 input check): ${(error as Error).message}`);
      }
    },
  };
}

/** KEM names a protocol name may carry after "25519+". */
export const KEM_NAMES: readonly string[] = [KEM_NAME];
