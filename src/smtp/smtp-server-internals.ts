/**
 * The one place that reaches into smtp-server's private members (3.21.6, pinned exactly in
 * package.json), with data-feed.ts, its parser's data mode: every other file works through the
 * hooks and accessors below, named for what they are. test/unit/smtp-server-internals.test.ts
 * checks that each member named in SMTP_SERVER_MEMBERS still exists, and fails naming the one an
 * smtp-server update removed.
 *
 * What is relied on: send() is the single write site of replies; _nextHandler takes continuation
 * lines; handler_<VERB> is how a verb is dispatched and _isSupported whether it is offered;
 * upgrade() is the model for retiring a parser; the parser's 'finish' comes once every command
 * received has been answered; in data mode the parser feeds octets through _feedDataStream.
 */
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { TurnCork } from '../turn-cork.js';
import { installCommandFeed } from './command-feed.js';
import { installDataFeed, type ParserCallback } from './data-feed.js';

export type { ParserCallback } from './data-feed.js';

/** The smtp-server version this file was written against. */
export const SMTP_SERVER_VERSION = '3.21.6';

/** The private members used here, by the class that has them (checked by the unit test). */
export const SMTP_SERVER_MEMBERS = {
  SMTPServer: ['connections', 'options', 'logger', 'connect', '_closeTimeout', '_onError', '_onClientConnect'],
  SMTPConnection: [
    '_server',
    '_socket',
    '_parser',
    '_dataStream',
    '_nextHandler',
    '_ready',
    '_closing',
    '_closed',
    '_setListeners',
    'connectionReady',
    'send',
    '_sendGreeting',
    '_onCommand',
    '_isSupported',
    '_whenWritable',
    '_resetSession',
    '_onClose',
    '_createParser',
    'upgrade',
    'handler_EHLO',
    'handler_DATA',
  ],
  SMTPStream: [
    'isClosed',
    '_dataMode',
    '_dataStream',
    '_atDataStart',
    '_lastBytes',
    '_continueCallback',
    '_countDataBytes',
    '_feedDataStream',
    '_endDataMode',
    '_write',
  ],
} as const;

/** A handler of a command (or, as a continuation, of the next line): calls back once the line is dealt with. */
export type LineHandler = (line: Buffer, callback: () => void) => void;
type ReplyData = string | string[] | null | undefined;

/**
 * smtp-server's connection with its private hooks turned into protected ones. Each hook does
 * what smtp-server does unless a subclass overrides it (and calls super for the original).
 *
 * It also greets at once, without smtp-server's 100 ms early-talker wait: Postfix's smtpd does
 * not make it either (postscreen's pregreet test is the place for that). The wait capped new
 * sessions at 10 per second per concurrent client. A subclass may refuse the connection first
 * (admit()).
 */
export class SmtpServerConnection extends SMTPConnection {
  private cork: TurnCork | undefined;

  // --- Hooks -------------------------------------------------------------------------------

  /** Whether to greet the client (perhaps later); a subclass that refuses has sent its reply. */
  protected admit(): boolean | Promise<boolean> {
    return true;
  }

  /** Sends a reply: smtp-server's single write site. */
  protected sendReply(code: number, data?: ReplyData, context?: string | false): void {
    super.send(code, data, context);
  }

  protected sendGreeting(): void {
    super._sendGreeting();
  }

  /** A command line as the parser delivers it (or a continuation line, see continuation). */
  protected handleCommand(command: Buffer, callback?: () => void): void {
    super._onCommand(command, callback);
  }

  /** Whether a verb is offered (has a handler and is not disabled). */
  protected supports(verb: string): boolean {
    return super._isSupported(verb);
  }

  protected handleEhlo(command: Buffer, callback: () => void): void {
    super.handler_EHLO(command, callback);
  }

  /** DATA: on success the session is in data mode and messageStream is set. */
  protected handleData(command: Buffer, callback: () => void): void {
    super.handler_DATA(command, callback);
  }

