/**
 * One mail transaction from Postfix, delivered to each recipient domain's next hop as it goes:
 * the first RCPT for a domain opens (or reuses) a session with that domain's MX and sends MAIL
 * there; every RCPT is relayed at once and the remote reply goes back to Postfix, so unknown
 * users are refused at RCPT time. DATA is streamed to every domain at once (the slowest sets the
 * pace) and Postfix hears the remote final replies only after they came:
 *
 * - LMTP: one reply per recipient, its domain's reply, so Postfix knows each outcome exactly.
 * - SMTP: one reply for the transaction, so a transaction holds one domain; a RCPT for a second
 *   domain gets 452 4.5.3, which Postfix retries later in a transaction of its own.
 *
 * Our own failures (DNS trouble, no reachable MX, a broken session, a policy that cannot be met)
 * are 4xx: Postfix keeps the message and retries. A message that does not arrive whole is never
 * ended: the remote session is dropped before the end-of-data marker.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { isHybridRecipient, type Recipient } from '../crypto/age/index.js';
import { normalizeDomain } from '../crypto/domain-name.js';
import type { Logger } from '../log.js';
import { MESSAGE_ID_KEYWORD, EVIDENCE_KEYWORD, BINARY_KEYWORD } from '../xpony/index.js';
import { formatReply, SmtpClientError, type SmtpReply, encodeParameters, SmtpReplyError } from '../smtp/index.js';
import { dial, planDelivery, sessionFits, type DeferralReason, type DeliveryPlan, type DialOptions } from './dial.js';
import { keyEvidence, pinAfterSuccess, type DeliveryPolicy } from './policy.js';
import { QueueIdSniffer } from './queue-id.js';
import type { BodySink, DeliveryMode, RemoteSession } from './remote-session.js';
import { sealedRelayMailParameters } from './sealed-relay.js';
import type { SessionCache } from './session-cache.js';

export type DeliveryOutcome = 'delivered' | 'deferred' | 'bounced';

/** One delivery attempt to one domain: what the log line and the metrics report. */
export interface DeliveryRecord {
  id: string;
  queueId: string | undefined;
  domain: string;
  recipients: number;
  /** Recipients the remote refused at RCPT (their replies went to Postfix then). */
  refused?: number;
  outcome: DeliveryOutcome;
  reply: string;
  mode?: DeliveryMode;
  peer?: string;
  fingerprint?: string;
  sealed: boolean;
  /** Sealed: the kind of age recipient the message is sealed to (dial.ts sealingRecipients, or a sealed relay's). */
  sealedTo?: 'hybrid' | 'x25519';
  /** Sealed through an MX without XPONY (a backup MX; sealed-relay.ts). */
  sealedRelay?: true;
  tls?: { protocol: string | null; cipher: string };
  bytes: number;
  durationMs: number;
  /** A new session was opened for it (false: reused from the cache). */
  newSession?: boolean;
  /** For a new tunnel: how long its handshake took. */
  handshakeMs?: number;
  policy?: string;
  deferral?: DeferralReason;
  testingFailure?: boolean;
  attempts?: string[];
}

export interface TransactionContext {
  dial: DialOptions;
  cache: SessionCache;
  lmtp: boolean;
  logger: Logger;
  onDelivery?: (record: DeliveryRecord) => void;
}

interface Destination {
  domain: string;
  startedAt: number;
  plan?: DeliveryPlan;
  session?: RemoteSession;
  newSession: boolean;
  /** Set once the destination cannot take (more of) this message. */
  failure?: { reply: SmtpReplyError; deferral?: DeferralReason };
  /** Next hops that were tried and failed on the way to the session. */
  attempts: string[];
  accepted: number[];
  /** The remote's refusals of recipients at RCPT. */
  refused: SmtpReplyError[];
  testingFailure: boolean;
  sink?: BodySink;
  final?: SmtpReply;
  /** Logged and counted already (a failure before DATA is reported when it happens). */
  reported?: boolean;
}

