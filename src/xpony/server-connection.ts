/**
 * One SMTP session of an XponyServer: on a plaintext session it offers `XPONY 1 2` in EHLO and
 * hands the XPONY verb to the handshake (server-handshake.ts), which at the switch point has the
 * socket, now a Tunnel, served by a fresh session of the same server; inside a tunnel it carries
 * `session.xpony`, receives the binary message with BDAT (bdat-receiver.ts) and rekeys after each
 * final reply to DATA. A handler can have its reply sent word for word (replyVerbatim,
 * src/smtp/verbatim-reply.ts).
 *
 * smtp-server's internals are reached through src/smtp/smtp-server-internals.ts only.
 */
import type { Socket } from 'node:net';
import { CommandParser, keepOpenAfterClientFin, SmtpServerConnection, takeVerbatimReply } from '../smtp/index.js';
import { BdatReceiver, type BdatSession } from './bdat-receiver.js';
import { BdatCommandError, BINARY_KEYWORD, binaryKeywordLine, CHUNKING_KEYWORD, RAW_PAYLOAD_KEYWORD } from './binary-message.js';
import type { ClientLease } from './client-limiter.js';
import { EVIDENCE_KEYWORD } from './key-evidence.js';
import type { LimitName } from './limits.js';
import { MESSAGE_ID_KEYWORD } from './message-id.js';
import { ehloKeyword, Replies, type XponyReply } from './replies.js';
import { reportClientLimit } from './server-events.js';
import { ServerHandshake, type HandshakeSession } from './server-handshake.js';
import { serverMaxBdatChunk, serverTakesRawPayload, serverVersions, type XponyConnectionOptions, type XponyServerState } from './server-options.js';
import type { XponySession, XponySessionInfo } from './session.js';
import type { Tunnel } from './tunnel.js';
import { switchToFrames } from './tunnel-switch.js';

const CRLF = Buffer.from('\r\n', 'latin1');
/** A reply text that already carries its enhanced status code (RFC 3463), e.g. a relayed one. */
const ENHANCED_CODE_FIRST = /^[245]\.[0-9]{1,3}\.[0-9]{1,3}(?: |$)/;
/**
 * A command line no SMTP client sends: it starts with a byte that is not a letter (a TLS hello, a
 * binary probe), as Postfix's default smtpd_forbidden_commands has it. Answered once, then closed,
 * rather than with a 500 per line until the unrecognized-command limit.
 */
const NOT_SMTP = /^[^A-Za-z]/;

export class XponyConnection extends SmtpServerConnection {
  /** Set inside a tunnel. */
  readonly xpony: XponySessionInfo | undefined;
  /** The octets of the greeting and of the last successful EHLO exchange, as sent and received. */
  private greeting: Buffer | undefined;
  private ehloLine: Buffer | undefined;
  private ehloReply: Buffer | undefined;
  private previousVerb: string | undefined;
  private currentVerb: string | undefined;
  private offeringXpony = false;
  private offeringMessageIds = false;
  private offeringEvidence = false;
  private offeringBinary = false;
  /** Inside the first BDAT of a transaction, which opens the data stream as DATA would, without its 354. */
  private openingChunks = false;
  private readonly bdat = new BdatReceiver(this.bdatSession());
  /** This connection's share of its client's counts (client-limiter.ts); set once admitted. */
  private lease: ClientLease | undefined;
  private readonly handshake = new ServerHandshake(this.handshakeSession());
  private awaitingFinalDataReply = false;

  constructor(server: XponyServerState, socket: Socket, options: XponyConnectionOptions) {
    super(server, socket, options);
    keepOpenAfterClientFin(socket);
    this.xpony = options.xpony;
    if (this.xpony !== undefined) (this.session as XponySession).xpony = this.xpony;
    this.addVerb('XPONY', (command, callback) => this.handleXpony(command, callback));
    this.addVerb('BDAT', (command, callback) => this.bdat.command(command, callback));
  }

