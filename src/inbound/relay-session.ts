/**
 * One client session relayed to Postfix command by command. The Postfix session opens at the
 * client's first MAIL (not at EHLO): only then is the client's HELO name final, and clients that
 * only probe (EHLO, QUIT) cost Postfix nothing. Postfix learns the real client's address, so its
 * access control judges the client and never blackpony, in one of two ways (ClientIdentity):
 * EHLO, then XCLIENT (xclient.ts, with the client's name as Postfix would have found it,
 * client-name.ts), then the client's EHLO; or a PROXY line first on the connection
 * (proxy-protocol.ts), then the client's EHLO.
 * Without XCLIENT nothing is relayed (a listener that trusts 127.0.0.1 would be an open relay);
 * a PROXY listener refuses a connection without the line by itself. An MTA that takes neither
 * (sendmail) gets the client's EHLO alone (`none`) and judges the address blackpony connects
 * from, which the configuration requires to be one it does not trust (config.ts).
 *
 * Postfix's own replies go back to the client verbatim. A failure of the hop itself (Postfix
 * down, refusing XCLIENT, slow, gone) is a 4xx: never a 5xx for our fault, never a 250 for
 * something Postfix did not take; its reason goes to the operator, not to the client.
 *
 * A sealed message (docs/PROTOCOL.md, "The sealed message"), whichever way it came, is opened on
 * its way to Postfix; if it cannot be, Postfix's connection is dropped before the end-of-data
 * marker, so no part of it is queued, and the client gets the spec's reply.
 */
import type { Readable } from 'node:stream';
import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import type { Identity } from '../crypto/age/index.js';
import {
  isMessageId,
  MESSAGE_ID_KEYWORD,
  EVIDENCE_KEYWORD,
  isKeyEvidence,
  KEY_EVIDENCE,
  type KeyEvidence,
  createUnwrapStream,
  SealedMessageError,
  sealedMessageReply,
  isBinaryMessage,
  xponyOf,
} from '../xpony/index.js';
import { formatReply, SmtpClient, SmtpClientError, type SmtpEndpoint, type SmtpReply, encodeParameters, parametersOf, SmtpReplyError } from '../smtp/index.js';
import type { ClientNameResolver } from '../dns.js';
import type { Acceptance, AcceptedMessages, BeforeVerdict, MessageIdentity } from './accepted-messages.js';
import { lookupClientName, UNNAMED, type ClientName } from './client-name.js';
import { openWithProxyLine, proxyLine, unmapped } from './proxy-protocol.js';
import { afterTrace, traceHeader, type TraceVia } from './trace-header.js';
import { sendXclient } from './xclient.js';
import { errorMessage } from '../error-message.js';

/**
 * How Postfix learns who the client is: XCLIENT, or a HAProxy PROXY v1 line (proxy-protocol.ts);
 * or, for an MTA with neither, not at all (`none`: it sees blackpony's connection).
 */
export type ClientIdentity = 'xclient' | 'proxy' | 'none';

export interface RelayConfig {
  postfix: SmtpEndpoint;
  clientIdentity: ClientIdentity;
  /** Our name: EHLO to Postfix before XCLIENT, and `by=` in the trace header. */
  hostName: string;
  /** Called with the lines of Postfix's EHLO reply on every session (what to advertise). */
  onPostfixEhlo?: (lines: readonly string[]) => void;
  /**
   * Postfix's SIZE limit as last learnt (0: none). Where blackpony offers more (a sealed message's
   * armored size, postfix-capabilities.ts), a larger SIZE in MAIL is passed on as this: Postfix
   * then judges the message it receives, opened, by its limit after DATA.
   */
  postfixSize?: () => number;
  /** This host's age identities: sealed messages are opened with them. */
  ageIdentities: readonly Identity[];
  /** Looks up the client's name for XCLIENT; without it Postfix is told there is none. */
  clientNames?: ClientNameResolver;
  /** Called for each failure of the hop to Postfix (the client gets a 451 without the reason). */
  onPostfixFailure?: (failure: PostfixFailure) => void;
  /** Where messages accepted through tunnels with an XPONY-ID are remembered; without it XPONY-ID is not offered. */
  acceptedMessages?: AcceptedMessages;
}