const MAIL_PARAMETERS: Record<string, string | undefined> = { SIZE: 'SIZE', BODY: '8BITMIME', SMTPUTF8: 'SMTPUTF8', RET: 'DSN', ENVID: 'DSN' };
const RCPT_PARAMETERS: Record<string, string | undefined> = { NOTIFY: 'DSN', ORCPT: 'DSN' };

export class OutboundTransaction {
  readonly id = randomBytes(6).toString('hex');
  private readonly destinations = new Map<string, Destination>();
  /** Accepted recipients in order, with their destination (LMTP replies follow this order). */
  private readonly recipients: Destination[] = [];
  private bytes = 0;

  constructor(
    private readonly context: TransactionContext,
    private readonly sender: string,
    /** MAIL parameters as given, e.g. { SIZE: '123', BODY: '8BITMIME' }. */
    private readonly mailParameters: Readonly<Record<string, string | true>>,
    /** The message's XPONY-ID, the same on every retry: sent through tunnels whose peer offers it. */
    private readonly messageId?: string,
  ) {}

  /** Relays one RCPT; resolves with the reply for Postfix (throws an SmtpReplyError for a refusal). */
  async rcpt(address: string, parameters: Readonly<Record<string, string | true>>): Promise<void> {
    const domain = domainOf(address);
    if (domain === null) throw new SmtpReplyError(501, `5.1.3 bad recipient address syntax: ${address}`);
    let destination = this.destinations.get(domain);
    const rcpt = (session: RemoteSession): string => `RCPT TO:<${address}>${this.parameters(session, parameters, RCPT_PARAMETERS)}`;
    let pipelined: SmtpReply | undefined;
    if (destination === undefined) {
      if (!this.context.lmtp && this.destinations.size > 0) {
        throw new SmtpReplyError(452, '4.5.3 one destination domain per transaction over SMTP; send the others separately (or use LMTP)');
      }
      destination = { domain, startedAt: Date.now(), newSession: false, accepted: [], refused: [], attempts: [], testingFailure: false };
      this.destinations.set(domain, destination);
      pipelined = await this.open(destination, rcpt);
    }
    if (destination.failure !== undefined) throw destination.failure.reply;
    const session = destination.session!;
    let reply: SmtpReply;
    try {
      reply = pipelined ?? (await session.command(rcpt(session)));
    } catch (error) {
      this.fail(destination, sessionLost(session, error));
      throw destination.failure!.reply;
    }
    if (reply.code !== 250 && reply.code !== 251) {
      const refusal = SmtpReplyError.fromReply(reply);
      destination.refused.push(refusal);
      throw refusal;
    }
    destination.accepted.push(this.recipients.length);
    this.recipients.push(destination);
  }

  /**
   * Streams the message to every destination with accepted recipients; resolves with the
   * replies: one per accepted recipient (LMTP) or one (SMTP).
   */
  async data(message: Readable): Promise<(string | SmtpReplyError)[]> {
    const active = [...this.destinations.values()].filter((d) => d.failure === undefined && d.accepted.length > 0);
    await Promise.all(active.map((destination) => this.startData(destination)));
    const sniffer = new QueueIdSniffer();
    const arrived = await this.stream(message, sniffer);
    const ending = [...this.destinations.values()].filter((d) => d.sink !== undefined && d.failure === undefined);
    if (!arrived) {
      for (const destination of ending) this.fail(destination, new SmtpReplyError(451, '4.3.0 message not received whole; nothing delivered'));
    } else {
      await Promise.all(ending.map((destination) => this.finish(destination)));
    }
    for (const destination of this.destinations.values()) {
      if (destination.reported !== true) this.report(destination, sniffer.id);
      if (destination.accepted.length === 0 && destination.failure === undefined) this.release(destination);
    }
    this.destinations.clear();
    return this.context.lmtp ? this.recipients.map((destination) => replyFor(destination)) : [replyFor(this.recipients[0]!)];
  }

