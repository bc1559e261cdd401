/**
 * The cryptographic primitives blackpony uses, in one small module over node:crypto (OpenSSL).
 *
 * Why node:crypto and not @noble for the hot path: measured here, OpenSSL's ChaCha20-Poly1305 runs
 * about 13x faster and its X25519 about 40x faster than the pure-JS versions. @noble stays in the
 * project where node:crypto lacks a primitive (ML-KEM) and as an independent cross-check in tests.
 *
 * Every function takes and returns Uint8Array (Buffers are Uint8Arrays) and never a string.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes as nodeRandomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';

export const X25519_KEY_LENGTH = 32;
export const AEAD_KEY_LENGTH = 32;
export const AEAD_NONCE_LENGTH = 12;
export const AEAD_TAG_LENGTH = 16;

/** Raised when an AEAD tag does not verify: the ciphertext, its nonce, key or associated data was altered. */
export class AuthenticationError extends Error {
  override readonly name = 'AuthenticationError';
  constructor(message = 'ciphertext failed authentication') {
    super(message);
  }
}

/** Raised for a key of the wrong length or a DH result that must not be used. */
export class KeyError extends Error {
  override readonly name = 'KeyError';
}

export function randomBytes(length: number): Uint8Array {
  return new Uint8Array(nodeRandomBytes(length));
}

function checkKeyLength(key: Uint8Array, what: string): void {
  if (key.length !== X25519_KEY_LENGTH) {
    throw new KeyError(`${what}: expected ${X25519_KEY_LENGTH} bytes, got ${key.length}`);
  }
}

function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64url');
}

// Raw private keys are imported as JWK where Node allows it, not as DER: Node 20's OpenSSL 3.0
// decodes PKCS#8 in ~1 ms per key (measured here: PKCS#8 0.98 ms, JWK 0.10 ms), which would dominate
// every X25519 operation. Node 20 reads only "d" ("x" must be a string but is not used); Node 24
// refuses a JWK whose "x" is not d's public key, which is what we want to compute, but its OpenSSL
// decodes PKCS#8 in ~30 µs. Which one this Node takes is found once, by trying.
function jwkPrivateKeyObject(privateKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: base64url(privateKey), x: '' }, format: 'jwk' });
}

// PrivateKeyInfo { version 0, id-X25519 (1.3.101.110), OCTET STRING { OCTET STRING (32) } }.
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function pkcs8PrivateKeyObject(privateKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, privateKey]), format: 'der', type: 'pkcs8' });
}

function acceptsJwkWithoutPublicHalf(): boolean {
  try {
    jwkPrivateKeyObject(new Uint8Array(X25519_KEY_LENGTH));
    return true;
  } catch {
    return false;
  }
}

const importPrivateKey = acceptsJwkWithoutPublicHalf() ? jwkPrivateKeyObject : pkcs8PrivateKeyObject;

function privateKeyObject(privateKey: Uint8Array): KeyObject {
  checkKeyLength(privateKey, 'X25519 private key');
  return importPrivateKey(privateKey);
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  checkKeyLength(publicKey, 'X25519 public key');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: base64url(publicKey) }, format: 'jwk' });
}

/** Both raw halves of a private key object: its JWK export carries d and x. */
function rawKeyPair(privateKey: KeyObject): X25519KeyPair {
  const jwk = privateKey.export({ format: 'jwk' });
  return { privateKey: new Uint8Array(Buffer.from(jwk.d ?? '', 'base64url')), publicKey: new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url')) };
}

export interface X25519KeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

// Fresh keys are random bytes imported as JWK, never generateKeyPairSync('x25519'): in Node 20,
// exporting a key that generateKeyPairSync made can deadlock the process. The finished keygen job's
// destructor takes the key's mutex; when GC collects the job while export() holds that mutex and
// allocates, the main thread waits on itself forever (reproduced here within seconds in a loop).
function generatePrivateKeyObject(): KeyObject {
  return privateKeyObject(nodeRandomBytes(X25519_KEY_LENGTH));
}

export function x25519GenerateKeyPair(): X25519KeyPair {
  return rawKeyPair(generatePrivateKeyObject());
}

export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  return rawKeyPair(privateKeyObject(privateKey)).publicKey;
}

