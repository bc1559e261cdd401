/**
 * Sends a message as BDAT chunks (RFC 3030) of the size the server announced (binary-message.ts
 * chunkSizeFor), for the binary sealed message. Chunks follow one another without waiting for
 * their replies (the server answers each, in order); the result is the first refusal, else the
 * reply to LAST. Once a chunk is refused no more are sent, not even LAST (RFC 3030 section 3: the
 * sender MUST NOT), no later reply is read (the server may hang up on a client that had sent
 * more; the refusal is the outcome), and the rest of the message is dropped. To a server that
 * offered XPONY-RAW-PAYLOAD the file's payload goes in raw runs: every octet after the age
 * header, never one of the header.
 */
import type { SmtpClient, SmtpReply } from '../smtp/index.js';

/** How the binary file's payload leaves as raw runs (XPONY-RAW-PAYLOAD, docs/PROTOCOL.md section 5). */
export interface RawPayload {
  /** The file's octets before its payload (WrapStream.headerLength): these go in frames. */
  headerLength: number;
  /** Makes a piece's write leave as a raw run (Tunnel.markRaw). */
  markRaw(piece: Buffer): Buffer;
}

export class ChunkWriter {
  private held: Buffer[] = [];
  private heldLength = 0;
  /** Resolves with the first refused chunk's reply, or undefined while all were accepted. */
  private replies: Promise<SmtpReply | undefined> = Promise.resolve(undefined);
  private lastReply: Promise<SmtpReply | undefined> | undefined;
  /** Octets of the file taken so far. */
  private taken = 0;
  /** The first refusal read: from then on octets are dropped and no chunk is sent. */
  private refusal: SmtpReply | undefined;

  constructor(
    private readonly client: SmtpClient,
    /** Octets per chunk but the last. */
    private readonly chunkSize: number,
    private readonly raw?: RawPayload,
  ) {}

  /** Takes message octets; false: wait for onDrain before writing more. */
  write(octets: Buffer): boolean {
    if (this.refusal !== undefined) return true;
    let ready = true;
    for (let offset = 0; offset < octets.length;) {
      let take = Math.min(this.chunkSize - this.heldLength, octets.length - offset);
      const headerLeft = this.raw === undefined ? 0 : this.raw.headerLength - this.taken;
      // A piece is all header or all payload.
      if (headerLeft > 0) take = Math.min(take, headerLeft);
      const piece = octets.subarray(offset, offset + take);
      this.held.push(this.raw !== undefined && headerLeft <= 0 ? this.raw.markRaw(piece) : piece);
      this.taken += take;
      this.heldLength += take;
      offset += take;
      if (this.heldLength === this.chunkSize) ready = this.sendHeld(false);
    }
    return ready;
  }

  onDrain(callback: () => void): void {
    this.client.onDrain(callback);
  }

  /** Sends the rest as the LAST chunk (BDAT 0 LAST when nothing is left) and resolves with the transaction's reply. */
  async end(): Promise<SmtpReply> {
    if (this.refusal === undefined) this.sendHeld(true);
    const refusal = await this.replies;
    return refusal ?? (await this.lastReply)!;
  }

  /** Whether a chunk other than LAST was refused: the server's transaction then never ended. */
  get refusedEarly(): boolean {
    return this.refusal !== undefined;
  }

  private sendHeld(last: boolean): boolean {
    const ready = this.client.writeChunk(this.held, last);
    this.held = [];
    this.heldLength = 0;
    const previous = this.replies;
    const reply = previous.then(async (refused) => (refused === undefined ? this.client.nextReply(last ? 'BDAT LAST' : 'BDAT') : undefined));
    if (last) this.lastReply = reply;
    this.replies = Promise.all([previous, reply]).then(([refused, answer]) => {
      if (refused !== undefined || last || answer!.code === 250) return refused;
      this.refusal = answer;
      return answer;
    });
    // A lost connection is reported by end(); until then the rejection is not unhandled.
    this.replies.catch(() => undefined);
    return ready;
  }
}