  private get host(): XponyServerState {
    return this.server as XponyServerState;
  }

  /**
   * Greets at once (SmtpServerConnection): inside a tunnel every octet is authenticated anyway. The
   * client limits stay; a tunnel's session belongs to a connection already counted.
   */
  protected override admit(): boolean | Promise<boolean> {
    return this.xpony !== undefined || this.admitted();
  }

  /** Whether the server-wide and per-client connection limits let this connection in; if not, it got a 421 (which closes it). */
  private admitted(): boolean | Promise<boolean> {
    const { maxClients } = this.host.options;
    if (maxClients !== undefined && this.host.connections.size > maxClients) {
      this.refuseForLimit('max_clients', Replies.tooManyClients(this.name));
      return false;
    }
    const admission = this.host.clientLimiter.connect(this.remoteAddress);
    return admission instanceof Promise ? admission.then((answer) => this.take(answer)) : this.take(admission);
  }

  /** The client limits' answer: a lease held while the connection lasts, or the limit's 421. */
  private take(admission: ClientLease | LimitName): boolean {
    if (typeof admission === 'string') {
      const reply =
        admission === 'max_clients'
          ? Replies.tooManyClients(this.name)
          : admission === 'connections_per_client'
            ? Replies.tooManyConnections(this.name, this.remoteAddress)
            : Replies.connectionRate(this.name, this.remoteAddress);
      this.refuseForLimit(admission, reply);
      return false;
    }
    // Gone while a shared count answered: its close came first (handleClose), nothing to hold.
    if (this.socket.destroyed) {
      admission.release();
      return false;
    }
    this.lease = admission;
    return true;
  }

  protected override sendReply(code: number, data?: string | string[] | null, context?: string | false): void {
    if (this.handshake.switched) return; // the plaintext session is over and says nothing more
    const verbatim = takeVerbatimReply(this.session, code);
    if (verbatim !== undefined) {
      // Lines as given; a 421 still closes the session (send() decides that by the code).
      super.sendReply(verbatim.code, [...verbatim.lines], false);
      return;
    }
    if (this.offeringXpony && code === 250 && Array.isArray(data)) data = [...data, ehloKeyword(serverVersions(this.host.xponyOptions))];
    if (this.offeringMessageIds && code === 250 && Array.isArray(data)) data = [...data, MESSAGE_ID_KEYWORD];
    if (this.offeringEvidence && code === 250 && Array.isArray(data)) data = [...data, EVIDENCE_KEYWORD];
    if (this.offeringBinary && code === 250 && Array.isArray(data)) {
      data = [...data, CHUNKING_KEYWORD, binaryKeywordLine(serverMaxBdatChunk(this.host.xponyOptions))];
      if (serverTakesRawPayload(this.host.xponyOptions)) data = [...data, RAW_PAYLOAD_KEYWORD];
    }
    if (this.openingChunks && code === 354) return;
    // smtp-server would put a second code in front.
    if (typeof data === 'string' && ENHANCED_CODE_FIRST.test(data)) context = false;
    super.sendReply(code, data, context);
  }

  protected override sendGreeting(): void {
    this.greeting = this.captureWrites(() => super.sendGreeting());
  }

  protected override handleCommand(command: Buffer, callback?: () => void): void {
    if (this.continuation === false && this.greeted && NOT_SMTP.test(command.toString('latin1', 0, 1))) {
      this.send(421, '4.7.0 Error: not an SMTP command, closing connection', false); // 421 closes
      return;
    }
    if (this.continuation === false) {
      this.previousVerb = this.currentVerb;
      this.currentVerb = (command.toString('latin1').split(' ')[0] ?? '').toUpperCase();
    }
    if (this.bdat.chunking && this.currentVerb !== 'BDAT') {
      this.bdat.refuse(new BdatCommandError(421, `4.5.0 Error: ${this.currentVerb} between BDAT chunks; transaction discarded, closing`, true));
      callback?.();
      return;
    }
    if (this.continuation === false && this.currentVerb === 'BDAT' && this.serverClosing && this.binaryTransaction()) {
      // A stopping server refuses every command (421), and each BDAT chunk is one: the transaction
      // in progress ends as a DATA in progress does, and the next command gets the 421.
      this.bdat.command(command, () => this.whenWritable(callback ?? (() => undefined)));
      return;
    }
    super.handleCommand(command, callback);
  }

