/**
 * One SMTP session of an XponyServer: on a plaintext session it offers `XPONY 1 2` in EHLO, runs
 * the Noise responder of the version the client picked (2: XXhfs, 1: XX) over the XPONY verb, and at the switch point hands the socket, now a Tunnel,
 * to a fresh session of the same server; inside a tunnel it carries `session.xpony` and rekeys
 * after each final reply to DATA. A handler can have its reply sent word for word
 * (replyVerbatim in server.ts).
 *
 * Reaches into smtp-server 3.21.6 internals (pinned exactly): send() is its single write site,
 * _nextHandler its continuation-line hook, upgrade() the model for retiring the plaintext parser,
 * its parser's 'finish' the point where a half-closed client has had all its replies.
 */
import { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import type { HandshakeState } from '../crypto/noise/index.js';
import { fingerprint } from '../crypto/fingerprint.js';
import { endorse } from './endorsement.js';
import { FrameError } from './frames.js';
import { decodeMessage, encodeMessage, startHandshake } from './handshake.js';
import { BdatCommandError, BINARY_KEYWORD, CHUNKING_KEYWORD, parseBdat } from './binary-message.js';
import { MESSAGE_ID_KEYWORD } from './message-id.js';
import { EVIDENCE_KEYWORD } from './key-evidence.js';
import type { ClientLease } from './client-limiter.js';
import { HANDSHAKE_TIMEOUT_MS, MAX_CHALLENGE_LINE, MAX_COMMAND_LINE, MAX_PENDING_HANDSHAKES, SUPPORTED_VERSIONS, type LimitName, type ProtocolVersion } from './limits.js';
import { decodePayload, encodePayload } from './payload.js';
import { ehloKeyword, Replies, type XponyReply } from './replies.js';
import type { ClientLimitEvent, XponyHandshakeEvent, XponyServer, XponySession, XponySessionInfo } from './server.js';
import { Tunnel } from './tunnel.js';

const CRLF = Buffer.from('\r\n', 'latin1');
const VERSION_SYNTAX = /^[0-9]{1,3}$/;
/** A reply text that already carries its enhanced status code (RFC 3463), e.g. a relayed one. */
const ENHANCED_CODE_FIRST = /^[245]\.[0-9]{1,3}\.[0-9]{1,3}(?: |$)/;
/**
 * A command line no SMTP client sends: it starts with a byte that is not a letter (a TLS hello, a
 * binary probe), as Postfix's default smtpd_forbidden_commands has it. Answered once, then closed,
 * rather than with a 500 per line until the unrecognized-command limit.
 */
const NOT_SMTP = /^[^A-Za-z]/;

export interface XponyConnectionOptions extends SMTPConnectionOptions {
  /** Set for the session inside a tunnel. */
  xpony?: XponySessionInfo;
}

export class XponyConnection extends SMTPConnection {
  declare _server: XponyServer;
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
  /** A binary transaction between its first BDAT and the end of its LAST chunk. */
  private chunking = false;
  /** The BDAT chunk being read: octets still due. */
  private chunk: { size: number; remaining: number; last: boolean } | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private message3Timer: NodeJS.Timeout | undefined;
  private handshakeStarted = 0;
  private handshakePending = false;
  /** This connection's share of its client's counts (client-limiter.ts); set once admitted. */
  private lease: ClientLease | undefined;
  /** Well-formed XPONY commands on this connection: each one asks for Noise work. */
  private xponyAttempts = 0;
  /** Past the switch point: the plaintext session is over and says nothing more. */
  private switched = false;
  private awaitingFinalDataReply = false;

  constructor(server: XponyServer, socket: Socket, options: XponyConnectionOptions) {
    super(server, socket, options);
    keepOpenAfterClientFin(socket);
    this.xpony = options.xpony;
    if (this.xpony !== undefined) (this.session as XponySession).xpony = this.xpony;
  }

  /**
   * Greets at once, without smtp-server's 100 ms early-talker wait: Postfix's smtpd does not make
   * it either (postscreen's pregreet test is the place for that), and inside a tunnel every octet
   * is authenticated anyway. The wait capped new sessions at 10 per second per concurrent client.
   * The client limits stay; a tunnel's session belongs to a connection already counted.
   */
  override init(): void {
    this._setListeners(() => {
      if (this.xpony === undefined && !this.admitted()) return;
      this.connectionReady();
    });
  }

  /** Whether the server-wide and per-client connection limits let this connection in; if not, it got a 421 (which closes it). */
  private admitted(): boolean {
    const { maxClients } = this._server.options;
    if (maxClients !== undefined && this._server.connections.size > maxClients) {
      this.refuseForLimit('max_clients', Replies.tooManyClients(this.name));
      return false;
    }
    const admission = this._server.clientLimiter.connect(this.remoteAddress);
    if (typeof admission === 'string') {
      const reply = admission === 'connections_per_client' ? Replies.tooManyConnections(this.name, this.remoteAddress) : Replies.connectionRate(this.name, this.remoteAddress);
      this.refuseForLimit(admission, reply);
      return false;
    }
    this.lease = admission;
    // The TCP connection counts until it closes, through a tunnel's whole life too.
    this._socket.once('close', () => admission.release());
    return true;
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    if (this.switched) return;
    const session = this.session as XponySession;
    const verbatim = session.verbatimReply;
    if (verbatim !== undefined) {
      delete session.verbatimReply;
      if (verbatim.code === code || (code === 250 && verbatim.code >= 200 && verbatim.code < 300)) {
        // Lines as given; a 421 still closes the session (send() decides that by the code).
        super.send(verbatim.code, [...verbatim.lines], false);
        return;
      }
    }
    if (this.offeringXpony && code === 250 && Array.isArray(data)) data = [...data, ehloKeyword(this.versions)];
    if (this.offeringMessageIds && code === 250 && Array.isArray(data)) data = [...data, MESSAGE_ID_KEYWORD];
    if (this.offeringEvidence && code === 250 && Array.isArray(data)) data = [...data, EVIDENCE_KEYWORD];
    if (this.offeringBinary && code === 250 && Array.isArray(data)) data = [...data, CHUNKING_KEYWORD, BINARY_KEYWORD];
    if (this.openingChunks && code === 354) return;
    // smtp-server would put a second code in front.
    if (typeof data === 'string' && ENHANCED_CODE_FIRST.test(data)) context = false;
    super.send(code, data, context);
  }

  override _sendGreeting(): void {
    this.greeting = this.captureWrites(() => super._sendGreeting());
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    if (this._nextHandler === false && this._ready && NOT_SMTP.test(command.toString('latin1', 0, 1))) {
      this.send(421, '4.7.0 Error: not an SMTP command, closing connection', false); // 421 closes
      return;
    }
    if (this._nextHandler === false) {
      this.previousVerb = this.currentVerb;
      this.currentVerb = (command.toString('latin1').split(' ')[0] ?? '').toUpperCase();
    }
    if (this.chunking && this.currentVerb !== 'BDAT') {
      this.refuseChunk(new BdatCommandError(421, `4.5.0 Error: ${this.currentVerb} between BDAT chunks; transaction discarded, closing`, true));
      callback?.();
      return;
    }
    if (this._nextHandler === false && this.currentVerb === 'BDAT' && this._server._closeTimeout !== false && this.binaryTransaction()) {
      // A stopping server refuses every command (421), and each BDAT chunk is one: the transaction
      // in progress ends as a DATA in progress does, and the next command gets the 421.
      this.handler_BDAT(command, () => this._whenWritable(callback ?? (() => undefined)));
      return;
    }
    super._onCommand(command, callback);
  }

  override _isSupported(command: string): boolean {
    if (this.xpony !== undefined && command.trim().toUpperCase() === 'STARTTLS') return false;
    return super._isSupported(command);
  }

  override handler_EHLO(command: Buffer, callback: () => void): void {
    this.ehloReply = undefined;
    this.offeringXpony = this.xpony === undefined && !this.secure && !this._server.options.lmtp && this._isSupported('XPONY');
    this.offeringMessageIds = this.xpony !== undefined && this._server.xponyOptions.offerMessageIds === true;
    this.offeringEvidence = this.xpony !== undefined;
    this.offeringBinary = this.xpony !== undefined && this._server.xponyOptions.offerBinary !== false;
    let reply: Buffer;
    try {
      reply = this.captureWrites(() => super.handler_EHLO(command, () => undefined));
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

  override handler_DATA(command: Buffer, callback: () => void): void {
    if (this.binaryTransaction()) {
      this.send(503, `5.5.1 Error: ${BINARY_KEYWORD} transaction: send the message with BDAT`, false);
      callback();
      return;
    }
    this.openData(command, callback);
  }

  private openData(command: Buffer, callback: () => void): void {
    super.handler_DATA(command, callback);
    // In DATA mode now: the final reply is followed by _resetSession(), where the server rekeys.
    if (this.xpony !== undefined && this._dataStream) this.awaitingFinalDataReply = true;
  }

  /** Whether the transaction's MAIL FROM carried XPONY-BINARY inside a tunnel that offers it. */
  private binaryTransaction(): boolean {
    const mailFrom = this.session.envelope.mailFrom;
    return this.xpony !== undefined && this._server.xponyOptions.offerBinary !== false && mailFrom !== false && mailFrom.args !== false && mailFrom.args?.[BINARY_KEYWORD] === true;
  }

  /**
   * BDAT (RFC 3030) for the binary sealed message. A refused BDAT closes the session: the octets
   * it announced cannot be told from commands. The first chunk opens the data stream as DATA does
   * (onData, the final reply, the rekey after it); each chunk's octets go to it as they arrive.
   */
  handler_BDAT(command: Buffer, callback: () => void): void {
    let bdat;
    try {
      if (!this.binaryTransaction()) throw new BdatCommandError(503, `5.5.1 Error: BDAT only in a ${BINARY_KEYWORD} transaction inside a tunnel`, true);
      if (this.session.envelope.rcptTo.length === 0) throw new BdatCommandError(503, '5.5.1 Error: need RCPT command', true);
      bdat = parseBdat(command.toString('latin1'));
    } catch (err) {
      if (!(err instanceof BdatCommandError)) throw err;
      this.refuseChunk(err);
      callback();
      return;
    }
    const parser = this._parser as unknown as ChunkParser;
    if (!this.chunking) {
      this.chunking = true;
      (this.session as XponySession).binaryMessage = true;
      this.openingChunks = true;
      try {
        this.openData(command, () => undefined);
      } finally {
        this.openingChunks = false;
      }
    }
    if (bdat.size > 0) {
      // The parser reads the chunk's octets through _feedDataStream (see _createParser).
      this.chunk = { size: bdat.size, remaining: bdat.size, last: bdat.last };
      parser._dataMode = true;
      callback();
      return;
    }
    parser._dataMode = false;
    if (!bdat.last) {
      this.send(250, '2.0.0 0 octets received', false);
      callback();
      return;
    }
    // BDAT 0 LAST: the message ends here; the parser reads on once the final reply is sent.
    this.chunking = false;
    const stream = parser._dataStream!;
    parser._dataStream = null;
    parser._continueCallback = callback;
    stream.end();
  }

  /** Octets of a BDAT chunk as the parser receives them; the rest after the chunk goes back to it as commands. */
  private feedChunk(parser: ChunkParser, octets: Buffer, done: (err?: Error) => void): void {
    const chunk = this.chunk!;
    const take = Math.min(chunk.remaining, octets.length);
    const piece = octets.subarray(0, take);
    const rest = octets.subarray(take);
    chunk.remaining -= take;
    parser._countDataBytes(take);
    const stream = parser._dataStream!;
    if (chunk.remaining > 0) {
      writeWithBackpressure(stream, piece, done);
      return;
    }
    this.chunk = undefined;
    if (chunk.last) {
      this.chunking = false;
      parser._endDataMode(piece, rest, done);
      return;
    }
    parser._dataMode = false;
    writeWithBackpressure(stream, piece, () => {
      this.send(250, `2.0.0 ${chunk.size} octets received`, false);
      parser._write(rest, 'buffer', done);
    });
  }

  /** Refuses a BDAT or a command between chunks, discarding the transaction; closes when the octets that follow cannot be read. */
  private refuseChunk(err: BdatCommandError): void {
    this.send(err.code, err.text, false);
    const stream = this._dataStream;
    // With an error only for a listener: onData may not have attached one yet, and an error
    // nobody listens for would end the process (smtp-server does the same when a client leaves).
    if (stream) stream.destroy(stream.listenerCount('error') > 0 ? new Error(`transaction discarded: ${err.text}`) : undefined);
    if (err.close && err.code !== 421) this.close(); // send() closes after a 421 itself
  }

  override _resetSession(): void {
    super._resetSession();
    this.chunking = false;
    this.chunk = undefined;
    (this.session as XponySession).binaryMessage = false;
    if (this.awaitingFinalDataReply) {
      this.awaitingFinalDataReply = false;
      (this._socket as unknown as Tunnel).rekey();
    }
  }

  override _onClose(): void {
    this.endHandshake();
    super._onClose();
  }

  /** The TLS socket after STARTTLS, like the plain one. */
  override upgrade(callback: () => void, secureCallback?: () => void): void {
    super.upgrade(callback, () => {
      keepOpenAfterClientFin(this._socket);
      secureCallback?.();
    });
  }

  /**
   * A client may half-close right after its last command: Exim sends the end of the body, `.`,
   * QUIT and its FIN in one segment, then reads the replies. Its socket stays open
   * (keepOpenAfterClientFin; a tunnel's close frame ends only its readable side) and the parser
   * ends with the input, which it finishes once every command received has been answered: then
   * the session closes.
   */
  override _createParser(): SMTPStream {
    const parser = super._createParser();
    const chunkParser = parser as unknown as ChunkParser;
    const feedData = chunkParser._feedDataStream.bind(parser);
    chunkParser._feedDataStream = (octets, done) => (this.chunk === undefined ? feedData(octets, done) : this.feedChunk(chunkParser, octets, done));
    parser.once('finish', () => {
      if (this._parser === parser && !this._closing && !this._closed) this.close();
    });
    return parser;
  }

  handler_XPONY(command: Buffer, callback: () => void): void {
    const refusal = this.refusalNow();
    if (refusal !== undefined) {
      this.fail(refusal, callback);
      return;
    }
    const parts = command.toString('latin1').split(' ');
    const [, version, message1] = parts;
    if (parts.length !== 3 || version === undefined || message1 === undefined) {
      this.fail(Replies.syntax('expected "XPONY <version> <base64>"'), callback);
      return;
    }
    if (!VERSION_SYNTAX.test(version)) {
      this.fail(Replies.syntax('version must be 1 to 3 digits'), callback);
      return;
    }
    const offered = this.versions.find((v) => v === version);
    if (offered === undefined) {
      this.fail(Replies.versionNotSupported(version), callback);
      return;
    }
    const bytes = this.handshakeMessage(command, message1, 'Noise message 1', callback);
    if (bytes === undefined) return;
    // Before any Noise work: what it costs must not be this client's to demand without bound.
    const overLimit = this.handshakeLimitNow();
    if (overLimit !== undefined) {
      this.fail(overLimit.reply, callback);
      this.emitLimit(overLimit.limit, overLimit.reply);
      return;
    }
    this.beginHandshake();
    const options = this._server.xponyOptions;
    let handshake: HandshakeState;
    let challenge: string;
    try {
      handshake = startHandshake(
        false,
        { greeting: this.greeting!, ehloLine: this.ehloLine!, ehloReply: this.ehloReply!, version: offered },
        {
          staticKey: options.keys.noise,
          ...(options.fixedEphemeral === undefined ? {} : { fixedEphemeral: options.fixedEphemeral }),
          ...(options.fixedKemEphemeral === undefined ? {} : { fixedKemEphemeral: options.fixedKemEphemeral }),
        },
      );
      if (handshake.readMessage(bytes).length > 0) throw new Error('Noise message 1 must carry an empty payload');
      const { keys } = options;
      // h1 and the client's ephemeral bind each endorsement to this handshake (endorsement.ts).
      const h1 = handshake.handshakeHash;
      const endorsements = keys.previousNoise.map((previous) => endorse(previous, handshake.remoteEphemeralKey!, h1, keys.noise.publicKey));
      const payload = encodePayload({
        ageRecipients: [keys.ageX25519Recipient, keys.ageHybridRecipient],
        hostName: options.hostName,
        ...(endorsements.length === 0 ? {} : { endorsements }),
      });
      challenge = encodeMessage(handshake.writeMessage(payload));
    } catch (err) {
      this.fail(Replies.handshakeFailed((err as Error).message), callback);
      return;
    }
    if (`334 ${challenge}\r\n`.length > MAX_CHALLENGE_LINE) {
      // Only a misconfigured server gets here (too many or too long recipients).
      this.fail(Replies.unavailable, callback);
      return;
    }
    this._nextHandler = (line: Buffer, next: () => void) => this.onMessage3(handshake, offered, line, next);
    this.reply(Replies.challenge(challenge));
    this.message3Timer = this.timer(this._server.clientLimiter.settings.message3TimeoutMs, () => {
      this.emitLimit('handshake_message3_seconds', Replies.message3Timeout);
      this.onHandshakeTimeout(Replies.message3Timeout);
    });
    callback();
  }

  /** The Noise message carried base64 in a command or continuation line; on a bad line, replies 501 and returns undefined. */
  private handshakeMessage(line: Buffer, base64: string, what: string, callback: () => void): Uint8Array | undefined {
    try {
      if (line.length + CRLF.length > MAX_COMMAND_LINE) throw new Error(`line longer than ${MAX_COMMAND_LINE} octets`);
      return decodeMessage(base64, what);
    } catch (err) {
      this.fail(Replies.syntax((err as Error).message), callback);
      return undefined;
    }
  }

  /** The versions this server offers in EHLO and accepts in XPONY. */
  private get versions(): readonly ProtocolVersion[] {
    return this._server.xponyOptions.versions ?? SUPPORTED_VERSIONS;
  }

  /** Why XPONY may not run now, if it may not. */
  private refusalNow(): XponyReply | undefined {
    if (this.xpony !== undefined) return Replies.badSequence('not allowed inside a tunnel');
    if (this.secure) return Replies.badSequence('not allowed after STARTTLS');
    if (this._server.options.lmtp) return Replies.badSequence('not offered in LMTP');
    if (this.previousVerb !== 'EHLO' || this.ehloReply === undefined) return Replies.badSequence('must directly follow a successful EHLO');
    return undefined;
  }

  /** The limit a new handshake on this connection would exceed, if any; counts the attempt. */
  private handshakeLimitNow(): { limit: LimitName; reply: XponyReply } | undefined {
    if (++this.xponyAttempts > this._server.clientLimiter.settings.xponyAttemptsPerConnection) return { limit: 'xpony_attempts_per_connection', reply: Replies.tooManyAttempts };
    if (this._server.pendingHandshakes >= MAX_PENDING_HANDSHAKES) return { limit: 'max_pending_handshakes', reply: Replies.unavailable };
    if (this.lease?.beginHandshake() === false) return { limit: 'pending_handshakes_per_client', reply: Replies.tooManyHandshakes };
    return undefined;
  }

  private onMessage3(handshake: HandshakeState, version: ProtocolVersion, line: Buffer, callback: () => void): void {
    clearTimeout(this.message3Timer);
    const text = line.toString('latin1');
    if (text === '*') {
      this.fail(Replies.cancelled, callback, 'cancelled');
      return;
    }
    const bytes = this.handshakeMessage(line, text, 'Noise message 3', callback);
    if (bytes === undefined) return;
    let hostName: string | undefined;
    try {
      hostName = decodePayload(handshake.readMessage(bytes)).hostName;
    } catch (err) {
      this.fail(Replies.handshakeFailed((err as Error).message), callback);
      return;
    }
    const remoteStaticKey = handshake.remoteStaticKey!;
    const ciphers = handshake.split();
    this.reply(Replies.tunnelReady);
    this.switchToTunnel(ciphers, {
      version,
      remoteStaticKey,
      remoteFingerprint: fingerprint(remoteStaticKey),
      hostName,
      remoteAddress: this.remoteAddress,
      remotePort: this.remotePort,
    });
    // Resume, and so drain without dispatching, the retired parser (as upgrade() does).
    setImmediate(callback);
  }

  /**
   * The switch point (section 4): whatever arrived and was not processed yet is plaintext sent
   * before it and is discarded; from now on the socket carries frames only.
   */
  private switchToTunnel(ciphers: ReturnType<HandshakeState['split']>, info: XponySessionInfo): void {
    const socket = this._socket;
    this.switched = true;
    if (this._parser) {
      socket.unpipe(this._parser);
      this._parser.isClosed = true;
      this._parser = false;
    }
    while (socket.read() !== null);
    // The plaintext session's idle timer and error reporting end here; the tunnel session has its own.
    socket.removeAllListeners('timeout');
    socket.removeAllListeners('error');
    this._server.connections.delete(this);
    const tunnel = new Tunnel({ socket, send: ciphers.send, receive: ciphers.receive });
    const beforeOpen = (err: Error): void => {
      if (!this.handshakePending) return; // already timed out
      this.endHandshake();
      this.emitHandshake({ outcome: 'failed', reason: err.message });
    };
    tunnel.on('error', beforeOpen);
    tunnel.once('tunnel-open', (isOpenFrame: boolean) => {
      tunnel.off('error', beforeOpen);
      this.endHandshake();
      if (!isOpenFrame) {
        tunnel.destroy(new FrameError("the client's first frame is not the tunnel-open frame"));
        return;
      }
      this.emitHandshake({ outcome: 'tunnel', remoteStaticKey: info.remoteStaticKey });
      // Swallow errors after the inner session closed (it reports the first one).
      tunnel.on('error', () => undefined);
      this._server.connect(tunnel as unknown as Socket, {
        remoteAddress: this.remoteAddress,
        remotePort: this.remotePort,
        localAddress: this.localAddress,
        localPort: this.localPort,
        xpony: info,
      });
    });
  }

  /** Counts the handshake as pending (its client's share was taken in handshakeLimitNow) and starts its clock. */
  private beginHandshake(): void {
    this.handshakePending = true;
    this._server.pendingHandshakes++;
    this.handshakeStarted = performance.now();
    this.handshakeTimer = this.timer(this._server.xponyOptions.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS, () => this.onHandshakeTimeout(Replies.handshakeTimeout));
  }

  private timer(ms: number, action: () => void): NodeJS.Timeout {
    const timer = setTimeout(action, ms);
    timer.unref();
    return timer;
  }

  private endHandshake(): void {
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.message3Timer);
    this.lease?.endHandshake();
    if (this.handshakePending) {
      this.handshakePending = false;
      this._server.pendingHandshakes--;
    }
  }

  private onHandshakeTimeout(reply: XponyReply): void {
    this.endHandshake();
    this.emitHandshake({ outcome: 'timeout', reply: `${reply.code} ${reply.text}` });
    if (this.switched) {
      // Past the switch point nothing may be said in plaintext: just close.
      this._socket.destroy();
      return;
    }
    this._nextHandler = false;
    this.reply(reply); // a 421: send() closes the connection
  }

  /** Refuses or ends the exchange; the session goes on in plaintext, as right after EHLO. */
  private fail(reply: XponyReply, callback: () => void, outcome?: XponyHandshakeEvent['outcome']): void {
    const wasPending = this.handshakePending;
    this.endHandshake();
    this.reply(reply);
    this.emitHandshake({ outcome: outcome ?? (wasPending ? 'failed' : 'rejected'), reply: `${reply.code} ${reply.text}` });
    callback();
  }

  private reply(reply: XponyReply): void {
    this.send(reply.code, reply.text, false);
  }

  /** Answers a new connection over a limit with its 421, which closes it. */
  private refuseForLimit(limit: LimitName, reply: XponyReply): void {
    this.emitLimit(limit, reply);
    this.reply(reply);
  }

  private emitLimit(limit: LimitName, reply: XponyReply): void {
    const event: ClientLimitEvent = { limit, remoteAddress: this.remoteAddress, reply: `${reply.code} ${reply.text}` };
    this._server.logger.info({ tnx: 'limit', cid: this.id, host: this.remoteAddress, limit }, 'limit %s: %s', limit, event.reply);
    this._server.emit('client-limit', event);
  }

  private emitHandshake(event: Omit<XponyHandshakeEvent, 'sessionId' | 'seconds'>): void {
    this._server.logger.info({ tnx: 'xpony', cid: this.id, outcome: event.outcome }, 'XPONY %s: %s', event.outcome, event.reply ?? event.reason ?? '');
    const seconds = (performance.now() - this.handshakeStarted) / 1000;
    this._server.emit('xpony-handshake', { sessionId: this.id, seconds, ...event } satisfies XponyHandshakeEvent);
  }

  /** Runs `action` and returns the octets it wrote to the socket: the prologue takes them as sent. */
  private captureWrites(action: () => void): Buffer {
    const socket = this._socket;
    const chunks: Buffer[] = [];
    const write = socket.write.bind(socket);
    socket.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      // send() writes strings in the default encoding, UTF-8.
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk));
      return write(chunk, ...rest);
    });
    try {
      action();
    } finally {
      delete (socket as Partial<Socket>).write; // back to the prototype's
    }
    return Buffer.concat(chunks);
  }
}