  /** The transaction ends without DATA (RSET, QUIT, lost Postfix): sessions are reset for reuse or dropped. */
  abandon(): void {
    for (const destination of this.destinations.values()) {
      // Postfix sends no DATA when every recipient was refused or failed: still one line for them.
      if (destination.reported !== true && (destination.failure !== undefined || destination.refused.length > 0)) this.report(destination, undefined);
      this.release(destination);
    }
    this.destinations.clear();
  }

  /** A session whose transaction never reached DATA goes back to the cache after RSET. */
  private release(destination: Destination): void {
    const session = destination.session;
    if (session === undefined || session.closed) return;
    if (destination.sink !== undefined || destination.failure !== undefined) {
      session.destroy();
      return;
    }
    session.command('RSET').then(
      (reply) => (reply.code === 250 ? this.context.cache.put(destination.domain, session) : session.destroy()),
      () => session.destroy(),
    );
  }

  /**
   * Finds the destination a session: a cached one whose MAIL is accepted, or a new one. On a
   * cached session that offers PIPELINING the first RCPT goes with MAIL, in one write; its reply
   * is returned.
   */
  private async open(destination: Destination, rcpt: (session: RemoteSession) => string): Promise<SmtpReply | undefined> {
    const { dial: options, cache } = this.context;
    const planned = await planDelivery(destination.domain, options);
    if (planned.kind === 'failed') {
      this.fail(destination, new SmtpReplyError(451, `4.7.5 ${planned.reason}`), planned.deferral);
      this.report(destination, undefined);
      return;
    }
    destination.plan = planned.plan;
    for (const warning of planned.plan.warnings)
      this.context.logger.warn({ domain: destination.domain, evidence: planned.plan.policy.source }, `policy: ${destination.domain}: ${warning}`);
    const mail = (session: RemoteSession): string =>
      `MAIL FROM:<${this.sender}>${this.parameters(session, session.sealedRelay === undefined ? this.mailParameters : sealedRelayMailParameters(this.mailParameters, session.sealedRelay), MAIL_PARAMETERS)}${this.messageIdParameter(session)}${evidenceParameter(session, planned.plan.policy)}${session.binary ? ` ${BINARY_KEYWORD}` : ''}`;
    const fits = (session: RemoteSession): boolean => sessionFits(planned.plan, session);
    for (let cached = cache.take(destination.domain, fits); cached !== undefined; cached = cache.take(destination.domain, fits)) {
      // A cached session the peer has given up on fails here; the next one, or a new one, is tried.
      const commands = cached.offers('PIPELINING') ? [mail(cached), rcpt(cached)] : [mail(cached)];
      const replies = await cached.pipeline(commands).catch(() => undefined);
      if (replies?.[0]!.code === 250) {
        destination.session = cached;
        destination.testingFailure = planned.plan.policy.mode === 'testing' && cached.mode !== 'xpony';
        return replies[1];
      }
      cached.destroy();
    }
    const outcome = await dial(planned.plan, mail, options);
    destination.attempts = outcome.attempts;
    if (outcome.kind === 'failed') {
      const code = outcome.permanent ? 550 : 451;
      const enhanced = outcome.permanent ? '5.1.2' : outcome.deferral === undefined ? '4.4.1' : '4.7.5';
      this.fail(destination, new SmtpReplyError(code, `${enhanced} ${destination.domain}: ${outcome.reason}`), outcome.deferral);
      this.report(destination, undefined);
      return;
    }
    destination.session = outcome.session;
    destination.newSession = true;
    if (outcome.kind === 'refused') {
      this.fail(destination, SmtpReplyError.fromReply(outcome.reply));
      this.report(destination, undefined);
      return;
    }
    destination.testingFailure = outcome.testingFailure;
  }

  private async startData(destination: Destination): Promise<void> {
    const session = destination.session!;
    if (session.binary) {
      destination.sink = session.body(); // BDAT chunks need no go-ahead
      return;
    }
    try {
      const go = await session.command('DATA');
      if (go.code !== 354) {
        this.fail(destination, SmtpReplyError.fromReply(go));
        return;
      }
      destination.sink = session.body();
    } catch (error) {
      this.fail(destination, sessionLost(session, error));
    }
  }

