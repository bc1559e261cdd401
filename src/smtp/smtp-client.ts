/**
 * A small SMTP client for one hop: one command, one reply, replies returned verbatim (code,
 * enhanced status code, text), message data streamed with dot-stuffing and backpressure. It runs
 * over any duplex stream: a TCP socket, a TLS socket after STARTTLS, or an XPONY tunnel.
 *
 * Every failure of the hop itself is an SmtpClientError, so the caller can tell "the server said
 * no" (a reply) from "the server could not be asked" (an error). Each error names the peer.
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { TurnCork } from '../turn-cork.js';
import { DotStuffer } from './dot-stuffer.js';
import { MAX_REPLY_LINE } from './limits.js';
import { asReplyText } from './reply-text.js';
import { ReplyError, ReplyReader } from './reply-reader.js';

const ENHANCED_CODE = /^([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: |$)/;

export interface SmtpReply {
  code: number;
  /** The enhanced status code (RFC 3463) at the start of the first line, if any. */
  enhancedCode: string | undefined;
  /** The text of each line after the code and its separator, enhanced code included. */
  lines: string[];
}

export type SmtpClientErrorKind = 'connect' | 'timeout' | 'closed' | 'protocol' | 'tls';

export class SmtpClientError extends Error {
  override readonly name = 'SmtpClientError';
  constructor(
    readonly kind: SmtpClientErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** A server over TCP (`host`, `port`) or a unix-domain socket (`path`). */
export type SmtpEndpoint = (
  { host: string; port: number; /** The address to connect from; default: the kernel's choice. */ localAddress?: string } | { path: string }
) & {
  /** For the connect and for each reply. */
  timeoutMs: number;
  /** Names the peer in errors, e.g. "postfix" or "mx1.example.org". */
  label?: string;
};

export function parseEnhancedCode(lines: readonly string[]): string | undefined {
  return ENHANCED_CODE.exec(lines[0] ?? '')?.[1];
}

/** A reply as one line of text: its lines joined, enhanced code first. */
export function replyText(reply: SmtpReply): string {
  return reply.lines.join(' ');
}

/** "CODE text", for logs and error messages. */
export function formatReply(reply: SmtpReply): string {
  return `${reply.code} ${replyText(reply)}`;
}

export class SmtpClient {
  private readonly stuffer = new DotStuffer();
  private failure: SmtpClientError | undefined;
  private readonly cork: TurnCork;

  private constructor(
    private readonly stream: Duplex,
    private readonly reader: ReplyReader,
    private readonly where: string,
    private readonly timeoutMs: number,
    /** The 220 greeting (or the 220 to STARTTLS, for a client after the upgrade). */
    readonly greeting: SmtpReply,
  ) {
    this.cork = new TurnCork(stream);
    // A read in progress reports its own error; this one is for the next command (e.g. the reader
    // closed an idle session the server flooded).
    stream.on(
      'error',
      (err: Error) => (this.failure ??= new SmtpClientError(err instanceof ReplyError ? 'protocol' : 'closed', `${this.where}: ${err.message}`)),
    );
    stream.on('close', () => (this.failure ??= new SmtpClientError('closed', `${this.where}: connection closed`)));
  }

  /**
   * Connects (TCP or unix socket) and reads the greeting (any code: the caller decides what a 421 or 554 means).
   * `preamble`, when given, is written first, before the server's greeting (a PROXY protocol line).
   */
  static async open(endpoint: SmtpEndpoint, preamble?: (socket: Socket) => string): Promise<SmtpClient> {
    const where = describeEndpoint(endpoint);
    const socket =
      'path' in endpoint
        ? connect({ path: endpoint.path })
        : connect({ host: endpoint.host, port: endpoint.port, ...(endpoint.localAddress === undefined ? {} : { localAddress: endpoint.localAddress }) });
    if (!('path' in endpoint)) socket.setNoDelay(true);
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('error', (err: Error) => reject(new SmtpClientError('connect', `${where}: ${err.message}`)));
        }),
        endpoint.timeoutMs,
        () => new SmtpClientError('timeout', `${where}: no connection within ${endpoint.timeoutMs} ms`),
      );
      if (preamble !== undefined) socket.write(preamble(socket), 'latin1');
      return await SmtpClient.over(socket, endpoint);
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /** A session on a stream that is already connected: reads the greeting, or takes the one already read. */
  static async over(stream: Duplex, endpoint: SmtpEndpoint, greeting?: SmtpReply): Promise<SmtpClient> {
    const where = describeEndpoint(endpoint);
    const reader = new ReplyReader(stream);
    stream.resume(); // a stream handed over paused (as the XPONY client leaves it) flows again
    const first = greeting ?? (await readReply(reader, where, endpoint.timeoutMs, 'greeting'));
    return new SmtpClient(stream, reader, where, endpoint.timeoutMs, first);
  }