/**
 * Why Postfix could not be used: no connection (`connect`), no reply in time (`timeout`), a reply
 * refusing what the relay needs (greeting, EHLO, XCLIENT, RSET: `refused`), or the connection
 * dropped mid-session (`lost`).
 */
export const POSTFIX_FAILURE_KINDS = ['connect', 'timeout', 'refused', 'lost'] as const;
export type PostfixFailureKind = (typeof POSTFIX_FAILURE_KINDS)[number];

export interface PostfixFailure {
  kind: PostfixFailureKind;
  /** For the operator's log: may name Postfix's address and the system error. */
  reason: string;
}

/** The failure an error of the hop to Postfix (thrown while connecting, or later in the session) stands for. */
export function postfixFailureOf(error: unknown, connecting: boolean): PostfixFailure {
  const reason = errorMessage(error);
  if (error instanceof SmtpClientError && error.kind === 'timeout') return { kind: 'timeout', reason };
  return { kind: connecting ? 'connect' : 'lost', reason };
}

/** The enhanced status code the client gets for each (RFC 3463). */
const HOP_FAILURE_CODES: Record<PostfixFailureKind, string> = { connect: '4.4.1', timeout: '4.4.2', refused: '4.3.0', lost: '4.4.2' };

/** How a message's stream to Postfix ended. */
type StreamOutcome = { kind: 'arrived' } | { kind: 'lost' } | { kind: 'unopenable'; error: SealedMessageError };

/** The client's parameters that Postfix understands the same way. */
const MAIL_PARAMETERS = ['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID'];
const RCPT_PARAMETERS = ['NOTIFY', 'ORCPT'];

export class RelaySession {
  private postfix: SmtpClient | undefined;
  /** The HELO name the Postfix session was opened with. */
  private postfixHelo: string | undefined;
  /** Whether the last message relayed (or being relayed) was sealed. */
  lastSealed = false;
  /** Whether the last message was a retry answered from the accepted messages, not relayed. */
  lastRetry = false;
  /** The XPONY-ID of the transaction's message, inside a tunnel. */
  private messageId: string | undefined;
  /** What the client said of how it knew this host's key (XPONY-EVIDENCE), inside a tunnel. */
  private keyEvidence: KeyEvidence | undefined;
  /** Postfix accepted a MAIL and has not given a final reply to DATA since. */
  private transactionOpen = false;
  /** The tunnel's raw octets (XPONY-RAW-PAYLOAD) at the transaction's MAIL: more at the end came in it. */
  private rawOctetsAtMail = 0;
  /** Looked up once per session, when Postfix is first needed. */
  private clientName: Promise<ClientName> | undefined;
  /** The message's end went to Postfix and its final reply is awaited. */
  private awaitingVerdict = false;
  /** The client's session ended (close()). */
  private clientGone = false;
  /** The message being relayed (data()), settled either way. */
  private inProgress: Promise<void> = Promise.resolve();

  constructor(
    private readonly config: RelayConfig,
    private readonly session: SMTPServerSession,
  ) {}

