/**
 * The file key and what age derives from it (https://c2sp.org/age#header-mac, #payload): the header
 * MAC key, the payload key, and the ChaCha20-Poly1305 wrapping recipient stanzas use for it.
 */
import { AuthenticationError, aeadOpen, aeadSeal, constantTimeEqual, hkdfSha256, hmacSha256, randomBytes } from '../primitives.js';
import { AgeError } from './errors.js';

export const FILE_KEY_LENGTH = 16;
export const PAYLOAD_NONCE_LENGTH = 16;
/** A wrapped file key: 16 bytes of ciphertext and a 16-byte tag. */
const WRAPPED_FILE_KEY_LENGTH = 32;

const HEADER_LABEL = Buffer.from('header');
const PAYLOAD_LABEL = Buffer.from('payload');
const NO_SALT = new Uint8Array(0);

export function generateFileKey(): Uint8Array {
  return randomBytes(FILE_KEY_LENGTH);
}

export function headerMac(fileKey: Uint8Array, headerNoMac: Uint8Array): Uint8Array {
  return hmacSha256(hkdfSha256(fileKey, NO_SALT, HEADER_LABEL, 32), headerNoMac);
}

export function verifyHeaderMac(fileKey: Uint8Array, headerNoMac: Uint8Array, mac: Uint8Array): void {
  if (!constantTimeEqual(headerMac(fileKey, headerNoMac), mac)) {
    throw new AgeError('hmac', 'age header: MAC does not verify (header altered, or a stanza was forged)');
  }
}

export function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): Uint8Array {
  return hkdfSha256(fileKey, nonce, PAYLOAD_LABEL, 32);
}

export function wrapFileKey(key: Uint8Array, nonce: Uint8Array, fileKey: Uint8Array): Uint8Array {
  return aeadSeal(key, nonce, fileKey);
}

/**
 * Unwraps a stanza body. Returns null when the tag does not verify (the stanza is for someone
 * else); throws when the body has the wrong length, which no honest sender produces.
 */
export function unwrapFileKey(stanzaType: string, key: Uint8Array, nonce: Uint8Array, body: Uint8Array): Uint8Array | null {
  if (body.length !== WRAPPED_FILE_KEY_LENGTH) {
    throw new AgeError('header', `age header: ${stanzaType} stanza: body is ${body.length} bytes, expected ${WRAPPED_FILE_KEY_LENGTH}`);
  }
  try {
    return aeadOpen(key, nonce, body);
  } catch (error) {
    if (error instanceof AuthenticationError) return null;
    throw error;
  }
}