  get closed(): boolean {
    return this.failure !== undefined || this.stream.destroyed;
  }

  /** Sends one command line (without CRLF) and resolves with the reply. */
  async command(line: string): Promise<SmtpReply> {
    return (await this.pipeline([line]))[0]!;
  }

  /**
   * Sends command lines together, in one write, and resolves with their replies in order: only
   * for a server that offers PIPELINING (RFC 2920), and only commands it lets a group hold.
   */
  async pipeline(lines: readonly string[]): Promise<SmtpReply[]> {
    this.assertOpen();
    for (const line of lines) {
      // A line end inside would smuggle a second command into the session.
      if (/[\r\n]/.test(line)) throw new SmtpClientError('protocol', `${this.where}: command ${JSON.stringify(line.slice(0, 80))}: contains CR or LF`);
    }
    for (const line of lines) this.send(Buffer.from(`${line}\r\n`, 'utf8'));
    const replies: SmtpReply[] = [];
    for (const line of lines) replies.push(await this.read(line.split(' ', 1)[0]!.toUpperCase()));
    return replies;
  }

  /**
   * STARTTLS (RFC 3207): on 220 the session continues over TLS and the new client is returned;
   * any other reply is returned as it is and this client stays usable. A failed or timed-out TLS
   * handshake (including a certificate `tls` refuses) is an SmtpClientError of kind 'tls'.
   */
  async startTls(tls: ConnectionOptions): Promise<SmtpClient | SmtpReply> {
    const reply = await this.command('STARTTLS');
    if (reply.code !== 220) return reply;
    // Octets after the 220 were sent before the TLS handshake: a plaintext injection, dropped.
    this.reader.detach();
    const socket = this.stream as Socket;
    const secure: TLSSocket = tlsConnect({ ...tls, socket });
    try {
      await withTimeout(
        new Promise<void>((resolve, reject) => {
          secure.once('secureConnect', resolve);
          secure.once('error', (err: Error) => reject(new SmtpClientError('tls', `${this.where}: TLS handshake: ${asReplyText(err.message)}`)));
        }),
        this.timeoutMs,
        // A TLS failure like any other: opportunistic TLS retries in plaintext (Postfix's "may").
        () => new SmtpClientError('tls', `${this.where}: TLS handshake: none within ${this.timeoutMs} ms`),
      );
    } catch (err) {
      secure.destroy();
      this.failure ??= err as SmtpClientError;
      throw err;
    }
    return new SmtpClient(secure, new ReplyReader(secure), this.where, this.timeoutMs, reply);
  }

  /** The stream the session runs on (a TLSSocket after STARTTLS). */
  get transport(): Duplex {
    return this.stream;
  }

  /** Writes message octets (after a 354), dot-stuffed; false: wait for onDrain before more. */
  writeData(chunk: Buffer): boolean {
    this.assertOpen();
    return this.send(this.stuffer.stuff(chunk));
  }