  /** Postfix's 250, or rejects with the reply for the client. */
  async mailFrom(address: SMTPServerAddress): Promise<SmtpReply> {
    this.messageId = this.messageIdOf(address);
    this.keyEvidence = this.keyEvidenceOf(address);
    this.rawOctetsAtMail = this.rawOctets();
    const helo = this.session.hostNameAppearsAs;
    if (this.postfix !== undefined && (this.postfix.closed || this.postfixHelo !== helo)) this.dropPostfix();
    const postfix = this.postfix ?? (await this.openPostfix(helo));
    if (this.transactionOpen) {
      // The client reset (RSET, EHLO) since: smtp-server has no hook for that, so reset here.
      const reset = await this.ask(() => postfix.command('RSET'));
      if (reset.code !== 250) throw this.hopFailure({ kind: 'refused', reason: `RSET refused: ${formatReply(reset)}` });
      this.transactionOpen = false;
    }
    const parameters = parametersOf(address);
    const limit = this.config.postfixSize?.() ?? 0;
    if (limit > 0 && typeof parameters.SIZE === 'string' && Number(parameters.SIZE) > limit) parameters.SIZE = String(limit);
    const answer = await this.ask(() => postfix.command(`MAIL FROM:<${address.address}>${encodeParameters(parameters, MAIL_PARAMETERS)}`));
    if (answer.code !== 250) throw SmtpReplyError.fromReply(answer);
    this.transactionOpen = true;
    return answer;
  }

  /** Postfix's 250 or 251, or rejects with the reply for the client. */
  async rcptTo(address: SMTPServerAddress): Promise<SmtpReply> {
    const postfix = this.openTransaction();
    const answer = await this.ask(() => postfix.command(`RCPT TO:<${address.address}>${encodeParameters(parametersOf(address), RCPT_PARAMETERS)}`));
    if (answer.code !== 250 && answer.code !== 251) throw SmtpReplyError.fromReply(answer);
    return answer;
  }

  /** Streams the message to Postfix; resolves with Postfix's 250, or rejects with the reply for the client. */
  data(stream: Readable): Promise<SmtpReply> {
    const relayed = this.relayMessage(stream);
    this.inProgress = relayed.then(
      () => undefined,
      () => undefined,
    );
    return relayed;
  }

  /**
   * Resolves once the message in progress, if any, is done: its verdict read and, accepted, its
   * XPONY-ID remembered, also after its client left (close()).
   */
  settled(): Promise<void> {
    return this.inProgress;
  }

  private async relayMessage(stream: Readable): Promise<SmtpReply> {
    const identity = this.identity();
    const earlier = identity === undefined ? undefined : await this.config.acceptedMessages?.lookup(identity);
    this.lastRetry = earlier !== undefined;
    if (earlier !== undefined) return this.answerRetry(stream, earlier);
    let postfix: SmtpClient;
    let go: SmtpReply;
    try {
      postfix = this.openTransaction();
      go = await this.ask(() => postfix.command('DATA'));
    } catch (err) {
      stream.resume(); // smtp-server replies once the client's message is read
      throw err;
    }
    if (go.code !== 354) {
      stream.resume();
      throw SmtpReplyError.fromReply(go);
    }
    const outcome = await this.stream(stream, postfix);
    if (outcome.kind !== 'arrived') {
      // Drop Postfix's connection before the end-of-data marker: Postfix discards the partial message.
      this.dropPostfix();
      if (outcome.kind === 'lost') throw new SmtpReplyError(451, '4.4.2 connection lost before the end of data');
      const reply = sealedMessageReply(outcome.error, this.rawOctets() > this.rawOctetsAtMail);
      throw new SmtpReplyError(reply.code, reply.text);
    }
    let turn: BeforeVerdict | undefined;
    try {
      turn = identity === undefined ? undefined : await this.config.acceptedMessages?.beforeVerdict(identity);
    } catch {
      // Whether the first copy was accepted cannot be known (workers: the primary did not answer).
      this.dropPostfix();
      throw new SmtpReplyError(451, '4.3.0 mail system temporarily unavailable, try again later');
    }
    if (turn !== undefined && 'earlier' in turn) {
      // Accepted meanwhile, in another session: without its end, Postfix discards this copy.
      this.dropPostfix();
      this.lastRetry = true;
      return alreadyAccepted(turn.earlier);
    }
    try {
      const final = await this.verdict(postfix);
      this.transactionOpen = false;
      if (final.code !== 250) throw SmtpReplyError.fromReply(final);
      // On disk before the client hears the 250, so that its retry finds it even after our restart.
      if (identity !== undefined) await this.config.acceptedMessages?.remember(identity, final.lines.join(' '));
      return final;
    } finally {
      turn?.release();
      if (this.clientGone) this.dropPostfix();
    }
  }

