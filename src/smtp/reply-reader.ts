/**
 * Reads SMTP replies (RFC 5321 section 4.2) from a stream, keeping their exact octets for the
 * prologue. Lines end in CRLF; a line over the caller's limit, a multi-line reply over
 * MAX_REPLY_LINES, or a malformed line is a ReplyError: the peer is not speaking SMTP to us.
 *
 * While no reply is awaited the server has nothing to say: more than MAX_UNREAD_REPLY_OCTETS
 * held unread is a ReplyError too, and the stream is destroyed with it, so a peer that floods
 * an idle session or one sending message data costs one bounded buffer, not memory without end.
 */
import type { Duplex } from 'node:stream';
import { MAX_REPLY_LINES, MAX_UNREAD_REPLY_OCTETS } from './limits.js';

export interface Reply {
  code: number;
  /** The text of each line, after the code and its separator. */
  lines: string[];
  /** The whole reply as received, CRLFs included. */
  raw: Buffer;
}

export class ReplyError extends Error {
  override readonly name = 'ReplyError';
}

const REPLY_LINE = /^([2-5][0-9][0-9])(?:([ -])(.*))?$/s;

interface PendingRead {
  maxLine: number;
  resolve: (reply: Reply) => void;
  reject: (err: Error) => void;
}

export class ReplyReader {
  private buffer: Buffer = Buffer.alloc(0);
  private pending: PendingRead | undefined;
  private failure: Error | undefined;
  private readonly onData = (data: Buffer): void => {
    this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
    if (this.pending === undefined && this.buffer.length > MAX_UNREAD_REPLY_OCTETS) {
      this.violate(`${this.buffer.length} octets received while no reply was awaited`);
      return;
    }
    this.tryResolve();
  };
  private readonly onEnd = (): void => this.fail(new ReplyError('connection closed while waiting for a reply'));
  private readonly onError = (err: Error): void => this.fail(err);

  constructor(private readonly stream: Duplex) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
  }

  /** The next whole reply; each of its lines at most `maxLine` octets with CRLF. */
  read(maxLine: number): Promise<Reply> {
    if (this.pending !== undefined) throw new ReplyError('a reply is already being read');
    return new Promise<Reply>((resolve, reject) => {
      this.pending = { maxLine, resolve, reject };
      this.tryResolve();
    });
  }

  /** Stops reading; returns the octets received after the last reply read (the caller decides on them). */
  detach(): Buffer {
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    this.stream.off('error', this.onError);
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return rest;
  }

  /** Stops buffering and closes the stream: the peer broke the protocol. */
  private violate(reason: string): void {
    const error = new ReplyError(reason);
    this.stream.off('data', this.onData);
    this.buffer = Buffer.alloc(0);
    this.fail(error);
    this.stream.destroy(error);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.tryResolve();
  }

  private tryResolve(): void {
    const pending = this.pending;
    if (pending === undefined) return;
    let result: Reply | undefined;
    try {
      result = this.parse(pending.maxLine);
    } catch (err) {
      this.pending = undefined;
      pending.reject(err as Error);
      return;
    }
    if (result !== undefined) {
      this.pending = undefined;
      pending.resolve(result);
    } else if (this.failure !== undefined) {
      this.pending = undefined;
      pending.reject(this.failure);
    }
  }

  /** A whole reply from the buffer, consuming it, or undefined if it is not all there yet. */
  private parse(maxLine: number): Reply | undefined {
    const lines: string[] = [];
    let code: string | undefined;
    let offset = 0;
    for (;;) {
      const end = this.buffer.indexOf('\r\n', offset, 'latin1');
      const lineLength = (end < 0 ? this.buffer.length : end) - offset + 2;
      if (lineLength > maxLine + (end < 0 ? 1 : 0)) {
        throw new ReplyError(`reply line ${lines.length + 1}: longer than ${maxLine} octets`);
      }
      if (end < 0) return undefined;
      const line = this.buffer.toString('latin1', offset, end);
      const match = REPLY_LINE.exec(line);
      if (match === null || /[\r\n]/.test(line))
        throw new ReplyError(`reply line ${lines.length + 1}: not an SMTP reply line: ${JSON.stringify(line.slice(0, 80))}`);
      if (code !== undefined && match[1] !== code) throw new ReplyError(`reply line ${lines.length + 1}: code ${match[1]} after ${code}`);
      code = match[1]!;
      lines.push(match[3] ?? '');
      offset = end + 2;
      if (match[2] !== '-') break;
      if (lines.length >= MAX_REPLY_LINES) throw new ReplyError(`reply longer than ${MAX_REPLY_LINES} lines`);
    }
    const raw = this.buffer.subarray(0, offset);
    this.buffer = this.buffer.subarray(offset);
    return { code: Number(code), lines, raw: Buffer.from(raw) };
  }
}
