/**
 * A small SMTP client for the one hop blackpony -> Postfix: one command, one reply, replies
 * returned verbatim (code, enhanced status code, text), message data streamed with
 * dot-stuffing and backpressure. Every failure of the hop itself is a PostfixError, so the
 * caller can tell "Postfix said no" (a reply) from "Postfix could not be asked" (an error).
 */
import { connect, type Socket } from 'node:net';
import { ReplyReader } from '../protocol/reply-reader.js';
import { DotStuffer } from './dot-stuffer.js';

/** RFC 5321 section 4.5.3.1.5: 512 octets, but be lenient with a local Postfix's long texts. */
const MAX_REPLY_LINE = 4096;
const ENHANCED_CODE = /^([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: |$)/;

export interface PostfixReply {
  code: number;
  /** The enhanced status code (RFC 3463) at the start of the first line, if any. */
  enhancedCode: string | undefined;
  /** The text of each line after the code and its separator, enhanced code included. */
  lines: string[];
}

export type PostfixErrorKind = 'connect' | 'timeout' | 'closed' | 'protocol';

export class PostfixError extends Error {
  override readonly name = 'PostfixError';
  constructor(
    readonly kind: PostfixErrorKind,
    message: string,
  ) {
    super(`postfix: ${message}`);
  }
}

export interface PostfixEndpoint {
  host: string;
  port: number;
  /** For the TCP connect and for each reply. */
  timeoutMs: number;
}

export function parseEnhancedCode(lines: readonly string[]): string | undefined {
  return ENHANCED_CODE.exec(lines[0] ?? '')?.[1];
}

/** A reply as one line of text for the client: its lines joined, enhanced code first. */
export function replyText(reply: PostfixReply): string {
  return reply.lines.join(' ');
}

export class PostfixClient {
  private readonly reader: ReplyReader;
  private readonly stuffer = new DotStuffer();
  private failure: PostfixError | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly endpoint: PostfixEndpoint,
    /** The 220 greeting. */
    readonly greeting: PostfixReply,
    reader: ReplyReader,
  ) {
    this.reader = reader;
    socket.on('close', () => (this.failure ??= new PostfixError('closed', `${this.where}: connection closed`)));
  }

  /** Connects and reads the greeting (any code: the caller decides what a 421 or 554 means). */
  static async open(endpoint: PostfixEndpoint): Promise<PostfixClient> {
    const socket = connect({ host: endpoint.host, port: endpoint.port });
    socket.setNoDelay(true);
    const where = `${endpoint.host}:${endpoint.port}`;
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('error', (err: Error) => reject(new PostfixError('connect', `${where}: ${err.message}`)));
        }),
        endpoint.timeoutMs,
        () => new PostfixError('timeout', `${where}: no connection within ${endpoint.timeoutMs} ms`),
      );
      const reader = new ReplyReader(socket);
      socket.on('error', () => undefined); // the reader reports it
      const greeting = await readReply(reader, endpoint, 'greeting');
      return new PostfixClient(socket, endpoint, greeting, reader);
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  get closed(): boolean {
    return this.failure !== undefined || this.socket.destroyed;
  }

  /** Sends one command line (without CRLF) and resolves with the reply. */
  async command(line: string): Promise<PostfixReply> {
    this.assertOpen();
    // A line end inside would smuggle a second command into the session.
    if (/[\r\n]/.test(line)) throw new PostfixError('protocol', `command ${JSON.stringify(line.slice(0, 80))}: contains CR or LF`);
    this.socket.write(`${line}\r\n`, 'utf8');
    return this.read(line.split(' ', 1)[0]!.toUpperCase());
  }

  /** Writes message octets (after a 354), dot-stuffed; false: wait for onDrain before more. */
  writeData(chunk: Buffer): boolean {
    this.assertOpen();
    return this.socket.write(this.stuffer.stuff(chunk));
  }

  /** Calls back once the socket can take more data, or has failed. */
  onDrain(callback: () => void): void {
    if (this.closed) {
      callback();
      return;
    }
    const done = (): void => {
      this.socket.off('drain', done);
      this.socket.off('close', done);
      callback();
    };
    this.socket.on('drain', done);
    this.socket.on('close', done);
  }

  /** Sends the end-of-data marker and resolves with the final reply. */
  async endData(): Promise<PostfixReply> {
    this.assertOpen();
    this.socket.write(this.stuffer.end());
    return this.read('end of data');
  }

  /** QUIT without waiting for the reply, then close. */
  quit(): void {
    if (this.closed) return;
    this.socket.end('QUIT\r\n');
    this.socket.setTimeout(this.endpoint.timeoutMs, () => this.socket.destroy());
  }

  /** Drops the connection at once: a transaction in progress is discarded by Postfix. */
  destroy(): void {
    this.failure ??= new PostfixError('closed', `${this.where}: connection dropped`);
    this.socket.destroy();
  }

  private get where(): string {
    return `${this.endpoint.host}:${this.endpoint.port}`;
  }

  private assertOpen(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.socket.destroyed) throw new PostfixError('closed', `${this.where}: connection closed`);
  }

  private async read(what: string): Promise<PostfixReply> {
    try {
      return await readReply(this.reader, this.endpoint, `reply to ${what}`);
    } catch (err) {
      this.failure ??= err as PostfixError;
      this.socket.destroy();
      throw err;
    }
  }
}

async function readReply(reader: ReplyReader, endpoint: PostfixEndpoint, what: string): Promise<PostfixReply> {
  const where = `${endpoint.host}:${endpoint.port}`;
  try {
    const reply = await withTimeout(reader.read(MAX_REPLY_LINE), endpoint.timeoutMs, () => new PostfixError('timeout', `${where}: no ${what} within ${endpoint.timeoutMs} ms`));
    return { code: reply.code, enhancedCode: parseEnhancedCode(reply.lines), lines: reply.lines };
  } catch (err) {
    if (err instanceof PostfixError) throw err;
    const message = (err as Error).message;
    throw new PostfixError(err instanceof Error && err.name === 'ReplyError' && !/closed/.test(message) ? 'protocol' : 'closed', `${where}: ${what}: ${message}`);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
