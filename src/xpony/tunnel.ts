/**
 * The encrypted tunnel after the switch point: a Duplex stream of SMTP bytes over a socket that
 * carries only frames. Writes become data frames; received frames are authenticated before a
 * single byte of their content is pushed. Any bad frame destroys the tunnel and the socket at once.
 * The one exception is a raw run (docs/PROTOCOL.md section 5, XPONY-RAW-PAYLOAD): octets a writer
 * marked (markRaw) because age encrypted and authenticates them already leave after a raw-run
 * frame, not inside frames; the receiver counts them (rawOctetsReceived), since what authenticates
 * them is the layer above.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { byteLength } from '../crypto/primitives.js';
import { TurnCork } from '../turn-cork.js';
import { FrameReader, FrameType, FrameError, frameContents, sealFrame, sealRawRuns, type TransportCipher } from './frames.js';
import { REKEY_AFTER_BYTES } from './limits.js';

export interface TunnelOptions {
  socket: Socket;
  send: TransportCipher;
  receive: TransportCipher;
  /** Bytes that arrived on the socket after the switch point and belong to the tunnel. */
  initial?: Buffer;
  /** Whether the peer may send raw runs: this side offers XPONY-RAW-PAYLOAD (a server's tunnel). */
  acceptRawRuns?: boolean;
}

export class Tunnel extends Duplex {
  readonly socket: Socket;
  private readonly send: TransportCipher;
  private readonly reader: FrameReader;
  private sentSinceRekey = 0;
  private receivedClose = false;
  private receivedOpen = false;
  private readonly socketCork: TurnCork;
  /** Rekey frames sent and received: each one erased a key (forward secrecy); tests count them. */
  rekeysSent = 0;
  rekeysReceived = 0;
  /** Octets that came in raw runs, not authenticated by the tunnel: the layer above checks them. */
  rawOctetsReceived = 0;
  /** Buffers whose write goes as a raw run (markRaw). */
  private readonly rawPieces = new WeakSet<Uint8Array>();
  /** The empty Buffers rekey() writes, each standing for a rekey frame at its place in the stream. */
  private readonly rekeyMarks = new WeakSet<Uint8Array>();

  constructor(options: TunnelOptions) {
    // allowHalfOpen: the close frame ends our readable side; the writable side ends with our own.
    super({ allowHalfOpen: true });
    this.socket = options.socket;
    this.socketCork = new TurnCork(options.socket);
    this.send = options.send;
    this.reader = new FrameReader(options.receive, options.acceptRawRuns === true);
    this.socket.on('data', (data: Buffer) => this.onSocketData(data));
    this.socket.on('end', () => this.onSocketClosed());
    this.socket.on('error', (err) => this.destroy(err));
    // SMTP code on either side listens for 'timeout' on the stream it was given.
    this.socket.on('timeout', () => this.emit('timeout'));
    this.socket.on('close', () => {
      if (this.destroyed) return;
      if (!this.receivedClose) this.onSocketClosed();
      // Nothing more can be sent: done once the peer's last data is consumed.
      else if (this.readableEnded) this.destroy();
      else this.once('end', () => this.destroy());
    });
    if (options.initial !== undefined && options.initial.length > 0) this.onSocketData(options.initial);
    // A socket handed over from an SMTP parser (unpiped) is paused; frames must flow from now on.
    this.socket.resume();
  }

  /** The SMTP session's idle timer is the socket's; its 'timeout' is re-emitted here. */
  setTimeout(ms: number, callback?: () => void): this {
    this.socket.setTimeout(ms);
    if (callback !== undefined) this.once('timeout', callback);
    return this;
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }
  get localPort(): number | undefined {
    return this.socket.localPort;
  }
  /** smtp-server only writes to streams that say they are open. */
  get readyState(): string {
    return this.destroyed || !this.writable ? 'closed' : 'open';
  }

  /**
   * Switches this side's sending key to a fresh one derived from the old (forward secrecy), in the
   * stream's order: everything written before goes under the old key, also what a writer holds
   * corked for the turn (TurnCork), such as a server's final reply to DATA (docs/PROTOCOL.md
   * section 5), and the rekey frame leaves in the same socket write.
   */
  rekey(): void {
    if (this.destroyed || this.writableEnded) return;
    const mark = Buffer.alloc(0);
    this.rekeyMarks.add(mark);
    this.write(mark);
  }

  private sealRekey(): boolean {
    const flushed = this.writeFrame(sealFrame(this.send, FrameType.rekey));
    this.send.rekey();
    this.sentSinceRekey = 0;
    this.rekeysSent++;
    return flushed;
  }