  /** After each transaction (final reply to DATA, RSET, EHLO). */
  protected resetSession(): void {
    super._resetSession();
  }

  protected handleClose(): void {
    super._onClose();
  }

  /** The TLS socket after STARTTLS, before the session goes on over it. */
  protected afterStartTls(): void {}

  /** Each new command parser (one per socket: the plain one, the TLS one after STARTTLS). */
  protected parserCreated(_parser: CommandParser): void {}

  /** Makes `verb` a command of this session, handled by `handler` (smtp-server looks up handler_<VERB>). */
  protected addVerb(verb: string, handler: LineHandler): void {
    (this as unknown as Record<string, LineHandler>)[`handler_${verb}`] = handler;
  }

  // --- Accessors ---------------------------------------------------------------------------

  /** The server this connection belongs to. */
  protected get server(): SMTPServer {
    return this._server;
  }

  /** The client's socket (or stream standing for it, e.g. a tunnel). */
  protected get socket(): Socket {
    return this._socket;
  }

  /** What handles the next line instead of the command dispatch (false: none); a multi-line exchange sets it. */
  protected get continuation(): LineHandler | false {
    return this._nextHandler;
  }

  protected set continuation(handler: LineHandler | false) {
    this._nextHandler = handler;
  }

  /** Whether the greeting has been sent. */
  protected get greeted(): boolean {
    return this._ready;
  }

  /** Whether the session is closing or closed. */
  protected get closing(): boolean {
    return this._closing || this._closed;
  }

  /** Whether the server is being closed (it refuses every new command). */
  protected get serverClosing(): boolean {
    return this._server._closeTimeout !== false;
  }

  /** The stream the message being received goes to (onData's), if one is open. */
  protected get messageStream(): Writable | undefined {
    return this._dataStream || undefined;
  }

  /** The current command parser; undefined once retired. */
  protected get parser(): CommandParser | undefined {
    return this._parser === false ? undefined : new CommandParser(this._parser);
  }

  /** Calls `next` once the socket takes more replies. */
  protected whenWritable(next: () => void): void {
    this._whenWritable(next);
  }

  /**
   * Retires the command parser: it reads nothing more of the socket and dispatches nothing of
   * what it holds (as upgrade() does before STARTTLS).
   */
  protected retireParser(): void {
    const parser = this._parser;
    if (parser === false) return;
    this._socket.unpipe(parser);
    parser.isClosed = true;
    this._parser = false;
  }

  /** Forgets this connection in its server's count (it lives on as something else, e.g. a tunnel). */
  protected leaveServer(): void {
    this._server.connections.delete(this);
  }

  /**
   * A client may half-close right after its last command: Exim sends the end of the body, `.`,
   * QUIT and its FIN in one segment, then reads the replies. Its socket stays open
   * (keepOpenAfterClientFin; a tunnel's close frame ends only its readable side) and the parser
   * ends with the input, which it finishes once every command received has been answered: then
   * the session closes.
   */
  protected closeAfterLastReply(parser: CommandParser): void {
    parser.stream.once('finish', () => {
      if (this._parser === parser.stream && !this.closing) this.close();
    });
  }

  // --- smtp-server's members, routed to the hooks ------------------------------------------

  override init(): void {
    this._setListeners(() => {
      const admitted = this.admit();
      if (admitted === true) this.connectionReady();
      else if (admitted !== false) void admitted.then((later) => later && !this.closing && this.connectionReady());
    });
  }

  override send(code: number, data?: ReplyData, context?: string | false): void {
    this.replyCork().hold();
    this.sendReply(code, data, context);
  }

  /** Replies sent in one event-loop turn (pipelined commands answered at once) leave in one write. */
  private replyCork(): TurnCork {
    // A new one for each stream the session runs on (the TLS socket after STARTTLS).
    if (this.cork?.stream !== this._socket) this.cork = new TurnCork(this._socket);
    return this.cork;
  }

