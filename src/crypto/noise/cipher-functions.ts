/**
 * Noise cipher functions (section 12.3): an AEAD plus the way its 64-bit Noise nonce is laid out
 * in the AEAD's 96-bit nonce. Only ChaChaPoly is implemented; AESGCM names are reported as
 * unsupported. Texts are given and returned in pieces, so a transport message is never copied
 * together on its way (section 5.1's ENCRYPT and DECRYPT over the pieces joined).
 */
import { aeadOpenParts, aeadSealParts, AuthenticationError } from '../primitives.js';
import { NoiseAuthenticationError } from './errors.js';

export const CIPHER_KEY_LENGTH = 32;
export const CIPHER_TAG_LENGTH = 16;
export const CIPHER_NONCE_LENGTH = 12;

export interface CipherFunction {
  readonly name: string;
  /** Writes the 64-bit counter (as two 32-bit halves) into a 12-byte nonce whose first 4 bytes stay zero. */
  writeNonce(nonce: DataView, high: number, low: number): void;
  /** The ciphertext, a piece per plaintext piece, then the tag. */
  encrypt(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, plaintext: readonly Uint8Array[]): Uint8Array[];
  /** The plaintext, a piece per ciphertext piece; throws NoiseAuthenticationError when the tag does not verify. */
  decrypt(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, ciphertext: readonly Uint8Array[], tag: Uint8Array): Uint8Array[];
}

/** ChaCha20-Poly1305 (RFC 8439); nonce = 32 zero bits || little-endian 64-bit counter. */
export const CHACHA_POLY: CipherFunction = {
  name: 'ChaChaPoly',
  writeNonce(nonce, high, low) {
    nonce.setUint32(4, low, true);
    nonce.setUint32(8, high, true);
  },
  encrypt: (key, nonce, ad, plaintext) => aeadSealParts(key, nonce, plaintext, ad),
  decrypt(key, nonce, ad, ciphertext, tag) {
    try {
      return aeadOpenParts(key, nonce, ciphertext, tag, ad);
    } catch (error) {
      if (error instanceof AuthenticationError) throw new NoiseAuthenticationError('ChaChaPoly: ciphertext failed authentication');
      throw error;
    }
  },
};

export const CIPHER_FUNCTIONS: ReadonlyMap<string, CipherFunction> = new Map([[CHACHA_POLY.name, CHACHA_POLY]]);