  /**
   * Makes the write of this very Buffer (its next one) leave as a raw run: only for octets that
   * are encrypted and authenticated already (a binary message's age payload), and only to a peer
   * that offered XPONY-RAW-PAYLOAD. Octets written in order stay in order, raw or framed.
   */
  markRaw(piece: Buffer): Buffer {
    this.rawPieces.add(piece);
    return piece;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeOut([chunk], callback);
  }

  /** Writes buffered together (a corked writer) share frames: fewer frames, one socket write. */
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.writeOut(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  /** Sends the chunks in order: a rekey where rekey() wrote one, each stretch of raw-marked ones as raw runs, the others in data frames. */
  private writeOut(chunks: Buffer[], callback: (error?: Error | null) => void): void {
    let flushed = true;
    try {
      for (let start = 0; start < chunks.length;) {
        if (this.rekeyMarks.has(chunks[start]!)) {
          flushed = this.sealRekey();
          start++;
          continue;
        }
        const raw = this.rawPieces.has(chunks[start]!);
        let end = start + 1;
        while (end < chunks.length && !this.rekeyMarks.has(chunks[end]!) && this.rawPieces.has(chunks[end]!) === raw) end++;
        const stretch = chunks.slice(start, end);
        flushed = raw ? this.writeFrame(sealRawRuns(this.send, stretch)) : this.writeFrames(stretch);
        start = end;
      }
    } catch (err) {
      callback(err as Error);
      return;
    }
    if (flushed) callback();
    else this.socket.once('drain', () => callback());
  }

  /** Sends the chunks in full data frames (frames.ts frameContents), rekeying between frames when due. */
  private writeFrames(chunks: readonly Buffer[]): boolean {
    let flushed = true;
    for (const content of frameContents(chunks)) {
      flushed = this.writeFrame(sealFrame(this.send, FrameType.data, content));
      this.sentSinceRekey += byteLength(content);
      if (this.sentSinceRekey >= REKEY_AFTER_BYTES) flushed = this.sealRekey();
    }
    return flushed;
  }

  /** Frames written in one event-loop turn leave in one socket write (TurnCork). */
  private writeFrame(frame: readonly Uint8Array[]): boolean {
    this.socketCork.hold();
    let flushed = true;
    for (const piece of frame) flushed = this.socket.write(piece);
    return flushed;
  }

  /** Sends the tunnel-open frame: an empty data frame, the client's first. */
  open(): void {
    this.writeFrame(sealFrame(this.send, FrameType.data));
  }

  override _final(callback: (error?: Error | null) => void): void {
    for (const piece of sealFrame(this.send, FrameType.close)) this.socket.write(piece);
    this.socket.end(() => callback());
  }

  override _read(): void {
    this.socket.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.socket.destroyed) this.socket.destroy();
    callback(error);
  }

  private onSocketData(data: Buffer): void {
    if (this.destroyed) return;
    if (this.receivedClose) {
      this.destroy(new FrameError('data after the close frame'));
      return;
    }
    let frames;
    try {
      frames = this.reader.push(data);
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    for (const frame of frames) {
      if (this.destroyed) return;
      if (!this.receivedOpen) {
        // The client's first frame must be the tunnel-open frame: an empty data frame.
        this.receivedOpen = true;
        this.emit('tunnel-open', frame.type === FrameType.data && frame.content.length === 0);
      }
      if (frame.type === FrameType.rekey) {
        this.rekeysReceived++;
      } else if (frame.type === FrameType.data || frame.type === FrameType.rawRun) {
        if (frame.type === FrameType.rawRun) this.rawOctetsReceived += byteLength(frame.content);
        let room = true;
        for (const piece of frame.content) room = this.push(piece);
        if (!room) this.socket.pause();
      } else if (frame.type === FrameType.close) {
        this.finishReading();
      }
    }
  }

  /**
   * The TCP connection ended. Expected after either side's close frame (the receiver of a close
   * frame closes the connection once it has answered what came before); otherwise an abort.
   */
  private onSocketClosed(): void {
    if (this.receivedClose) return;
    if (this.writableEnded) this.destroy();
    else this.destroy(new FrameError('connection closed without a close frame'));
  }

  /**
   * The peer sends nothing more, but may still be waiting for replies to what came before: only
   * the readable side ends. The connection closes once our side has ended too (autoDestroy).
   */
  private finishReading(): void {
    this.receivedClose = true;
    this.push(null);
  }
}
