/**
 * The encrypted tunnel after the switch point: a Duplex stream of SMTP bytes over a socket that
 * carries only frames. Writes become data frames; received frames are authenticated before a
 * single byte of their content is pushed. Any bad frame destroys the tunnel and the socket at once.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { byteLength } from '../crypto/primitives.js';
import { FrameReader, FrameType, FrameError, frameContents, sealFrame, type TransportCipher } from './frames.js';
import { REKEY_AFTER_BYTES } from './limits.js';

export interface TunnelOptions {
  socket: Socket;
  send: TransportCipher;
  receive: TransportCipher;
  /** Bytes that arrived on the socket after the switch point and belong to the tunnel. */
  initial?: Buffer;
}

export class Tunnel extends Duplex {
  readonly socket: Socket;
  private readonly send: TransportCipher;
  private readonly reader: FrameReader;
  private sentSinceRekey = 0;
  private receivedClose = false;
  private receivedOpen = false;
  /** The socket is corked until the end of this event-loop turn (see writeFrame). */
  private corked = false;
  /** Rekey frames sent and received: each one erased a key (forward secrecy); tests count them. */
  rekeysSent = 0;
  rekeysReceived = 0;

  constructor(options: TunnelOptions) {
    // allowHalfOpen: the close frame ends our readable side; the writable side ends with our own.
    super({ allowHalfOpen: true });
    this.socket = options.socket;
    this.send = options.send;
    this.reader = new FrameReader(options.receive);
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

  /** Switches this side's sending key to a fresh one derived from the old (forward secrecy). */
  rekey(): void {
    if (this.destroyed || this.writableEnded) return;
    this.writeFrame(sealFrame(this.send, FrameType.rekey));
    this.send.rekey();
    this.sentSinceRekey = 0;
    this.rekeysSent++;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeFrames([chunk], callback);
  }

  /** Writes buffered together (a corked writer) share frames: fewer frames, one socket write. */
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.writeFrames(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  /** Sends the chunks in full data frames (frames.ts frameContents), rekeying between frames when due. */
  private writeFrames(chunks: Buffer[], callback: (error?: Error | null) => void): void {
    let flushed = true;
    try {
      for (const content of frameContents(chunks)) {
        flushed = this.writeFrame(sealFrame(this.send, FrameType.data, content));
        this.sentSinceRekey += byteLength(content);
        if (this.sentSinceRekey >= REKEY_AFTER_BYTES) this.rekey();
      }
    } catch (err) {
      callback(err as Error);
      return;
    }
    if (flushed) callback();
    else this.socket.once('drain', () => callback());
  }

  /**
   * Frames written in one event-loop turn leave in one socket write, one system call: a reply
   * and the rekey frame after it, a command and the data before it. The socket stays corked
   * until the turn's I/O is done (setImmediate), no longer.
   */
  private writeFrame(frame: readonly Uint8Array[]): boolean {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
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
      } else if (frame.type === FrameType.data) {
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