  protected override supports(command: string): boolean {
    if (this.xpony !== undefined && command.trim().toUpperCase() === 'STARTTLS') return false;
    return super.supports(command);
  }

  protected override handleEhlo(command: Buffer, callback: () => void): void {
    this.ehloReply = undefined;
    this.offeringXpony = this.xpony === undefined && !this.secure && !this.host.options.lmtp && this.supports('XPONY');
    this.offeringMessageIds = this.xpony !== undefined && this.host.xponyOptions.offerMessageIds === true;
    this.offeringEvidence = this.xpony !== undefined;
    this.offeringBinary = this.xpony !== undefined && this.host.xponyOptions.offerBinary !== false;
    let reply: Buffer;
    try {
      reply = this.captureWrites(() => super.handleEhlo(command, () => undefined));
    } finally {
      this.offeringXpony = false;
      this.offeringMessageIds = false;
      this.offeringEvidence = false;
      this.offeringBinary = false;
    }
    if (/^250[ -]/.test(reply.toString('latin1', 0, 4))) {
      this.ehloReply = reply;
      this.ehloLine = Buffer.concat([command, CRLF]);
    }
    callback();
  }

  protected override handleData(command: Buffer, callback: () => void): void {
    if (this.binaryTransaction()) {
      this.send(503, `5.5.1 Error: ${BINARY_KEYWORD} transaction: send the message with BDAT`, false);
      callback();
      return;
    }
    this.openData(command, callback);
  }

  private openData(command: Buffer, callback: () => void): void {
    super.handleData(command, callback);
    // In DATA mode now: the final reply is followed by resetSession(), where the server rekeys.
    if (this.xpony !== undefined && this.messageStream !== undefined) this.awaitingFinalDataReply = true;
  }

  /** Whether the transaction's MAIL FROM carried XPONY-BINARY inside a tunnel that offers it. */
  private binaryTransaction(): boolean {
    const mailFrom = this.session.envelope.mailFrom;
    return (
      this.xpony !== undefined &&
      this.host.xponyOptions.offerBinary !== false &&
      mailFrom !== false &&
      mailFrom.args !== false &&
      mailFrom.args?.[BINARY_KEYWORD] === true
    );
  }

  protected override resetSession(): void {
    super.resetSession();
    this.bdat.reset();
    (this.session as XponySession).binaryMessage = false;
    if (this.awaitingFinalDataReply) {
      this.awaitingFinalDataReply = false;
      (this.socket as unknown as Tunnel).rekey();
    }
  }

  /**
   * The TCP connection closed (or, after STARTTLS, the TLS socket over it); after XPONY the plain
   * session still hears it, so the lease lasts through a tunnel's whole life. Released here, not
   * on the socket's own 'close': STARTTLS removes every listener of the plain socket.
   */
  protected override handleClose(): void {
    this.lease?.release();
    this.handshake.close();
    super.handleClose();
  }

  /** The TLS socket after STARTTLS, like the plain one. */
  protected override afterStartTls(): void {
    keepOpenAfterClientFin(this.socket);
  }

  /** A half-closed client gets its replies (closeAfterLastReply); a BDAT chunk's octets go to the receiver. */
  protected override parserCreated(parser: CommandParser): void {
    parser.interceptData((octets, done, own) => (this.bdat.readingChunk ? this.bdat.feed(parser, octets, done) : own(octets, done)));
    this.closeAfterLastReply(parser);
  }

