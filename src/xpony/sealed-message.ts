/**
 * The sealed message (docs/PROTOCOL.md, "The sealed message"): the original octets of a message,
 * age-encrypted and armored, inside a minimal RFC 5322 wrapper that survives any SMTP hop (7bit,
 * CRLF, lines of 64 columns). Both directions are node:stream Transforms with backpressure: the
 * body is never held whole. Unwrapping emits only what the age layer authenticated, and ends only
 * after the last chunk authenticated; every failure is a SealedMessageError.
 */
import { Transform, type TransformCallback } from 'node:stream';
import {
  AgeError,
  ARMOR_BEGIN,
  ARMOR_END,
  CHUNK_SIZE,
  createOpener,
  createSealer,
  isHybridRecipient,
  type AgeOpener,
  type AgeSealer,
  type Identity,
  type Recipient,
} from '../crypto/age/index.js';
import { AEAD_TAG_LENGTH } from '../crypto/primitives.js';
import { MAX_SEALED_STANZAS } from './limits.js';
import { errorMessage } from '../error-message.js';

export const SEALED_FIELD_NAME = 'X-Pony-Sealed';
export const SEALED_FIELD_VALUE = '1';
export const SEALED_CONTENT_TYPE = 'application/vnd.blackpony.sealed';

/** The wrapper header block, blank line included. */
export const WRAPPER_HEADER = Buffer.from(
  `${SEALED_FIELD_NAME}: ${SEALED_FIELD_VALUE}\r\nMIME-Version: 1.0\r\nContent-Type: ${SEALED_CONTENT_TYPE}\r\nContent-Transfer-Encoding: 7bit\r\n\r\n`,
  'latin1',
);

// The armored form's geometry (age's format and armor, C2SP): for the SIZE a relay is told.
/** The age header's version line and MAC line. */
const HEADER_FRAME_OCTETS = 22 + 48;
/** An X25519 stanza: its argument line, then the wrapped file key. */
const X25519_STANZA_OCTETS = 54 + 44;
/** A hybrid stanza: its argument line carries the ML-KEM-768 ciphertext and X25519 share (1120 octets). */
const HYBRID_STANZA_OCTETS = 1513 + 44;
/** The payload's nonce, before the first chunk. */
const PAYLOAD_NONCE = 16;
const ARMOR_COLUMNS = 64;
const ARMOR_BEGIN_END = `${ARMOR_BEGIN}\r\n${ARMOR_END}\r\n`.length;

/**
 * The octets of the armored sealed message (wrapper, armor, CRLF lines) for a message of `size`
 * octets sealed to `recipients`, at least as many as it will take: what a sender declares in SIZE
 * to a host that passes the sealed message on (a backup MX).
 */
export function armoredSealedSize(size: number, recipients: readonly Recipient[]): number {
  const chunks = Math.max(1, Math.ceil(size / CHUNK_SIZE));
  const stanzas = recipients.reduce((sum, r) => sum + (isHybridRecipient(r) ? HYBRID_STANZA_OCTETS : X25519_STANZA_OCTETS), 0);
  const binary = HEADER_FRAME_OCTETS + stanzas + PAYLOAD_NONCE + size + chunks * AEAD_TAG_LENGTH;
  const base64 = 4 * Math.ceil(binary / 3);
  return WRAPPER_HEADER.length + ARMOR_BEGIN_END + base64 + 2 * Math.ceil(base64 / ARMOR_COLUMNS);
}

/** How much header a receiver buffers to look for the marker; a longer header block is passed on as not sealed. */
export const MAX_HEADER_BLOCK = 64 * 1024;

export type SealedMessageErrorKind =
  /** Sealed to none of this host's age identities. */
  | 'not-for-us'
  /** Malformed wrapper, armor, age header or payload; authentication failure; truncation. */
  | 'damaged';

export class SealedMessageError extends Error {
  override readonly name = 'SealedMessageError';
  constructor(
    readonly kind: SealedMessageErrorKind,
    /** Why, on one line, fit to quote in an SMTP reply. */
    readonly reason: string,
  ) {
    super(`sealed message: ${kind}: ${reason}`);
  }
}

export interface SealedMessageReply {
  code: number;
  /** Enhanced status code first, as in an SMTP reply line. */
  text: string;
}

