/**
 * Sealing: header (stanzas for every recipient, MAC), 16-byte payload nonce, STREAM payload,
 * optionally armored. FileSealer does the work on pushed pieces; createSealer() hands it out, and
 * the node:stream Transform and the one-shot sealBytes() are thin adapters over it.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { randomBytes } from '../primitives.js';
import { ArmorEncoder, type ArmorLineEnding } from './armor.js';
import { AgeError } from './errors.js';
import { generateFileKey, headerMac, PAYLOAD_NONCE_LENGTH, payloadKey } from './file-key.js';
import { encodeHeader, encodeHeaderNoMac } from './format.js';
import { decodeRecipient } from './keys.js';
import type { Recipient } from './recipient.js';
import { StreamSealer } from './stream.js';

export interface SealOptions {
  /** Emit ASCII armor instead of the binary format. */
  armor?: boolean;
  /** The armor's line ends (the format allows both): LF by default, CRLF for SMTP. */
  armorLineEnding?: ArmorLineEnding;
}

type Emit = (piece: Uint8Array) => void;

/** An age file being written: plaintext pushed in pieces, the file handed to the caller's emit as it forms. */
export interface AgeSealer {
  /**
   * Octets of the binary file before the payload's first chunk: the header, which holds the
   * wrapped file key, and the payload nonce. Every octet after them is the payload, which age
   * encrypts and authenticates under that file key.
   */
  readonly headerLength: number;
  push(plaintext: Uint8Array): void;
  /** Seals the last chunk (and ends the armor): the file is complete. */
  end(): void;
}

class FileSealer implements AgeSealer {
  private readonly payload: StreamSealer;
  private readonly armor: ArmorEncoder | null;
  private prefix: Uint8Array | null;
  readonly headerLength: number;

  constructor(
    recipients: readonly (string | Recipient)[],
    options: SealOptions,
    private readonly emit: Emit,
  ) {
    if (recipients.length === 0) throw new AgeError('usage', 'age seal: no recipients');
    const fileKey = generateFileKey();
    const stanzas = recipients.flatMap((r) => (typeof r === 'string' ? decodeRecipient(r) : r).wrapFileKey(fileKey));
    const headerNoMac = encodeHeaderNoMac(stanzas);
    const nonce = randomBytes(PAYLOAD_NONCE_LENGTH);
    this.prefix = Buffer.concat([encodeHeader(headerNoMac, headerMac(fileKey, headerNoMac)), nonce]);
    this.headerLength = this.prefix.length;
    this.armor = options.armor === true ? new ArmorEncoder(options.armorLineEnding) : null;
    this.payload = new StreamSealer(payloadKey(fileKey, nonce), (piece) => this.output(piece));
  }

  push(plaintext: Uint8Array): void {
    this.start();
    this.payload.push(plaintext);
  }

  end(): void {
    this.start();
    this.payload.end();
    if (this.armor !== null) this.emit(this.armor.end());
  }

  /** The header goes out with the first output, not at construction. */
  private start(): void {
    if (this.prefix === null) return;
    const prefix = this.prefix;
    this.prefix = null;
    this.output(prefix);
  }

  private output(piece: Uint8Array): void {
    if (this.armor === null) {
      this.emit(piece);
      return;
    }
    const text = this.armor.push(piece);
    if (text.length > 0) this.emit(text);
  }
}

class SealTransform extends Transform {
  private readonly sealer: FileSealer;

  constructor(recipients: readonly (string | Recipient)[], options: SealOptions) {
    super();
    this.sealer = new FileSealer(recipients, options, (piece) => this.push(piece));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.sealer.push(chunk);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.sealer.end();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }
}

/**
 * Seals plaintext pushed in pieces, each piece of the file going to `emit` as soon as it is
 * sealed: for a caller with a stream of its own, without a second one in between.
 */
export function createSealer(recipients: readonly (string | Recipient)[], emit: Emit, options: SealOptions = {}): AgeSealer {
  return new FileSealer(recipients, options, emit);
}

/** A Transform from plaintext to an age file for `recipients`; throws AgeError('key') for a bad recipient. */
export function createSealStream(recipients: readonly (string | Recipient)[], options: SealOptions = {}): Transform {
  return new SealTransform(recipients, options);
}

/** Seals a plaintext held in memory in one call. */
export function sealBytes(plaintext: Uint8Array, recipients: readonly (string | Recipient)[], options: SealOptions = {}): Uint8Array {
  const pieces: Uint8Array[] = [];
  const sealer = new FileSealer(recipients, options, (piece) => pieces.push(piece));
  sealer.push(plaintext);
  sealer.end();
  // A single piece needs no copy.
  return pieces.length === 1 ? (pieces[0] as Uint8Array) : Buffer.concat(pieces);
}
