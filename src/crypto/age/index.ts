/**
 * age v1 (https://c2sp.org/age) on node:crypto: X25519 and ML-KEM-768 + X25519 hybrid recipients,
 * streaming seal and open with bounded memory, optional ASCII armor.
 */
import { openBytes } from './open.js';
import type { Identity, Recipient } from './recipient.js';
import { sealBytes, type SealOptions } from './seal.js';

export { AgeError, type AgeErrorKind } from './errors.js';
export { isHybridRecipient } from './hybrid.js';
export { MAX_HEADER_SIZE, MAX_LINE_LENGTH, MAX_STANZAS } from './format.js';
/** The armor's first and last lines, and the payload's plaintext chunk: what sizes an age file. */
export { ARMOR_BEGIN, ARMOR_END } from './armor.js';
export { CHUNK_SIZE } from './stream.js';
export { generateHybridIdentity, generateX25519Identity, identityToRecipient, parseIdentity, parseRecipient } from './keys.js';
export type { Identity, Recipient } from './recipient.js';
export { createOpener, createOpenStream, openBytes, type AgeOpener, type OpenOptions } from './open.js';
export { createSealer, createSealStream, sealBytes, type AgeSealer, type SealOptions } from './seal.js';
/** ML-KEM-768, the implementation chosen at load; the Noise HFS handshake runs the same one. */
export {
  encapsulateDerandomized,
  mlkem768,
  MLKEM768_CIPHERTEXT_LENGTH,
  MLKEM768_ENCAPSULATION_RANDOMNESS_LENGTH,
  MLKEM768_PUBLIC_KEY_LENGTH,
  MLKEM768_SEED_LENGTH,
  type MlKem768,
  type MlKem768DecapsulationKey,
} from './mlkem.js';

/** Seals a whole plaintext held in memory (tests, small data); use createSealStream for mail. */
export async function seal(plaintext: Uint8Array, recipients: readonly (string | Recipient)[], options: SealOptions = {}): Promise<Uint8Array> {
  return sealBytes(plaintext, recipients, options);
}

/** Opens a whole age file held in memory; rejects with AgeError and then returns no plaintext at all. */
export async function open(ciphertext: Uint8Array, identities: readonly (string | Identity)[]): Promise<Uint8Array> {
  return openBytes(ciphertext, identities);
}