  /** Copies the message to every open sink; false when it did not arrive whole. */
  private stream(message: Readable, sniffer: QueueIdSniffer): Promise<boolean> {
    return new Promise((resolve) => {
      const sinks = (): Destination[] => [...this.destinations.values()].filter((d) => d.sink !== undefined && d.failure === undefined);
      message.on('data', (chunk: Buffer) => {
        sniffer.push(chunk);
        this.bytes += chunk.length;
        let waiting = 0;
        for (const destination of sinks()) {
          let ready: boolean;
          try {
            ready = destination.sink!.write(chunk);
          } catch (error) {
            this.fail(destination, sessionLost(destination.session!, error));
            continue;
          }
          if (!ready) {
            waiting++;
            destination.sink!.onDrain(() => {
              if (--waiting === 0) message.resume();
            });
          }
        }
        if (waiting > 0) message.pause();
      });
      message.once('end', () => resolve(true));
      message.once('error', () => resolve(false));
      message.once('close', () => {
        if (!message.readableEnded) resolve(false);
      });
    });
  }

  private async finish(destination: Destination): Promise<void> {
    const session = destination.session!;
    try {
      destination.final = await destination.sink!.end();
    } catch (error) {
      this.fail(destination, sessionLost(session, error));
      return;
    }
    if (session.sealedRelay !== undefined && destination.final.code >= 500) {
      this.fail(destination, sealedRelayRefused(session, destination.final));
      return;
    }
    if (destination.final.code === 250 && session.tunnel !== undefined && destination.plan !== undefined) {
      const { remoteStaticKey, endorsedBy, relayTo } = session.tunnel;
      await pinAfterSuccess(
        this.context.dial.policy.pins,
        destination.domain,
        destination.plan.policy,
        remoteStaticKey,
        new Date(),
        endorsedBy,
        relayTo?.toString(),
      ).catch((error: unknown) => this.context.logger.error({ domain: destination.domain, err: (error as Error).message }, 'pinning failed'));
    }
    this.context.cache.put(destination.domain, session);
  }

  private fail(destination: Destination, reply: SmtpReplyError, deferral?: DeferralReason): void {
    destination.failure = { reply, ...(deferral === undefined ? {} : { deferral }) };
    destination.session?.destroy();
  }

  /**
   * One log line and one metrics record per domain tried: delivered, failed, or with every
   * recipient refused at RCPT (then the refusal, a 4xx before a 5xx, is the domain's outcome).
   */
  private report(destination: Destination, queueId: string | undefined): void {
    destination.reported = true;
    const session = destination.session;
    const refusal = destination.accepted.length > 0 ? undefined : (destination.refused.find((r) => r.responseCode < 500) ?? destination.refused[0]);
    const reply = destination.failure?.reply ?? refusal;
    const code = reply?.responseCode ?? destination.final?.code ?? 451;
    const record: DeliveryRecord = {
      id: this.id,
      queueId,
      domain: destination.domain,
      recipients: destination.accepted.length,
      ...(destination.refused.length === 0 ? {} : { refused: destination.refused.length }),
      outcome: code < 300 ? 'delivered' : code < 500 ? 'deferred' : 'bounced',
      reply:
        reply === undefined
          ? destination.final === undefined
            ? 'no recipient accepted'
            : formatReply(destination.final)
          : `${reply.responseCode} ${reply.message}`,
      sealed: session?.tunnel !== undefined || session?.sealedRelay !== undefined,
      bytes: this.bytes,
      durationMs: Date.now() - destination.startedAt,
      ...(session === undefined
        ? {}
        : {
            mode: session.mode,
            peer: session.describe(),
            newSession: destination.newSession,
            ...(session.tunnel === undefined ? {} : { fingerprint: session.tunnel.fingerprint, sealedTo: recipientKind(session.tunnel.sealTo) }),
            ...(session.sealedRelay === undefined ? {} : { sealedRelay: true as const, sealedTo: recipientKind(session.sealedRelay) }),
            ...(session.tunnel !== undefined && destination.newSession ? { handshakeMs: Math.round(session.tunnel.handshakeMs * 10) / 10 } : {}),
          }),
      ...(session?.tlsDetails === undefined ? {} : { tls: session.tlsDetails }),
      ...(destination.plan === undefined ? {} : { policy: `${destination.plan.policy.mode} (${destination.plan.policy.source})` }),
      ...(destination.failure?.deferral === undefined ? {} : { deferral: destination.failure.deferral }),
      ...(destination.testingFailure ? { testingFailure: true } : {}),
      ...(destination.attempts.length === 0 ? {} : { attempts: destination.attempts }),
    };
    this.context.onDelivery?.(record);
    const level = record.outcome === 'delivered' ? 'info' : 'warn';
    this.context.logger[level](
      record,
      `delivery ${record.outcome}: ${record.domain} via ${record.mode ?? 'none'}${record.sealedRelay === true ? ', sealed through an MX without XPONY' : ''}`,
    );
  }

