/**
 * Tunnel frames (docs/PROTOCOL.md section 5):
 *   frame = length(2, big-endian) || Noise transport message
 *   body  = type(1) || content
 * A raw-run frame (where the receiver offered XPONY-RAW-PAYLOAD) announces octets that follow it
 * outside any frame: a binary message's age payload, authenticated and encrypted by age already.
 */
import { byteLength } from '../crypto/primitives.js';
import { FRAME_HEADER, MAX_FRAME_CONTENT, MAX_RAW_RUN, MIN_FRAME_CIPHERTEXT, RAW_RUN_LENGTH } from './limits.js';

export const FrameType = { data: 0x00, rekey: 0x01, close: 0x02, rawRun: 0x03 } as const;
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

/** The raw-run frame that announces `length` raw octets (1 to MAX_RAW_RUN) to follow it. */
export function sealRawRunFrame(cipher: TransportCipher, length: number): Uint8Array[] {
  if (!Number.isInteger(length) || length < 1 || length > MAX_RAW_RUN) throw new FrameError(`raw run: 1 to ${MAX_RAW_RUN} octets, got ${length}`);
  const count = Buffer.allocUnsafe(RAW_RUN_LENGTH);
  count.writeUInt32BE(length, 0);
  return sealFrame(cipher, FrameType.rawRun, [count]);
}

/**
 * `chunks` as raw runs, in pieces to be written out in order: each run's raw-run frame, then its
 * octets as they are (at most MAX_RAW_RUN to a run). Nothing is copied.
 */
export function sealRawRuns(cipher: TransportCipher, chunks: readonly Uint8Array[]): Uint8Array[] {
  return cut(chunks, MAX_RAW_RUN).flatMap((run) => [...sealRawRunFrame(cipher, byteLength(run)), ...run]);
}

/**
 * Cuts `chunks` into the contents of full data frames (the last one may be shorter), each content
 * the pieces of the chunks it spans: fewer frames than one per chunk, and nothing copied.
 */
export function frameContents(chunks: readonly Uint8Array[]): Uint8Array[][] {
  return cut(chunks, MAX_FRAME_CONTENT);
}

/** Cuts `chunks` into groups of `limit` octets (the last one may be shorter), each the pieces of the chunks it spans. */
function cut(chunks: readonly Uint8Array[], limit: number): Uint8Array[][] {
  const groups: Uint8Array[][] = [];
  let group: Uint8Array[] = [];
  let length = 0;
  for (const chunk of chunks) {
    for (let offset = 0; offset < chunk.length;) {
      const piece = chunk.subarray(offset, offset + limit - length);
      group.push(piece);
      length += piece.length;
      offset += piece.length;
      if (length === limit) {
        groups.push(group);
        group = [];
        length = 0;
      }
    }
  }
  if (length > 0) groups.push(group);
  return groups;
}

export interface OpenedFrame {
  /** data, rekey or close; rawRun: raw octets a raw-run frame announced (never the frame itself). */
  type: FrameType;
  /** The content in the pieces it arrived in (none for an empty frame); for rawRun, raw octets as they came. */
  content: Uint8Array[];
}

/**
 * Cuts frames from a byte stream and opens them in order, each from the pieces of the reads it
 * arrived in (never copied together). Bytes are held only up to one frame (at most 65537
 * octets), whatever the sender does; the raw octets of a raw run are handed on as they arrive.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private closed = false;
  /** Raw octets still due from the last raw-run frame: they come before the next frame. */
  private rawDue = 0;

  constructor(
    private readonly cipher: TransportCipher,
    /** Whether raw-run frames may come (this side offered XPONY-RAW-PAYLOAD); else one ends the tunnel. */
    private readonly acceptRawRuns = false,
  ) {}

  /** Adds received bytes and returns every frame they complete. Throws FrameError on a bad frame. */
  push(data: Buffer): OpenedFrame[] {
    // However the bytes were split, nothing may follow the close frame.
    if (this.closed && data.length > 0) throw new FrameError('data after the close frame');
    this.chunks.push(data);
    this.buffered += data.length;
    const frames: OpenedFrame[] = [];
    for (;;) {
      if (this.rawDue > 0) {
        if (this.buffered === 0) break;
        const length = Math.min(this.buffered, this.rawDue);
        this.rawDue -= length;
        frames.push({ type: FrameType.rawRun, content: this.take(length) });
        continue;
      }
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
      if (type !== FrameType.data && type !== FrameType.rekey && type !== FrameType.close && (type !== FrameType.rawRun || !this.acceptRawRuns)) {
        throw new FrameError(`frame type ${type === undefined ? 'missing' : '0x' + type.toString(16)} unknown`);
      }
      const content = body.slice(first);
      content[0] = content[0]!.subarray(1);
      if (content[0].length === 0) content.shift();
      if (type === FrameType.rawRun) {
        this.rawDue = rawRunLength(content);
        continue;
      }
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

/** The count a raw-run frame's content announces; FrameError unless it is 4 octets of 1 to MAX_RAW_RUN. */
function rawRunLength(content: readonly Uint8Array[]): number {
  const octets = Buffer.concat(content);
  const length = octets.length === RAW_RUN_LENGTH ? octets.readUInt32BE(0) : 0;
  if (length < 1 || length > MAX_RAW_RUN) {
    throw new FrameError(
      `raw-run frame: expected a ${RAW_RUN_LENGTH}-octet count of 1 to ${MAX_RAW_RUN}, got ${octets.length === RAW_RUN_LENGTH ? length : `${octets.length} octets`}`,
    );
  }
  return length;
}