  override _sendGreeting(): void {
    this.sendGreeting();
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    this.handleCommand(command, callback);
  }

  override _isSupported(command: string): boolean {
    return this.supports(command);
  }

  override handler_EHLO(command: Buffer, callback: () => void): void {
    this.handleEhlo(command, callback);
  }

  override handler_DATA(command: Buffer, callback: () => void): void {
    this.handleData(command, callback);
  }

  override _resetSession(): void {
    this.resetSession();
  }

  override _onClose(): void {
    this.handleClose();
  }

  override upgrade(callback: () => void, secureCallback?: () => void): void {
    super.upgrade(callback, () => {
      this.afterStartTls();
      secureCallback?.();
    });
  }

  override _createParser(): SMTPStream {
    const parser = super._createParser();
    installCommandFeed(parser);
    installDataFeed(parser);
    this.parserCreated(new CommandParser(parser));
    return parser;
  }
}

/** smtp-server's command parser (SMTPStream), as BDAT reads a chunk's octets through it. */
export class CommandParser {
  constructor(readonly stream: SMTPStream) {}

  /** In data mode the parser passes octets to feedData (see interceptData) instead of parsing commands. */
  set dataMode(on: boolean) {
    this.stream._dataMode = on;
  }

  /** The stream of the message being received. */
  get dataStream(): Writable | null {
    return this.stream._dataStream;
  }

  /**
   * Has `feed` receive the octets of data mode; it may pass them on to the parser's own handling
   * (`own`: dot-unstuffing up to the end-of-data line).
   */
  interceptData(feed: (octets: Buffer, done: ParserCallback, own: (octets: Buffer, done: ParserCallback) => void) => void): void {
    const own = this.stream._feedDataStream.bind(this.stream);
    this.stream._feedDataStream = (octets, done) => feed(octets, done, own);
  }

  /** Counts octets of the message (SIZE, and the stream's byteLength). */
  countDataBytes(length: number): void {
    this.stream._countDataBytes(length);
  }

  /** Ends data mode with `octets` as the message's last, and parses `rest` as commands once the final reply is sent. */
  endDataMode(octets: Buffer, rest: Buffer, done: ParserCallback): void {
    this.stream._endDataMode(octets, rest, done);
  }

  /** Ends the message stream now; the parser reads the next command once `resume` is called (by the final reply). */
  endMessage(resume: () => void): void {
    const stream = this.stream._dataStream!;
    this.stream._dataStream = null;
    this.stream._continueCallback = resume;
    stream.end();
  }

  /** Parses `octets` as command input. */
  readCommands(octets: Buffer, done: ParserCallback): void {
    this.stream._write(octets, 'buffer', done);
  }
}

/** An SMTPServer whose connections greet at once. */
export class PromptServer extends SMTPServer {
  override connect(socket: Socket, socketOptions?: object | null): void {
    startConnection(this, new SmtpServerConnection(this, socket, socketOptions ?? {}));
  }
}

/** What SMTPServer.connect does with a new connection, for subclasses with a connection class of their own. */
export function startConnection(server: SMTPServer, connection: SMTPConnection): void {
  server.connections.add(connection);
  connection.on('error', (err: Error) => server._onError(err));
  connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) => server._onClientConnect(data));
  connection.init();
}

/**
 * A client that half-closed must still get its replies (closeAfterLastReply): its FIN must not
 * end our side too (allowHalfOpen), and smtp-server writes only to a socket whose readyState is
 * 'open', where a half-closed one says 'writeOnly'. A Tunnel does both itself.
 */
export function keepOpenAfterClientFin(socket: Socket): void {
  if (!(socket instanceof Socket)) return;
  socket.allowHalfOpen = true;
  Object.defineProperty(socket, 'readyState', { configurable: true, get: () => (socket.writable ? 'open' : 'closed') });
}