  /** ` XPONY-ID=<id>` inside a tunnel whose peer offers it (docs/PROTOCOL.md section 5), else nothing. */
  private messageIdParameter(session: RemoteSession): string {
    const offered = this.messageId !== undefined && session.tunnel !== undefined && session.offers(MESSAGE_ID_KEYWORD);
    return offered ? ` ${MESSAGE_ID_KEYWORD}=${this.messageId}` : '';
  }

  /** Parameters Postfix gave that the remote advertised support for, re-encoded. */
  private parameters(session: RemoteSession, given: Readonly<Record<string, string | true>>, supported: Record<string, string | undefined>): string {
    const offered = Object.keys(given).filter((name) => {
      const keyword = supported[name];
      return keyword !== undefined && session.offers(keyword);
    });
    return encodeParameters(given, offered);
  }
}

/** ` XPONY-EVIDENCE=<evidence>` inside a tunnel whose peer offers it (docs/PROTOCOL.md section 5), else nothing. */
function evidenceParameter(session: RemoteSession, policy: DeliveryPolicy): string {
  return session.tunnel !== undefined && session.offers(EVIDENCE_KEYWORD) ? ` ${EVIDENCE_KEYWORD}=${keyEvidence(policy)}` : '';
}

function replyFor(destination: Destination): string | SmtpReplyError {
  if (destination.failure !== undefined) return destination.failure.reply;
  const final = destination.final!;
  return final.code === 250 ? final.lines.join(' ') : SmtpReplyError.fromReply(final);
}

/** The kind of the one age recipient a tunnel's messages are sealed to. */
function recipientKind(sealTo: readonly Recipient[]): 'hybrid' | 'x25519' {
  return sealTo.some(isHybridRecipient) ? 'hybrid' : 'x25519';
}

/**
 * A relay that refuses the sealed message after DATA cannot have judged its content, only the
 * sealed form (its size, say): not the domain's answer, so the mail waits for the blackpony MX.
 */
function sealedRelayRefused(session: RemoteSession, reply: SmtpReply): SmtpReplyError {
  return new SmtpReplyError(451, `4.4.0 ${session.describe()} refused the sealed message (${formatReply(reply)}); waiting for an MX offering XPONY`);
}

function sessionLost(session: RemoteSession, error: unknown): SmtpReplyError {
  const reason = error instanceof SmtpClientError ? error.message : `${session.describe()}: ${(error as Error).message}`;
  return new SmtpReplyError(451, `4.4.2 connection lost: ${reason}`);
}

/** The domain of an address, lower-case A-label; null when there is none. */
function domainOf(address: string): string | null {
  const at = address.lastIndexOf('@');
  return at < 0 ? null : normalizeDomain(address.slice(at + 1));
}