/** The internals of smtp-server's parser (SMTPStream, 3.21.6) that BDAT reads chunks through. */
interface ChunkParser {
  _dataMode: boolean;
  _dataStream: Writable | null;
  _continueCallback: boolean | (() => void);
  _countDataBytes(length: number): void;
  _feedDataStream(octets: Buffer, done: (err?: Error) => void): void;
  _endDataMode(octets: Buffer | false, rest: Buffer, done: (err?: Error) => void): void;
  _write(octets: Buffer, encoding: string, done: (err?: Error) => void): void;
}

/** Writes and calls back once the stream takes more (or has closed). */
function writeWithBackpressure(stream: Writable, octets: Buffer, then: () => void): void {
  if (octets.length === 0 || stream.destroyed || stream.write(octets)) {
    then();
    return;
  }
  const go = (): void => {
    stream.off('drain', go);
    stream.off('close', go);
    then();
  };
  stream.on('drain', go);
  stream.on('close', go);
}

/**
 * A client that half-closed must still get its replies (see _createParser): its FIN must not end
 * our side too (allowHalfOpen), and smtp-server writes only to a socket whose readyState is
 * 'open', where a half-closed one says 'writeOnly'. A Tunnel does both itself.
 */
function keepOpenAfterClientFin(socket: Socket): void {
  if (!(socket instanceof Socket)) return;
  socket.allowHalfOpen = true;
  Object.defineProperty(socket, 'readyState', { configurable: true, get: () => (socket.writable ? 'open' : 'closed') });
}