function agree(privateKey: KeyObject, publicKey: Uint8Array): Uint8Array {
  const pub = publicKeyObject(publicKey);
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey: pub });
  } catch {
    throw new KeyError('X25519: peer public key is of low order (all-zero shared secret)');
  }
  if (shared.every((b) => b === 0)) throw new KeyError('X25519: all-zero shared secret');
  return new Uint8Array(shared);
}

/**
 * X25519(privateKey, publicKey). A low-order public key gives an all-zero secret, which OpenSSL
 * refuses; that surfaces here as a KeyError, never as a usable secret.
 */
export function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return agree(privateKeyObject(privateKey), publicKey);
}

/** A static X25519 key imported once, for many agreements (e.g. an identity opening many files). */
export interface X25519StaticKey {
  readonly publicKey: Uint8Array;
  /** Same contract as x25519(privateKey, publicKey). */
  agree(publicKey: Uint8Array): Uint8Array;
}

export function x25519StaticKey(privateKey: Uint8Array): X25519StaticKey {
  const key = privateKeyObject(privateKey);
  return { publicKey: rawKeyPair(key).publicKey, agree: (publicKey) => agree(key, publicKey) };
}

/**
 * A fresh X25519 key that stays inside OpenSSL (only its public half is exported), for a
 * Noise ephemeral that takes part in several agreements: generating and re-importing raw bytes
 * would cost as much as the agreements themselves.
 */
export function x25519GenerateKey(): X25519StaticKey {
  const key = generatePrivateKeyObject();
  return { publicKey: rawKeyPair(key).publicKey, agree: (publicKey) => agree(key, publicKey) };
}

/**
 * X25519 with a fresh ephemeral key pair: its public key and the shared secret with `publicKey`,
 * without the round trip of the ephemeral private key through raw bytes.
 */
export function x25519Ephemeral(publicKey: Uint8Array): { ephemeralPublicKey: Uint8Array; sharedSecret: Uint8Array } {
  const privateKey = generatePrivateKeyObject();
  return { ephemeralPublicKey: rawKeyPair(privateKey).publicKey, sharedSecret: agree(privateKey, publicKey) };
}

function checkAeadInputs(key: Uint8Array, nonce: Uint8Array): void {
  if (key.length !== AEAD_KEY_LENGTH) throw new KeyError(`ChaCha20-Poly1305 key: expected 32 bytes, got ${key.length}`);
  if (nonce.length !== AEAD_NONCE_LENGTH) throw new KeyError(`ChaCha20-Poly1305 nonce: expected 12 bytes, got ${nonce.length}`);
}

/**
 * ChaCha20-Poly1305 (RFC 8439) over a plaintext given in pieces: the ciphertext in as many pieces,
 * one per plaintext piece and of its length, then the 16-byte tag. Nothing is copied or joined, so
 * a caller that writes the pieces out (a tunnel frame) never assembles the message.
 */
export function aeadSealParts(key: Uint8Array, nonce: Uint8Array, plaintext: readonly Uint8Array[], ad?: Uint8Array): Uint8Array[] {
  checkAeadInputs(key, nonce);
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_LENGTH });
  if (ad !== undefined && ad.length > 0) cipher.setAAD(ad, { plaintextLength: byteLength(plaintext) });
  const out: Uint8Array[] = plaintext.map((piece) => cipher.update(piece));
  // A stream cipher: final() adds no octets, only computes the tag.
  cipher.final();
  out.push(cipher.getAuthTag());
  return out;
}

/** ChaCha20-Poly1305 (RFC 8439): returns ciphertext || 16-byte tag. */
export function aeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad?: Uint8Array): Uint8Array {
  return joinBytes(aeadSealParts(key, nonce, [plaintext], ad));
}

