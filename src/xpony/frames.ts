/**
 * Tunnel frames (docs/PROTOCOL.md section 5):
 *   frame = length(2, big-endian) || Noise transport message
 *   body  = type(1) || content
 */
import { byteLength } from '../crypto/primitives.js';
import { FRAME_HEADER, MAX_FRAME_CONTENT, MIN_FRAME_CIPHERTEXT } from './limits.js';

export const FrameType = { data: 0x00, rekey: 0x01, close: 0x02 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** One direction of a Noise transport: the sending or the receiving CipherState. */
export interface TransportCipher {
  encryptPartsWithAd(ad: Uint8Array, plaintext: readonly Uint8Array[]): Uint8Array[];
  decryptPartsWithAd(ad: Uint8Array, ciphertext: readonly Uint8Array[]): Uint8Array[];
  rekey(): void;
}

/** The tunnel is broken: a frame failed to authenticate, was malformed, or arrived out of order. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
}

const NO_AD = new Uint8Array(0);

/**
 * Encrypts one frame whose content (at most MAX_FRAME_CONTENT octets) is given in pieces. The frame
 * comes back in pieces too, to be written out in order: length, then the ciphertext as the cipher
 * gave it. No piece of a message is copied on its way into a frame.
 */
export function sealFrame(cipher: TransportCipher, type: FrameType, content: readonly Uint8Array[] = []): Uint8Array[] {
  const length = byteLength(content);
  if (length > MAX_FRAME_CONTENT) {
    throw new FrameError(`frame content: at most ${MAX_FRAME_CONTENT} octets, got ${length}`);
  }
  const ciphertext = cipher.encryptPartsWithAd(NO_AD, [Uint8Array.of(type), ...content]);
  const header = Buffer.allocUnsafe(FRAME_HEADER);
  header.writeUInt16BE(byteLength(ciphertext), 0);
  return [header, ...ciphertext];
}

/**
 * Cuts `chunks` into the contents of full data frames (the last one may be shorter), each content
 * the pieces of the chunks it spans: fewer frames than one per chunk, and nothing copied.
 */
export function frameContents(chunks: readonly Uint8Array[]): Uint8Array[][] {
  const contents: Uint8Array[][] = [];
  let content: Uint8Array[] = [];
  let length = 0;
  for (const chunk of chunks) {
    for (let offset = 0; offset < chunk.length;) {
      const piece = chunk.subarray(offset, offset + MAX_FRAME_CONTENT - length);
      content.push(piece);
      length += piece.length;
      offset += piece.length;
      if (length === MAX_FRAME_CONTENT) {
        contents.push(content);
        content = [];
        length = 0;
      }
    }
  }
  if (length > 0) contents.push(content);
  return contents;
}

export interface OpenedFrame {
  type: FrameType;
  /** The content in the pieces it arrived in (none for an empty frame). */
  content: Uint8Array[];
}

/**
 * Cuts frames from a byte stream and opens them in order, each from the pieces of the reads it
 * arrived in (never copied together). Bytes are held only up to one frame (at most 65537
 * octets), whatever the sender does.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private closed = false;

  constructor(private readonly cipher: TransportCipher) {}

  /** Adds received bytes and returns every frame they complete. Throws FrameError on a bad frame. */
  push(data: Buffer): OpenedFrame[] {
    // However the bytes were split, nothing may follow the close frame.
    if (this.closed && data.length > 0) throw new FrameError('data after the close frame');
    this.chunks.push(data);
    this.buffered += data.length;
    const frames: OpenedFrame[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER) break;
      const length = this.peekLength();
      if (length < MIN_FRAME_CIPHERTEXT) {
        throw new FrameError(`frame length ${length} below the ${MIN_FRAME_CIPHERTEXT}-octet minimum`);
      }
      if (this.buffered < FRAME_HEADER + length) break;
      this.take(FRAME_HEADER);
      let body: Uint8Array[];
      try {
        body = this.cipher.decryptPartsWithAd(NO_AD, this.take(length));
      } catch {
        throw new FrameError('frame failed authentication (tampered, reordered, replayed or dropped)');
      }
      const first = body.findIndex((piece) => piece.length > 0);
      const type = first === -1 ? undefined : body[first]![0];
      if (type !== FrameType.data && type !== FrameType.rekey && type !== FrameType.close) {
        throw new FrameError(`frame type ${type === undefined ? 'missing' : '0x' + type.toString(16)} unknown`);
      }
      const content = body.slice(first);
      content[0] = content[0]!.subarray(1);
      if (content[0].length === 0) content.shift();
      if (type !== FrameType.data && content.length > 0) {
        throw new FrameError(`${type === FrameType.rekey ? 'rekey' : 'close'} frame carries content`);
      }
      frames.push({ type, content });
      // The next frame is encrypted under the rekeyed state: switch before opening it.
      if (type === FrameType.rekey) this.cipher.rekey();
      if (type === FrameType.close) {
        this.closed = true;
        if (this.buffered > 0) throw new FrameError('data after the close frame');
        break;
      }
    }
    return frames;
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= FRAME_HEADER) return first.readUInt16BE(0);
    return (first[0]! << 8) | this.chunks[1]![0]!;
  }

  /** The next `length` buffered octets, as the pieces of the reads they came in. */
  private take(length: number): Buffer[] {
    const pieces: Buffer[] = [];
    let taken = 0;
    while (taken < length) {
      const chunk = this.chunks[0]!;
      const n = Math.min(chunk.length, length - taken);
      pieces.push(chunk.subarray(0, n));
      taken += n;
      if (n === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(n);
    }
    this.buffered -= length;
    return pieces;
  }
}