  /**
   * The end-of-data marker and Postfix's final reply to the whole message. A client that leaves
   * meanwhile does not cut it short (close()): Postfix queues a message whose end it has, whether
   * or not its reply is read, and a retry of it must then find it remembered (XPONY-ID), not
   * become a second copy.
   */
  private async verdict(postfix: SmtpClient): Promise<SmtpReply> {
    this.awaitingVerdict = true;
    try {
      return await this.ask(() => postfix.endData());
    } finally {
      this.awaitingVerdict = false;
    }
  }

  /**
   * A message Postfix accepted already (the client never heard our 250): nothing reaches Postfix,
   * whose transaction is reset before DATA; the copy is read and dropped, and the client hears 250.
   */
  private async answerRetry(stream: Readable, earlier: Acceptance): Promise<SmtpReply> {
    stream.resume(); // smtp-server replies once the client's message is read
    this.lastSealed = false; // not looked at
    const postfix = this.postfix;
    if (postfix !== undefined && this.transactionOpen) {
      const reset = await postfix.command('RSET').catch(() => undefined);
      if (reset?.code === 250) this.transactionOpen = false;
      else this.dropPostfix();
    }
    return alreadyAccepted(earlier);
  }

  /** The XPONY-ID on MAIL FROM inside a tunnel, when this host offers it; a malformed one is refused. */
  private messageIdOf(address: SMTPServerAddress): string | undefined {
    if (this.config.acceptedMessages === undefined || xponyOf(this.session) === undefined) return undefined;
    const value = parametersOf(address)[MESSAGE_ID_KEYWORD];
    if (value === undefined) return undefined;
    if (!isMessageId(value)) throw new SmtpReplyError(501, `5.5.4 ${MESSAGE_ID_KEYWORD}: expected 22 base64url characters (128 bits)`);
    return value;
  }

  /** The XPONY-EVIDENCE on MAIL FROM inside a tunnel (always offered there); a value not defined is refused. */
  private keyEvidenceOf(address: SMTPServerAddress): KeyEvidence | undefined {
    if (xponyOf(this.session) === undefined) return undefined;
    const value = parametersOf(address)[EVIDENCE_KEYWORD];
    if (value === undefined) return undefined;
    if (!isKeyEvidence(value)) throw new SmtpReplyError(501, `5.5.4 ${EVIDENCE_KEYWORD}: expected one of ${KEY_EVIDENCE.join(', ')}`);
    return value;
  }

  /** Who sent the transaction's message with which id, and to whom Postfix took it; undefined without an XPONY-ID. */
  private identity(): MessageIdentity | undefined {
    const peer = xponyOf(this.session);
    if (this.messageId === undefined || peer === undefined) return undefined;
    const { mailFrom, rcptTo } = this.session.envelope;
    return { peer: peer.remoteFingerprint, id: this.messageId, sender: mailFrom === false ? '' : mailFrom.address, recipients: rcptTo.map((r) => r.address) };
  }

  /** The client's session ended: Postfix's connection goes too, once a final reply awaited has come (verdict()). */
  close(): void {
    this.clientGone = true;
    if (!this.awaitingVerdict) this.dropPostfix();
  }

