/**
 * Opening an age file, binary or armored (told apart by the first byte). Nothing is emitted until
 * the header MAC verified, and each chunk only after its tag verified; every failure is an
 * AgeError. FileOpener does the work on pushed pieces; createOpener() hands it out, and the
 * node:stream Transform and the one-shot openBytes() are thin adapters over it.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { ArmorDecoder } from './armor.js';
import { AgeError } from './errors.js';
import { PAYLOAD_NONCE_LENGTH, payloadKey, verifyHeaderMac } from './file-key.js';
import { HeaderReader, type Header } from './format.js';
import { parseIdentity } from './keys.js';
import type { Identity } from './recipient.js';
import { StreamOpener } from './stream.js';

/** Binary age files begin with "age-encryption.org/v1"; anything else is taken to be armor. */
const BINARY_FIRST_BYTE = 'a'.charCodeAt(0);

type Emit = (piece: Uint8Array) => void;

export interface OpenOptions {
  /**
   * Most recipient stanzas a file may carry (default and ceiling MAX_STANZAS). Each one may cost
   * an ML-KEM decapsulation per identity of its type, so a caller that knows how many a file for
   * it holds refuses more before any is tried.
   */
  maxStanzas?: number;
}

/** Each identity tries only the stanzas of its own type (x25519.ts, hybrid.ts): a stanza of a type none has costs nothing. */
function unwrap(identities: readonly Identity[], header: Header): Uint8Array {
  for (const identity of identities) {
    const fileKey = identity.unwrapFileKey(header.stanzas);
    if (fileKey !== null) return fileKey;
  }
  const types = [...new Set(header.stanzas.map((s) => s.type))].join(', ') || 'none';
  throw new AgeError('no-match', `age header: none of ${identities.length} identities matches the ${header.stanzas.length} stanzas (types: ${types})`);
}

/** An age file being read: its octets pushed in pieces, authenticated plaintext handed to the caller's emit. */
export interface AgeOpener {
  /** Throws AgeError; plaintext before the failure was authenticated, none after it is emitted. */
  push(input: Uint8Array): void;
  /** The input ended: throws AgeError unless the file was complete. */
  end(): void;
}

class FileOpener implements AgeOpener {
  private readonly identities: readonly Identity[];
  /** Decided by the first byte: null for binary, a decoder for armor. */
  private armor: ArmorDecoder | null = null;
  private detected = false;
  private readonly header: HeaderReader;
  private fileKey: Uint8Array | null = null;
  private nonce: Buffer = Buffer.alloc(0);
  private payload: StreamOpener | null = null;

  constructor(
    identities: readonly (string | Identity)[],
    private readonly emit: Emit,
    options: OpenOptions,
  ) {
    if (identities.length === 0) throw new AgeError('usage', 'age open: no identities');
    this.header = new HeaderReader(options.maxStanzas);
    this.identities = identities.map((i) => (typeof i === 'string' ? parseIdentity(i) : i));
  }

  push(input: Uint8Array): void {
    if (input.length === 0) return;
    if (!this.detected) {
      this.detected = true;
      if (input[0] !== BINARY_FIRST_BYTE) this.armor = new ArmorDecoder();
    }
    this.file(this.armor === null ? input : this.armor.push(input));
  }

  end(): void {
    this.armor?.end();
    if (this.payload !== null) this.payload.end();
    else if (this.fileKey !== null) throw new AgeError('header', `age header: input ended inside the ${PAYLOAD_NONCE_LENGTH}-byte payload nonce`);
    else this.header.end();
  }

  /** Bytes of the binary age file. */
  private file(bytes: Uint8Array): void {
    let rest = bytes;
    if (this.fileKey === null) {
      const done = this.header.push(rest);
      if (done === null) return;
      const fileKey = unwrap(this.identities, done.header);
      verifyHeaderMac(fileKey, done.header.headerNoMac, done.header.mac);
      this.fileKey = fileKey;
      rest = done.rest;
    }
    if (this.payload === null) {
      const needed = PAYLOAD_NONCE_LENGTH - this.nonce.length;
      this.nonce = Buffer.concat([this.nonce, rest.subarray(0, needed)]);
      rest = rest.subarray(needed);
      if (this.nonce.length < PAYLOAD_NONCE_LENGTH) return;
      this.payload = new StreamOpener(payloadKey(this.fileKey, this.nonce), this.emit);
    }
    this.payload.push(rest);
  }
}

class OpenTransform extends Transform {
  private readonly opener: FileOpener;

  constructor(identities: readonly (string | Identity)[], options: OpenOptions) {
    super();
    this.opener = new FileOpener(identities, (plaintext) => this.push(plaintext), options);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.opener.push(chunk);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.opener.end();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }
}

/**
 * Opens an age file pushed in pieces, each authenticated piece of plaintext going to `emit`: for
 * a caller with a stream of its own, without a second one in between.
 */
export function createOpener(identities: readonly (string | Identity)[], emit: Emit, options: OpenOptions = {}): AgeOpener {
  return new FileOpener(identities, emit, options);
}

/** A Transform from an age file (binary or armored) to its plaintext. */
export function createOpenStream(identities: readonly (string | Identity)[], options: OpenOptions = {}): Transform {
  return new OpenTransform(identities, options);
}

/** Opens an age file held in memory in one call; releases nothing if any part fails. */
export function openBytes(file: Uint8Array, identities: readonly (string | Identity)[], options: OpenOptions = {}): Uint8Array {
  const pieces: Uint8Array[] = [];
  const opener = new FileOpener(identities, (piece) => pieces.push(piece), options);
  opener.push(file);
  opener.end();
  // A single piece needs no copy.
  return pieces.length === 1 ? (pieces[0] as Uint8Array) : Buffer.concat(pieces);
}