/**
 * The reply to the final DATA when a sealed message cannot be opened (the spec's table). A damaged
 * one whose payload came in raw runs (XPONY-RAW-PAYLOAD) may have been altered on the wire, as a
 * frame that fails to authenticate may: the sender is to try again, not to bounce it.
 */
export function sealedMessageReply(error: SealedMessageError, payloadInRawRuns = false): SealedMessageReply {
  if (error.kind === 'not-for-us') return { code: 451, text: "4.7.5 sealed message not addressed to this host's keys" };
  if (payloadInRawRuns) return { code: 451, text: `4.6.0 sealed message damaged in transit: ${error.reason}` };
  return { code: 554, text: `5.6.0 sealed message damaged: ${error.reason}` };
}

const MAX_REASON_LENGTH = 200;

function sealedMessageError(error: unknown): SealedMessageError {
  if (error instanceof SealedMessageError) return error;
  const message = errorMessage(error);
  const reason = message.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_REASON_LENGTH);
  return new SealedMessageError(error instanceof AgeError && error.kind === 'no-match' ? 'not-for-us' : 'damaged', reason);
}

/**
 * A Transform that hands its input to age (sealing or opening) and pushes what age emits within
 * the same call: one stream, not a second one inside it. Backpressure is the Transform's own: a
 * chunk's callback waits while our reader is full.
 */
abstract class ThroughAge extends Transform {
  private readonly age: AgeSealer | AgeOpener;

  constructor(start: (emit: (piece: Uint8Array) => void) => AgeSealer | AgeOpener) {
    super();
    this.age = start((piece) => this.push(piece));
  }

  protected abstract failure(error: unknown): Error;

  protected feed(bytes: Buffer, callback: TransformCallback): void {
    try {
      this.age.push(bytes);
    } catch (error) {
      callback(this.failure(error));
      return;
    }
    callback();
  }

  protected finish(callback: TransformCallback): void {
    try {
      this.age.end();
    } catch (error) {
      callback(this.failure(error));
      return;
    }
    callback();
  }
}

const LF = 0x0a;
/** "a", of the binary age file's version line "age-encryption.org/v1". */
const BINARY_FIRST_OCTET = 0x61;

/** Message octets in, the sealed message out: wrapped and armored, or the binary age file (XPONY-BINARY). */
export class WrapStream extends ThroughAge {
  private started: boolean;
  /** For the binary file: its octets before the age payload (AgeSealer.headerLength); every later one is payload. */
  readonly headerLength: number;

  constructor(recipients: readonly (string | Recipient)[], binary: boolean) {
    let sealer: AgeSealer | undefined;
    // SMTP wants CRLF line ends.
    super((emit) => (sealer = createSealer(recipients, emit, binary ? {} : { armor: true, armorLineEnding: 'crlf' })));
    this.started = binary; // no wrapper header
    this.headerLength = sealer!.headerLength;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.start();
    this.feed(chunk, callback);
  }

  override _flush(callback: TransformCallback): void {
    this.start();
    this.finish(callback);
  }

  protected failure(error: unknown): Error {
    return error as Error;
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.push(WRAPPER_HEADER);
  }
}

/** A message's octets in; if sealed, the fields added on the way and the opened original out; else the same octets. */
export class UnwrapStream extends ThroughAge {
  /** Undefined until the header block was seen; decided before anything is emitted. */
  sealed: boolean | undefined;
  private header: Buffer = Buffer.alloc(0);
  private bodyStarted = false;