  /**
   * Copies the client's message to Postfix, opened if sealed, behind the trace header (written
   * once the unwrapping knows whether the message is sealed, and the message's first octets what
   * must follow the field: trace-header.ts afterTrace).
   */
  private stream(stream: Readable, postfix: SmtpClient): Promise<StreamOutcome> {
    return new Promise((resolve) => {
      if (stream.destroyed) {
        resolve({ kind: 'lost' }); // the client left while Postfix was answering DATA
        return;
      }
      const unwrap = createUnwrapStream(this.config.ageIdentities, isBinaryMessage(this.session));
      const write = (chunk: Buffer): void => {
        if (postfix.closed) return; // keep draining the client; endData() reports the failure
        if (!postfix.writeData(chunk)) {
          unwrap.pause();
          postfix.onDrain(() => unwrap.resume());
        }
      };
      // The message's first octets, held until they tell what must follow the trace field.
      let start: Buffer | undefined = Buffer.alloc(0);
      const forward = (chunk: Buffer, ended: boolean): void => {
        if (start === undefined) {
          write(chunk);
          return;
        }
        start = Buffer.concat([start, chunk]);
        const separator = afterTrace(start, ended);
        if (separator === undefined) return;
        const held = start;
        start = undefined;
        write(
          traceHeader({
            by: this.config.hostName,
            via: this.via(),
            xponyVersion: xponyOf(this.session)?.version,
            peerFingerprint: xponyOf(this.session)?.remoteFingerprint,
            sealed: (this.lastSealed = unwrap.sealed === true),
            clientAddress: this.session.remoteAddress,
            clientPort: this.session.remotePort,
            helo: this.session.hostNameAppearsAs,
            ...(this.keyEvidence === undefined ? {} : { keyEvidence: this.keyEvidence }),
            date: new Date(),
          }),
        );
        write(Buffer.concat([Buffer.from(separator, 'latin1'), held]));
      };
      unwrap.on('data', (chunk: Buffer) => forward(chunk, false));
      // The first of these settles it.
      unwrap.once('end', () => {
        forward(Buffer.alloc(0), true);
        resolve({ kind: 'arrived' });
      });
      unwrap.once('error', (error) => {
        // smtp-server replies once the client's message is read: drain the rest.
        stream.unpipe(unwrap);
        stream.resume();
        resolve(error instanceof SealedMessageError ? { kind: 'unopenable', error } : { kind: 'lost' });
      });
      stream.once('error', () => resolve({ kind: 'lost' }));
      stream.once('close', () => {
        if (!stream.readableEnded) resolve({ kind: 'lost' });
      });
      stream.pipe(unwrap);
    });
  }

  /** Octets the session's tunnel received in raw runs so far; none outside a tunnel. */
  private rawOctets(): number {
    return xponyOf(this.session)?.rawOctetsReceived() ?? 0;
  }

  /** How the client's session reached us: the trace header's and the metrics' `via`. */
  via(): TraceVia {
    if (xponyOf(this.session) !== undefined) return 'xpony';
    return this.session.secure ? 'starttls' : 'plain';
  }

  private openTransaction(): SmtpClient {
    if (this.postfix === undefined || this.postfix.closed || !this.transactionOpen) {
      throw new SmtpReplyError(451, '4.4.2 connection to the mail system lost; transaction aborted');
    }
    return this.postfix;
  }