/**
 * Opens a ciphertext given in pieces, its tag apart: the plaintext in as many pieces, released only
 * once the tag verified. Throws AuthenticationError when anything was altered.
 */
export function aeadOpenParts(key: Uint8Array, nonce: Uint8Array, ciphertext: readonly Uint8Array[], tag: Uint8Array, ad?: Uint8Array): Uint8Array[] {
  checkAeadInputs(key, nonce);
  if (tag.length !== AEAD_TAG_LENGTH) throw new AuthenticationError('ciphertext shorter than its tag');
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_LENGTH });
  decipher.setAuthTag(tag);
  if (ad !== undefined && ad.length > 0) decipher.setAAD(ad, { plaintextLength: byteLength(ciphertext) });
  const out: Uint8Array[] = ciphertext.map((piece) => decipher.update(piece));
  try {
    decipher.final();
  } catch {
    throw new AuthenticationError();
  }
  return out;
}

/** Opens ciphertext || tag; throws AuthenticationError when anything was altered. */
export function aeadOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, ad?: Uint8Array): Uint8Array {
  if (sealed.length < AEAD_TAG_LENGTH) throw new AuthenticationError('ciphertext shorter than its tag');
  const bodyLength = sealed.length - AEAD_TAG_LENGTH;
  return joinBytes(aeadOpenParts(key, nonce, [sealed.subarray(0, bodyLength)], sealed.subarray(bodyLength), ad));
}

/** The octets in all the pieces. */
export function byteLength(pieces: readonly Uint8Array[]): number {
  let length = 0;
  for (const piece of pieces) length += piece.length;
  return length;
}

/** Pieces as one Uint8Array (a piece alone is not copied). */
export function joinBytes(pieces: readonly Uint8Array[]): Uint8Array {
  const only = pieces.length === 1 ? pieces[0]! : undefined;
  if (only !== undefined) return new Uint8Array(only.buffer, only.byteOffset, only.length);
  const out = new Uint8Array(byteLength(pieces));
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.length;
  }
  return out;
}

/** Hash functions by the names Noise uses. */
export type HashName = 'SHA256' | 'SHA512' | 'BLAKE2s' | 'BLAKE2b';

const OPENSSL_HASH: Record<HashName, string> = {
  SHA256: 'sha256',
  SHA512: 'sha512',
  BLAKE2s: 'blake2s256',
  BLAKE2b: 'blake2b512',
};

export const HASH_LENGTH: Record<HashName, number> = { SHA256: 32, SHA512: 64, BLAKE2s: 32, BLAKE2b: 64 };

export function hash(name: HashName, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash(OPENSSL_HASH[name]);
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
}

export function hmac(name: HashName, key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac(OPENSSL_HASH[name], key);
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  return hash('SHA256', ...parts);
}

export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  return hmac('SHA256', key, ...parts);
}

/**
 * HKDF-SHA-256 (RFC 5869), written out over HMAC: hkdfSync builds KeyObjects on every call and
 * measured ~2x slower here for the 32-byte outputs that age derives several times per message.
 * An empty salt is HMAC's all-zero key, as the RFC specifies.
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const blockLength = HASH_LENGTH.SHA256;
  if (!Number.isInteger(length) || length < 0 || length > 255 * blockLength) {
    throw new RangeError(`HKDF-SHA-256: output length must be 0..${255 * blockLength}, got ${length}`);
  }
  const prk = hmacSha256(salt, ikm);
  const out = new Uint8Array(length);
  let block: Uint8Array = new Uint8Array(0);
  for (let counter = 1, offset = 0; offset < length; counter++, offset += blockLength) {
    block = hmacSha256(prk, block, info, Uint8Array.of(counter));
    out.set(block.subarray(0, length - offset), offset);
  }
  return out;
}

/** Constant-time equality for secrets and MACs; false for different lengths. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
