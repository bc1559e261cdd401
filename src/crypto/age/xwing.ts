/**
 * X-Wing (draft-connolly-cfrg-xwing-kem), the ML-KEM-768 + X25519 hybrid KEM behind age's
 * "mlkem768x25519" stanzas. Same construction as @noble/post-quantum's ml_kem768_x25519 (the tests
 * check that), but with the X25519 half on node:crypto, which is ~40x faster than noble's, and the
 * ML-KEM half from ./mlkem.ts (native where the running Node has it).
 */
import { createHash } from 'node:crypto';
import {
  mlkem768,
  MLKEM768_CIPHERTEXT_LENGTH,
  MLKEM768_PUBLIC_KEY_LENGTH,
  MLKEM768_SEED_LENGTH,
  type MlKem768DecapsulationKey,
  type MlKem768EncapsulationKey,
} from './mlkem.js';
import { randomBytes, x25519Ephemeral, x25519StaticKey, X25519_KEY_LENGTH, type X25519StaticKey } from '../primitives.js';

export const XWING_SEED_LENGTH = 32;
export const XWING_PUBLIC_KEY_LENGTH = MLKEM768_PUBLIC_KEY_LENGTH + X25519_KEY_LENGTH;
export const XWING_CIPHERTEXT_LENGTH = MLKEM768_CIPHERTEXT_LENGTH + X25519_KEY_LENGTH;
const XWING_LABEL = Buffer.from('\\.//^\\');

function combiner(mlkemSecret: Uint8Array, x25519Secret: Uint8Array, x25519Ciphertext: Uint8Array, recipientX25519: Uint8Array): Uint8Array {
  const hash = createHash('sha3-256');
  for (const part of [mlkemSecret, x25519Secret, x25519Ciphertext, recipientX25519, XWING_LABEL]) hash.update(part);
  return new Uint8Array(hash.digest());
}

/** A decapsulation key expanded from its 32-byte seed (the expansion costs an ML-KEM key generation). */
export class XWingDecapsulationKey {
  readonly publicKey: Uint8Array;
  private readonly mlkemKey: MlKem768DecapsulationKey;
  private readonly x25519Key: X25519StaticKey;

  constructor(seed: Uint8Array) {
    const expanded = createHash('shake256', { outputLength: MLKEM768_SEED_LENGTH + X25519_KEY_LENGTH })
      .update(seed)
      .digest();
    this.mlkemKey = mlkem768.fromSeed(new Uint8Array(expanded.subarray(0, MLKEM768_SEED_LENGTH)));
    this.x25519Key = x25519StaticKey(new Uint8Array(expanded.subarray(MLKEM768_SEED_LENGTH)));
    this.publicKey = new Uint8Array(Buffer.concat([this.mlkemKey.publicKey, this.x25519Key.publicKey]));
  }

  /** Throws KeyError when the X25519 half of the ciphertext gives an all-zero secret. */
  decapsulate(ciphertext: Uint8Array): Uint8Array {
    const x25519Ciphertext = ciphertext.subarray(MLKEM768_CIPHERTEXT_LENGTH);
    const x25519Secret = this.x25519Key.agree(x25519Ciphertext);
    const mlkemSecret = this.mlkemKey.decapsulate(ciphertext.subarray(0, MLKEM768_CIPHERTEXT_LENGTH));
    return combiner(mlkemSecret, x25519Secret, x25519Ciphertext, this.x25519Key.publicKey);
  }
}

export function xwingGenerateSeed(): Uint8Array {
  return randomBytes(XWING_SEED_LENGTH);
}

/**
 * A recipient's public key, ready for many encapsulations (one per message sealed to it). Throws
 * (ML-KEM's encapsulation-key check, or KeyError for a low-order X25519 half), here or when it
 * encapsulates, for an invalid key.
 */
export class XWingEncapsulationKey {
  private readonly mlkemKey: MlKem768EncapsulationKey;
  private readonly x25519PublicKey: Uint8Array;

  constructor(publicKey: Uint8Array) {
    this.mlkemKey = mlkem768.encapsulationKey(publicKey.subarray(0, MLKEM768_PUBLIC_KEY_LENGTH));
    this.x25519PublicKey = publicKey.subarray(MLKEM768_PUBLIC_KEY_LENGTH);
  }

  encapsulate(): { ciphertext: Uint8Array; sharedSecret: Uint8Array } {
    const ephemeral = x25519Ephemeral(this.x25519PublicKey);
    const mlkem = this.mlkemKey.encapsulate();
    return {
      ciphertext: new Uint8Array(Buffer.concat([mlkem.ciphertext, ephemeral.ephemeralPublicKey])),
      sharedSecret: combiner(mlkem.sharedSecret, ephemeral.sharedSecret, ephemeral.ephemeralPublicKey, this.x25519PublicKey),
    };
  }
}