  /** The client's identity (XCLIENT or PROXY line, or none), then the client's EHLO; any failure is ours, so 4xx. */
  private async openPostfix(helo: string): Promise<SmtpClient> {
    const endpoint = this.config.postfix;
    const byProxyLine = this.config.clientIdentity === 'proxy';
    // Looked up while Postfix is being reached; a PROXY line leaves the lookup to Postfix.
    const named = this.config.clientIdentity === 'xclient' ? this.lookupName() : undefined;
    let postfix: SmtpClient;
    try {
      postfix = byProxyLine ? await openWithProxyLine(endpoint, this.proxyLine()) : await SmtpClient.open(endpoint);
    } catch (err) {
      throw this.hopFailure(postfixFailureOf(err, true));
    }
    this.postfix = postfix;
    this.postfixHelo = helo;
    this.transactionOpen = false;
    if (postfix.greeting.code !== 220) {
      // After a PROXY line a 5xx greeting judges the client it named (postscreen's "drop" for a
      // denylisted client): Postfix's own refusal. Before XCLIENT it could only judge us.
      if (byProxyLine && postfix.greeting.code >= 500) {
        this.dropPostfix();
        throw SmtpReplyError.fromReply(postfix.greeting);
      }
      throw this.hopFailure({ kind: 'refused', reason: `greeting: ${formatReply(postfix.greeting)}` });
    }
    if (named !== undefined) {
      const client = { address: unmapped(this.session.remoteAddress), port: this.session.remotePort, name: await named, helo, esmtp: this.saidEhlo() };
      const refused = await sendXclient((command) => this.ask(() => postfix.command(command)), this.config.hostName, client);
      if (refused !== undefined) throw this.hopFailure({ kind: 'refused', reason: refused });
    }
    const again = await this.ask(() => postfix.command(`${this.saidEhlo() ? 'EHLO' : 'HELO'} ${helo}`));
    if (again.code !== 250) {
      this.dropPostfix();
      // "Command unrecognized" after a PROXY line answers the line itself: the listener takes no
      // PROXY protocol (sendmail 8.17, or smtpd_upstream_proxy_protocol unset). Ours to fix: 4xx.
      if (byProxyLine && (again.code === 500 || again.code === 502)) {
        throw this.hopFailure({ kind: 'refused', reason: `PROXY line not taken (${formatReply(again)}): the listener has no PROXY protocol support` });
      }
      // Postfix judged the client's HELO name: its own reply.
      throw SmtpReplyError.fromReply(again);
    }
    this.config.onPostfixEhlo?.(again.lines);
    return postfix;
  }

  private proxyLine(): string {
    const { remoteAddress, remotePort, localAddress, localPort } = this.session;
    return proxyLine({ address: remoteAddress, port: remotePort }, { address: localAddress, port: localPort });
  }

  private lookupName(): Promise<ClientName> {
    const resolver = this.config.clientNames;
    this.clientName ??= resolver === undefined ? Promise.resolve(UNNAMED) : lookupClientName(unmapped(this.session.remoteAddress), resolver);
    return this.clientName;
  }

  /** smtp-server's transmission type: ESMTP, ESMTPS, ... after EHLO; SMTP, SMTPS after HELO. */
  private saidEhlo(): boolean {
    return this.session.transmissionType.startsWith('E');
  }

  /** One exchange with Postfix; a failure of the hop becomes a 4xx for the client. */
  private async ask(exchange: () => Promise<SmtpReply>): Promise<SmtpReply> {
    try {
      const answer = await exchange();
      if (answer.code === 421) this.dropPostfix();
      return answer;
    } catch (err) {
      if (!(err instanceof SmtpClientError)) throw err;
      this.dropPostfix();
      throw this.hopFailure(postfixFailureOf(err, false));
    }
  }

  /** Reported to the operator (config.onPostfixFailure) with the reason; the client learns nothing of our insides. */
  private hopFailure(failure: PostfixFailure): SmtpReplyError {
    this.dropPostfix();
    this.config.onPostfixFailure?.(failure);
    return new SmtpReplyError(451, `${HOP_FAILURE_CODES[failure.kind]} mail system temporarily unavailable, try again later`);
  }

  private dropPostfix(): void {
    this.postfix?.destroy();
    this.postfix = undefined;
    this.transactionOpen = false;
  }
}

/** The reply to a message Postfix accepted already: 250, with Postfix's first reply to it. */
function alreadyAccepted(earlier: Acceptance): SmtpReply {
  const text = earlier.reply.replace(/^[245]\.[0-9]{1,3}\.[0-9]{1,3} /, '');
  return { code: 250, enhancedCode: '2.0.0', lines: [`2.0.0 already accepted: ${text}`] };
}
