/**
 * The age payload (https://c2sp.org/age#payload): STREAM over ChaCha20-Poly1305 in 64 KiB chunks.
 * The nonce is an 11-byte big-endian chunk counter and a last-chunk flag byte, so truncation,
 * reordering and appended chunks all fail authentication.
 *
 * Both directions hold back one full chunk until they know whether more input follows, because
 * only then is it known whether that chunk is the last one. Memory is one chunk, whatever the size.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { AEAD_TAG_LENGTH } from '../primitives.js';
import { AgeError } from './errors.js';

export const CHUNK_SIZE = 64 * 1024;
export const ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + AEAD_TAG_LENGTH;
const NONCE_LENGTH = 12;
const LAST_CHUNK_FLAG = 0x01;
/** The counter is 88 bits; 48 of them already allow 16 EiB, more than a JS number counts exactly. */
const MAX_CHUNKS = 2 ** 48;
const CIPHER = 'chacha20-poly1305';

type Emit = (piece: Uint8Array) => void;

class ChunkNonce {
  private readonly bytes = Buffer.alloc(NONCE_LENGTH);
  private counter = 0;

  get index(): number {
    return this.counter;
  }

  for(last: boolean): Buffer {
    this.bytes[NONCE_LENGTH - 1] = last ? LAST_CHUNK_FLAG : 0;
    return this.bytes;
  }

  advance(): void {
    this.counter++;
    if (this.counter >= MAX_CHUNKS) throw new AgeError('payload', 'age payload: too many chunks');
    this.bytes.writeUIntBE(this.counter, NONCE_LENGTH - 1 - 6, 6);
  }
}

/** Encrypts a plaintext pushed in pieces of any size into STREAM chunks. */
export class StreamSealer {
  private readonly nonce = new ChunkNonce();
  private readonly buffer = Buffer.allocUnsafe(CHUNK_SIZE);
  private used = 0;

  constructor(
    private readonly key: Uint8Array,
    private readonly emit: Emit,
  ) {}

  push(plaintext: Uint8Array): void {
    let input = plaintext;
    while (input.length > 0) {
      if (this.used === CHUNK_SIZE) {
        this.seal(this.buffer, false);
        this.used = 0;
      }
      if (this.used === 0 && input.length > CHUNK_SIZE) {
        // Whole chunk in the input with more after it: seal in place, no copy.
        this.seal(input.subarray(0, CHUNK_SIZE), false);
        input = input.subarray(CHUNK_SIZE);
        continue;
      }
      const n = Math.min(CHUNK_SIZE - this.used, input.length);
      this.buffer.set(input.subarray(0, n), this.used);
      this.used += n;
      input = input.subarray(n);
    }
  }

  /** Seals what is buffered as the last chunk (empty only when the whole payload is). */
  end(): void {
    this.seal(this.buffer.subarray(0, this.used), true);
  }

  private seal(chunk: Uint8Array, last: boolean): void {
    const cipher = createCipheriv(CIPHER, this.key, this.nonce.for(last), { authTagLength: AEAD_TAG_LENGTH });
    const body = cipher.update(chunk);
    cipher.final();
    if (body.length > 0) this.emit(body);
    this.emit(cipher.getAuthTag());
    this.nonce.advance();
  }
}

/**
 * Decrypts STREAM chunks pushed in pieces of any size. A chunk's plaintext is emitted only after
 * its tag verified; errors are AgeError('payload').
 *
 * Like the reference implementation, a full-size chunk is tried both as a middle and as a last
 * chunk, and its plaintext is released when either verifies; what comes after it then decides
 * whether the file is complete. So a payload failure releases exactly the authenticated prefix
 * the CCTV vectors expect, and nothing else.
 */
export class StreamOpener {
  private readonly nonce = new ChunkNonce();
  private readonly buffer = Buffer.allocUnsafe(ENCRYPTED_CHUNK_SIZE);
  private used = 0;
  private finished = false;

  constructor(
    private readonly key: Uint8Array,
    private readonly emit: Emit,
  ) {}

  push(ciphertext: Uint8Array): void {
    let input = ciphertext;
    while (input.length > 0) {
      if (this.finished) throw new AgeError('payload', `age payload: data after the last chunk ${this.nonce.index - 1}`);
      if (this.used === ENCRYPTED_CHUNK_SIZE) {
        this.openFull(this.buffer);
        this.used = 0;
        continue;
      }
      if (this.used === 0 && input.length > ENCRYPTED_CHUNK_SIZE) {
        // Whole chunk in the input with more after it: open in place, no copy.
        this.openFull(input.subarray(0, ENCRYPTED_CHUNK_SIZE));
        input = input.subarray(ENCRYPTED_CHUNK_SIZE);
        continue;
      }
      const n = Math.min(ENCRYPTED_CHUNK_SIZE - this.used, input.length);
      this.buffer.set(input.subarray(0, n), this.used);
      this.used += n;
      input = input.subarray(n);
    }
  }

  /** The input ended: the last chunk must have been seen, or be what is buffered. */
  end(): void {
    if (this.finished) return;
    const index = this.nonce.index;
    if (this.used === ENCRYPTED_CHUNK_SIZE) {
      this.openFull(this.buffer);
      if (this.finished) return;
      throw new AgeError('payload', `age payload: truncated: chunk ${index} is not marked as the last chunk and nothing follows it`);
    }
    if (this.used < AEAD_TAG_LENGTH) {
      throw new AgeError('payload', `age payload: truncated: chunk ${index} is ${this.used} bytes, shorter than its ${AEAD_TAG_LENGTH}-byte tag`);
    }
    if (this.used === AEAD_TAG_LENGTH && index > 0) {
      throw new AgeError('payload', `age payload: last chunk ${index} is empty, which only an empty payload may have`);
    }
    if (!this.open(this.buffer.subarray(0, this.used), true)) {
      throw new AgeError('payload', `age payload: last chunk ${index} failed authentication (truncated, altered, or missing its last-chunk flag)`);
    }
  }

  /** A full-size chunk is a middle chunk, or the last one when the plaintext fills it exactly. */
  private openFull(chunk: Uint8Array): void {
    if (this.open(chunk, false) || this.open(chunk, true)) return;
    throw new AgeError('payload', `age payload: chunk ${this.nonce.index} failed authentication (altered or reordered)`);
  }

  /** Emits the plaintext and returns true when the tag verifies under this chunk's nonce. */
  private open(chunk: Uint8Array, last: boolean): boolean {
    const bodyLength = chunk.length - AEAD_TAG_LENGTH;
    const decipher = createDecipheriv(CIPHER, this.key, this.nonce.for(last), { authTagLength: AEAD_TAG_LENGTH });
    decipher.setAuthTag(chunk.subarray(bodyLength));
    const body = decipher.update(chunk.subarray(0, bodyLength));
    try {
      decipher.final();
    } catch {
      return false;
    }
    if (body.length > 0) this.emit(body);
    this.nonce.advance();
    this.finished = last;
    return true;
  }
}