  /** Calls back once the stream can take more data, or has failed. */
  onDrain(callback: () => void): void {
    if (this.closed) {
      callback();
      return;
    }
    const done = (): void => {
      this.stream.off('drain', done);
      this.stream.off('close', done);
      callback();
    };
    this.stream.on('drain', done);
    this.stream.on('close', done);
  }

  /**
   * Sends one BDAT chunk (RFC 3030), its command line and octets together; its reply is read
   * with nextReply(), so that chunks can follow without waiting. The octets may come in pieces,
   * which are written as they are, not joined. false: wait for onDrain.
   */
  writeChunk(octets: readonly Buffer[], last: boolean): boolean {
    this.assertOpen();
    let length = 0;
    for (const piece of octets) length += piece.length;
    let ready = this.send(Buffer.from(`BDAT ${length}${last ? ' LAST' : ''}\r\n`, 'latin1'));
    for (const piece of octets) ready = this.send(piece);
    return ready;
  }

  /** Reads the reply to a command sent without waiting for it (writeChunk). */
  nextReply(what: string): Promise<SmtpReply> {
    this.assertOpen();
    return this.read(what);
  }

  /** Sends the end-of-data marker and resolves with the final reply. */
  async endData(): Promise<SmtpReply> {
    this.assertOpen();
    this.send(this.stuffer.end());
    return this.read('end of data');
  }

  /**
   * Writes octets; those written in the same event-loop turn leave together (TurnCork):
   * pipelined commands, and a message's last octets with the end-of-data marker that a promise
   * continuation sends after them.
   */
  private send(octets: Buffer): boolean {
    this.cork.hold();
    return this.stream.write(octets);
  }

  /** QUIT without waiting for the reply, then close. */
  quit(): void {
    if (this.closed) return;
    this.stream.end('QUIT\r\n');
    const timer = setTimeout(() => this.stream.destroy(), this.timeoutMs);
    timer.unref();
    this.stream.once('close', () => clearTimeout(timer));
  }

  /** Drops the connection once what was written has left: a transaction in progress is discarded by the server. */
  destroy(): void {
    this.failure ??= new SmtpClientError('closed', `${this.where}: connection dropped`);
    // What was written this turn waits in the cork (send()); it leaves before the connection
    // drops, so a relay that drops Postfix mid-message has passed on every octet it wrote.
    this.cork.release();
    this.stream.destroy();
  }

  private assertOpen(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.stream.destroyed) throw new SmtpClientError('closed', `${this.where}: connection closed`);
  }

  private async read(what: string): Promise<SmtpReply> {
    try {
      return await readReply(this.reader, this.where, this.timeoutMs, `reply to ${what}`);
    } catch (err) {
      this.failure ??= err as SmtpClientError;
      this.stream.destroy();
      throw err;
    }
  }
}

/** Where an endpoint is: `HOST:PORT` (IPv6 in brackets) or `unix:/path`. */
export function endpointAddress(endpoint: SmtpEndpoint): string {
  return 'path' in endpoint ? `unix:${endpoint.path}` : `${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;
}

function describeEndpoint(endpoint: SmtpEndpoint): string {
  const address = endpointAddress(endpoint);
  return endpoint.label === undefined ? address : `${endpoint.label} ${address}`;
}

async function readReply(reader: ReplyReader, where: string, timeoutMs: number, what: string): Promise<SmtpReply> {
  try {
    const reply = await withTimeout(
      reader.read(MAX_REPLY_LINE),
      timeoutMs,
      () => new SmtpClientError('timeout', `${where}: no ${what} within ${timeoutMs} ms`),
    );
    return { code: reply.code, enhancedCode: parseEnhancedCode(reply.lines), lines: reply.lines };
  } catch (err) {
    if (err instanceof SmtpClientError) throw err;
    const message = (err as Error).message;
    throw new SmtpClientError(
      err instanceof Error && err.name === 'ReplyError' && !/closed/.test(message) ? 'protocol' : 'closed',
      `${where}: ${what}: ${message}`,
    );
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
