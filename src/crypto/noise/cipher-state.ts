/**
 * CipherState (section 5.1): a cipher key and a 64-bit nonce. After the handshake each side holds
 * two of them, one per direction. The transport hot path lives here, so the nonce is kept as two
 * 32-bit halves written in place into one reused 12-byte buffer.
 */
import { CIPHER_KEY_LENGTH, CIPHER_NONCE_LENGTH, CIPHER_TAG_LENGTH, type CipherFunction } from './cipher-functions.js';
import { byteLength, joinBytes } from '../primitives.js';
import { NoiseError, NoiseKeyError, NoiseMessageSizeError, NoiseNonceExhaustedError, NoiseStateError } from './errors.js';

/** Every Noise message, handshake or transport, is at most this long (section 3). */
export const MAX_MESSAGE_LENGTH = 65535;

const EMPTY = new Uint8Array(0);
const MAX_HALF = 0xffffffff;
const REKEY_ZEROS = new Uint8Array(CIPHER_KEY_LENGTH);

export class CipherState {
  readonly #cipher: CipherFunction;
  #key: Uint8Array | undefined;
  #high = 0;
  #low = 0;
  readonly #nonceBytes = new Uint8Array(CIPHER_NONCE_LENGTH);
  readonly #nonceView = new DataView(this.#nonceBytes.buffer);
  #failure: NoiseError | undefined;

  constructor(cipher: CipherFunction, key?: Uint8Array) {
    this.#cipher = cipher;
    if (key !== undefined) {
      if (key.length !== CIPHER_KEY_LENGTH) throw new NoiseKeyError(`cipher key: expected ${CIPHER_KEY_LENGTH} bytes, got ${key.length}`);
      this.#key = key;
    }
    this.#cipher.writeNonce(this.#nonceView, 0, 0);
  }

  hasKey(): boolean {
    return this.#key !== undefined;
  }

  /** The next nonce to be used. */
  get nonce(): bigint {
    return (BigInt(this.#high) << 32n) | BigInt(this.#low);
  }

  /** SetNonce (section 5.1): for out-of-order transports that carry explicit nonces, and tests. */
  setNonce(nonce: bigint): void {
    if (nonce < 0n || nonce > 0xffffffffffffffffn) throw new NoiseStateError(`cipher state: nonce ${nonce} is not a 64-bit unsigned integer`);
    this.#high = Number(nonce >> 32n);
    this.#low = Number(nonce & 0xffffffffn);
    this.#cipher.writeNonce(this.#nonceView, this.#high, this.#low);
  }

  /** Encrypts a message of at most 65535 bytes including the tag; without a key, returns the plaintext. */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    return joinBytes(this.encryptPartsWithAd(ad, [plaintext]));
  }

  /**
   * encryptWithAd over a plaintext in pieces: the ciphertext in as many pieces, then the tag, none
   * of them copied together (the transport's frames go out as they are).
   */
  encryptPartsWithAd(ad: Uint8Array, plaintext: readonly Uint8Array[]): Uint8Array[] {
    this.#checkUsable();
    const key = this.#key;
    if (key === undefined) return [...plaintext];
    const length = byteLength(plaintext);
    if (length > MAX_MESSAGE_LENGTH - CIPHER_TAG_LENGTH) {
      throw new NoiseMessageSizeError(`cipher state: plaintext of ${length} bytes exceeds the ${MAX_MESSAGE_LENGTH - CIPHER_TAG_LENGTH}-byte limit`);
    }
    this.#checkNonce();
    const ciphertext = this.#cipher.encrypt(key, this.#nonceBytes, ad, plaintext);
    this.#advance();
    return ciphertext;
  }

  /**
   * Decrypts; a failure (authentication, size) leaves this state unusable: the nonce does not move
   * and no further message is accepted, so a session cannot be probed with retries.
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    return joinBytes(this.decryptPartsWithAd(ad, [ciphertext]));
  }

  /**
   * decryptWithAd over a message in pieces (the tag at the end of the last ones): the plaintext in
   * pieces, released only after the tag verified.
   */
  decryptPartsWithAd(ad: Uint8Array, ciphertext: readonly Uint8Array[]): Uint8Array[] {
    this.#checkUsable();
    const key = this.#key;
    if (key === undefined) return [...ciphertext];
    try {
      const length = byteLength(ciphertext);
      if (length > MAX_MESSAGE_LENGTH) {
        throw new NoiseMessageSizeError(`cipher state: ciphertext of ${length} bytes exceeds the ${MAX_MESSAGE_LENGTH}-byte limit`);
      }
      if (length < CIPHER_TAG_LENGTH) {
        throw new NoiseMessageSizeError(`cipher state: ciphertext of ${length} bytes is shorter than its ${CIPHER_TAG_LENGTH}-byte tag`);
      }
      this.#checkNonce();
      const { body, tag } = splitTag(ciphertext, length);
      const plaintext = this.#cipher.decrypt(key, this.#nonceBytes, ad, body, tag);
      this.#advance();
      return plaintext;
    } catch (error) {
      if (error instanceof NoiseError && !(error instanceof NoiseNonceExhaustedError)) this.#failure = error;
      throw error;
    }
  }

  /** REKEY (section 11.3): k = first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes); the nonce is kept. */
  rekey(): void {
    this.#checkUsable();
    const key = this.#key;
    if (key === undefined) throw new NoiseStateError('cipher state: rekey without a key');
    const maxNonce = new Uint8Array(CIPHER_NONCE_LENGTH);
    this.#cipher.writeNonce(new DataView(maxNonce.buffer), MAX_HALF, MAX_HALF);
    this.#key = this.#cipher.encrypt(key, maxNonce, EMPTY, [REKEY_ZEROS])[0]!.subarray(0, CIPHER_KEY_LENGTH);
  }

  #checkUsable(): void {
    if (this.#failure !== undefined) {
      throw new NoiseStateError(`cipher state: unusable after an earlier failure (${this.#failure.message}); tear the session down`);
    }
  }

  // Nonce 2^64-1 is reserved for rekey (section 5.1), so 2^64-2 is the last one a message may use.
  #checkNonce(): void {
    if (this.#high === MAX_HALF && this.#low === MAX_HALF) {
      throw new NoiseNonceExhaustedError('cipher state: nonce space exhausted (2^64-1 is reserved); a new handshake is needed');
    }
  }

  #advance(): void {
    if (this.#low === MAX_HALF) {
      this.#low = 0;
      this.#high += 1;
    } else {
      this.#low += 1;
    }
    this.#cipher.writeNonce(this.#nonceView, this.#high, this.#low);
  }
}

/** The pieces of a message as its body's pieces and its tag (copied only when the tag spans pieces). */
function splitTag(pieces: readonly Uint8Array[], length: number): { body: Uint8Array[]; tag: Uint8Array } {
  const bodyLength = length - CIPHER_TAG_LENGTH;
  const body: Uint8Array[] = [];
  const tagPieces: Uint8Array[] = [];
  let offset = 0;
  for (const piece of pieces) {
    const split = Math.min(Math.max(bodyLength - offset, 0), piece.length);
    if (split > 0) body.push(piece.subarray(0, split));
    if (split < piece.length) tagPieces.push(piece.subarray(split));
    offset += piece.length;
  }
  return { body, tag: joinBytes(tagPieces) };
}
