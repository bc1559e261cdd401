/**
 * Tunnel frames (docs/PROTOCOL.md section 5):
 *   frame = length(2, big-endian) || Noise transport message
 *   body  = type(1) || content
 */
import { FRAME_HEADER, MAX_FRAME_CONTENT, MIN_FRAME_CIPHERTEXT } from './limits.js';

export const FrameType = { data: 0x00, rekey: 0x01, close: 0x02 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** One direction of a Noise transport: the sending or the receiving CipherState. */
export interface TransportCipher {
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array;
  rekey(): void;
}

/** The tunnel is broken: a frame failed to authenticate, was malformed, or arrived out of order. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
}

const NO_AD = new Uint8Array(0);

/** Encrypts one frame; content must fit one frame (MAX_FRAME_CONTENT octets). */
export function sealFrame(cipher: TransportCipher, type: FrameType, content: Uint8Array = NO_AD): Buffer {
  if (content.length > MAX_FRAME_CONTENT) {
    throw new FrameError(`frame content: at most ${MAX_FRAME_CONTENT} octets, got ${content.length}`);
  }
  const body = Buffer.allocUnsafe(1 + content.length);
  body[0] = type;
  body.set(content, 1);
  const ciphertext = cipher.encryptWithAd(NO_AD, body);
  const frame = Buffer.allocUnsafe(FRAME_HEADER + ciphertext.length);
  frame.writeUInt16BE(ciphertext.length, 0);
  frame.set(ciphertext, FRAME_HEADER);
  return frame;
}

export interface OpenedFrame {
  type: FrameType;
  content: Uint8Array;
}

/**
 * Reassembles frames from a byte stream and opens them in order. Bytes are buffered only up to one
 * frame (at most 65537 octets), whatever the sender does.
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
      const ciphertext = this.take(FRAME_HEADER + length).subarray(FRAME_HEADER);
      let body: Uint8Array;
      try {
        body = this.cipher.decryptWithAd(NO_AD, ciphertext);
      } catch {
        throw new FrameError('frame failed authentication (tampered, reordered, replayed or dropped)');
      }
      const type = body[0];
      if (type !== FrameType.data && type !== FrameType.rekey && type !== FrameType.close) {
        throw new FrameError(`frame type ${type === undefined ? 'missing' : '0x' + type.toString(16)} unknown`);
      }
      const content = body.subarray(1);
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

  private take(length: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= length) {
      out = first.subarray(0, length);
      if (first.length === length) this.chunks.shift();
      else this.chunks[0] = first.subarray(length);
    } else {
      out = Buffer.allocUnsafe(length);
      let filled = 0;
      while (filled < length) {
        const chunk = this.chunks[0]!;
        const n = Math.min(chunk.length, length - filled);
        chunk.copy(out, filled, 0, n);
        filled += n;
        if (n === chunk.length) this.chunks.shift();
        else this.chunks[0] = chunk.subarray(n);
      }
    }
    this.buffered -= length;
    return out;
  }
}
