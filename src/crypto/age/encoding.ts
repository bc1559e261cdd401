/**
 * The two text encodings age uses: Bech32 for keys and unpadded canonical base64 for the header.
 */
import { bech32 } from '@scure/base';
import { AgeError } from './errors.js';

/**
 * Bech32 without the 90-character limit of BIP 173: post-quantum recipients are ~1,950 characters.
 * The human-readable part keeps the case it is given (age writes identities upper-case).
 */
export function bech32Encode(prefix: string, data: Uint8Array, upperCase: boolean): string {
  const encoded = bech32.encode(prefix.toLowerCase(), bech32.toWords(data), false);
  return upperCase ? encoded.toUpperCase() : encoded;
}

/**
 * Decodes a Bech32 string that must start with `prefix` + "1" exactly as given, so recipients are
 * lower-case and identities upper-case like every age implementation writes them.
 */
export function bech32Decode(what: string, prefix: string, s: string): Uint8Array {
  if (!s.startsWith(`${prefix}1`)) throw new AgeError('key', `${what}: expected "${prefix}1...", got ${JSON.stringify(s.slice(0, 24))}`);
  try {
    const decoded = bech32.decode(s as `${string}1${string}`, false);
    // Bech32 splits at the last "1": a longer prefix ("age1pq") must not pass as a shorter one ("age").
    if (decoded.prefix !== prefix.toLowerCase()) throw new Error(`prefix is "${decoded.prefix}"`);
    return bech32.fromWords(decoded.words);
  } catch (error) {
    throw new AgeError('key', `${what}: not valid Bech32 (${(error as Error).message})`);
  }
}

const BASE64_ALPHABET = /^[A-Za-z0-9+/]*$/;

/** Standard base64 without padding, as in age header lines. */
export function base64Encode(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.length).toString('base64').replace(/=+$/, '');
}

/**
 * Strict unpadded base64: only the standard alphabet, no '=', and canonical (unused trailing bits
 * zero), so each byte string has exactly one encoding and the header MAC covers what we parsed.
 * Returns null when `s` is not such an encoding.
 */
export function base64DecodeCanonical(s: string): Uint8Array | null {
  if (s.length % 4 === 1 || !BASE64_ALPHABET.test(s)) return null;
  const bytes = Buffer.from(s, 'base64');
  if (base64Encode(bytes) !== s) return null;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}