  private handleXpony(command: Buffer, callback: () => void): void {
    const refusal = this.refusalNow();
    if (refusal !== undefined) {
      this.handshake.refuse(refusal, callback);
      return;
    }
    this.handshake.start(command, { greeting: this.greeting!, ehloLine: this.ehloLine!, ehloReply: this.ehloReply! }, callback);
  }

  /** Why XPONY may not run now, if it may not. */
  private refusalNow(): XponyReply | undefined {
    if (this.xpony !== undefined) return Replies.badSequence('not allowed inside a tunnel');
    if (this.secure) return Replies.badSequence('not allowed after STARTTLS');
    if (this.host.options.lmtp) return Replies.badSequence('not offered in LMTP');
    if (this.previousVerb !== 'EHLO' || this.ehloReply === undefined) return Replies.badSequence('must directly follow a successful EHLO');
    return undefined;
  }

  /** What BDAT (bdat-receiver.ts) sees of this session. */
  private bdatSession(): BdatSession {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the getters below read the connection's state when asked; a getter's own this is the object literal
    const connection = this;
    return {
      binaryTransaction: () => this.binaryTransaction(),
      hasRecipients: () => this.session.envelope.rcptTo.length > 0,
      openMessage: (command) => {
        (this.session as XponySession).binaryMessage = true;
        this.openingChunks = true;
        try {
          this.openData(command, () => undefined);
        } finally {
          this.openingChunks = false;
        }
      },
      get maxChunk() {
        return serverMaxBdatChunk(connection.host.xponyOptions);
      },
      get parser() {
        return connection.parser;
      },
      get messageStream() {
        return connection.messageStream;
      },
      send: (code, text) => this.send(code, text, false),
      close: () => this.close(),
    };
  }

  /** What the handshake (server-handshake.ts) sees of this session. */
  private handshakeSession(): HandshakeSession {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the getters below read the connection's state when asked; a getter's own this is the object literal
    const connection = this;
    return {
      get id() {
        return connection.id;
      },
      get remoteAddress() {
        return connection.remoteAddress;
      },
      get remotePort() {
        return connection.remotePort;
      },
      get xponyServer() {
        return connection.host;
      },
      get lease() {
        return connection.lease;
      },
      reply: (reply) => this.reply(reply),
      expectLine: (handler) => {
        this.continuation = handler;
      },
      switchToTunnel: (ciphers) => {
        this.retireParser();
        this.leaveServer();
        return switchToFrames(this.socket, ciphers, serverTakesRawPayload(connection.host.xponyOptions));
      },
      serveTunnel: (tunnel, info) =>
        this.host.connect(tunnel as unknown as Socket, {
          remoteAddress: this.remoteAddress,
          remotePort: this.remotePort,
          localAddress: this.localAddress,
          localPort: this.localPort,
          xpony: info,
        }),
      destroy: () => this.socket.destroy(),
    };
  }

  private reply(reply: XponyReply): void {
    this.send(reply.code, reply.text, false);
  }

  /** Answers a new connection over a limit with its 421, which closes it. */
  private refuseForLimit(limit: LimitName, reply: XponyReply): void {
    reportClientLimit(this.host, this, limit, reply);
    this.reply(reply);
  }

  /** Runs `action` and returns the octets it wrote to the socket: the prologue takes them as sent. */
  private captureWrites(action: () => void): Buffer {
    const socket = this.socket;
    const chunks: Buffer[] = [];
    const write = socket.write.bind(socket);
    socket.write = (chunk: string | Uint8Array, ...rest: never[]) => {
      // send() writes strings in the default encoding, UTF-8.
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk));
      return write(chunk, ...rest);
    };
    try {
      action();
    } finally {
      delete (socket as Partial<Socket>).write; // back to the prototype's
    }
    return Buffer.concat(chunks);
  }
}