  constructor(
    identities: readonly (string | Identity)[],
    /** The binary age file itself (XPONY-BINARY), not a wrapped and armored one. */
    private readonly binary = false,
  ) {
    super((emit) => createOpener(identities, emit, { maxStanzas: MAX_SEALED_STANZAS }));
    if (binary) this.sealed = true;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.sealed === false) {
      callback(null, chunk);
      return;
    }
    if (this.sealed === true) {
      this.body(chunk, callback);
      return;
    }
    // The blank line may straddle the pieces: look again from just before the new one.
    const from = Math.max(0, this.header.length - 2);
    this.header = Buffer.concat([this.header, chunk]);
    const end = headerBlockEnd(this.header, from);
    if (end < 0 && this.header.length <= MAX_HEADER_BLOCK) {
      callback();
      return;
    }
    if (end < 0 || end > MAX_HEADER_BLOCK) {
      this.passOn(callback);
      return;
    }
    this.decide(end, callback);
  }

  override _flush(callback: TransformCallback): void {
    if (this.sealed === undefined) {
      // The input ended inside the header block: it is all header, and a sealed one lacks its armor.
      this.decide(this.header.length, (error) => (error === null || error === undefined ? this.flushDecided(callback) : callback(error)));
      return;
    }
    this.flushDecided(callback);
  }

  protected failure(error: unknown): Error {
    return sealedMessageError(error);
  }

  private flushDecided(callback: TransformCallback): void {
    if (this.sealed === true) this.finish(callback);
    else callback();
  }

  private decide(headerEnd: number, callback: TransformCallback): void {
    const marker = markerFieldStart(this.header.subarray(0, headerEnd));
    if (marker < 0) {
      this.passOn(callback);
      return;
    }
    this.sealed = true;
    if (marker > 0) this.push(this.header.subarray(0, marker));
    const body = this.header.subarray(headerEnd);
    this.header = Buffer.alloc(0);
    this.body(body, callback);
  }

  private passOn(callback: TransformCallback): void {
    this.sealed = false;
    const octets = this.header;
    this.header = Buffer.alloc(0);
    this.push(octets);
    callback();
  }

  /**
   * The wrapper's body: armor only (the opener would take a leading "a" for a binary age file);
   * a binary message: the binary file only ("age-encryption.org/v1"), never armor.
   */
  private body(bytes: Buffer, callback: TransformCallback): void {
    if (!this.bodyStarted && bytes.length > 0) {
      this.bodyStarted = true;
      const first = bytes[0] as number;
      if (this.binary ? first !== BINARY_FIRST_OCTET : first !== 0x2d && first !== 0x20 && first !== 0x09 && first !== 0x0d && first !== LF) {
        const expected = this.binary ? 'binary message: expected the binary age file' : 'wrapper body: expected the age armor';
        callback(new SealedMessageError('damaged', `${expected}, got byte 0x${first.toString(16).padStart(2, '0')}`));
        return;
      }
    }
    this.feed(bytes, callback);
  }
}

/** The offset just past the blank line that ends the header block (CRLF or bare LF), or -1; LFs before `from` were looked at. */
function headerBlockEnd(octets: Buffer, from: number): number {
  if (octets[0] === LF) return 1;
  if (octets[0] === 0x0d && octets[1] === LF) return 2;
  for (let lf = octets.indexOf(LF, from); lf >= 0; lf = octets.indexOf(LF, lf + 1)) {
    if (octets[lf + 1] === LF) return lf + 2;
    if (octets[lf + 1] === 0x0d && octets[lf + 2] === LF) return lf + 3;
  }
  return -1;
}

const MARKER_FIELD = new RegExp(`^${SEALED_FIELD_NAME}[ \\t]*:([^]*)$`, 'i');

/** Where the `X-Pony-Sealed: 1` field starts in a header block, or -1. Continuation lines belong to their field. */
function markerFieldStart(block: Buffer): number {
  const text = block.toString('latin1');
  let start = 0;
  while (start < text.length) {
    let end = start;
    do {
      const lf = text.indexOf('\n', end);
      end = lf < 0 ? text.length : lf + 1;
    } while (end < text.length && (text[end] === ' ' || text[end] === '\t'));
    const value = MARKER_FIELD.exec(text.slice(start, end))?.[1];
    if (value !== undefined && value.trim() === SEALED_FIELD_VALUE) return start;
    start = end;
  }
  return -1;
}

/** A Transform from a message's original octets to the sealed message for `recipients`; `binary`: the binary age file alone (XPONY-BINARY). */
export function createWrapStream(recipients: readonly (string | Recipient)[], binary = false): WrapStream {
  return new WrapStream(recipients, binary);
}

/**
 * A Transform that opens a sealed message (errors with SealedMessageError) and passes any other
 * message on unchanged; `binary`: the input is the binary age file alone (XPONY-BINARY), opened
 * whatever its first octets.
 */
export function createUnwrapStream(identities: readonly (string | Identity)[], binary = false): UnwrapStream {
  return new UnwrapStream(identities, binary);
}
