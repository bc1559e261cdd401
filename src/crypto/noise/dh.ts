/**
 * The Noise DH function 25519 (section 12.1) over OpenSSL X25519. Keys live as prepared key
 * objects: importing a raw private key costs as much as an agreement, so each key is imported once.
 */
import { KeyError, x25519GenerateKey, x25519StaticKey, constantTimeEqual, type X25519KeyPair, type X25519StaticKey } from '../primitives.js';
import { NoiseKeyError } from './errors.js';

export const DH_LENGTH = 32;

/** A local key pair ready for agreements. */
export type DhKey = X25519StaticKey;

/** A raw key pair ({privateKey, publicKey}) or an already prepared key. */
export type DhKeyInput = X25519KeyPair | DhKey;

export function generateDhKey(): DhKey {
  return x25519GenerateKey();
}

export function prepareDhKey(input: DhKeyInput, what: string): DhKey {
  if ('agree' in input) return input;
  checkPublicKey(input.publicKey, `${what} public key`);
  let key: DhKey;
  try {
    key = x25519StaticKey(input.privateKey);
  } catch (error) {
    if (error instanceof KeyError) throw new NoiseKeyError(`${what}: ${error.message}`);
    throw error;
  }
  if (!constantTimeEqual(key.publicKey, input.publicKey)) {
    throw new NoiseKeyError(`${what}: public key does not belong to the private key`);
  }
  return key;
}

export function checkPublicKey(publicKey: Uint8Array, what: string): void {
  if (publicKey.length !== DH_LENGTH) throw new NoiseKeyError(`${what}: expected ${DH_LENGTH} bytes, got ${publicKey.length}`);
}

/** DH(key, publicKey); a low-order peer key (all-zero result) is refused with NoiseKeyError. */
export function dh(key: DhKey, publicKey: Uint8Array, describe: () => string): Uint8Array {
  try {
    return key.agree(publicKey);
  } catch (error) {
    if (error instanceof KeyError) throw new NoiseKeyError(`${describe()}: ${error.message}`);
    throw error;
  }
}
