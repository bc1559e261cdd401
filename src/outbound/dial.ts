/**
 * Getting a mail transaction started with a destination domain: the delivery plan (sender policy,
 * next hops, MTA-STS) and the walk over the next hops' addresses until one accepts MAIL.
 *
 * Per address, in preference order:
 * - XPONY first, whenever the server offers it and the policy allows its key; the session then
 *   runs inside the tunnel and the message will be sealed.
 * - Without a tunnel, under `enforce`: nothing; the next address may offer XPONY. If none does,
 *   the domain is deferred (downgrade), never sent in clear; or, where the domain's vouched
 *   record allows a sealed relay (sealed-relay.ts), the message goes sealed to the addresses that
 *   answered without XPONY.
 * - Otherwise legacy SMTP: STARTTLS when offered (certificate unchecked, as Postfix's
 *   `smtp_tls_security_level = may`, and plaintext again if the TLS handshake fails), or with
 *   MTA-STS `enforce`: only MX hosts the policy names, only over STARTTLS with a certificate valid
 *   for the MX name.
 * - A connection failure, a 4xx greeting or a 4xx to EHLO or MAIL moves on to the next address
 *   (RFC 5321 section 5.1); a 5xx to MAIL is the domain's answer.
 */
import { rootCertificates, type ConnectionOptions } from 'node:tls';
import { isIP, type Socket } from 'node:net';
import { isHybridRecipient, parseRecipient, type Recipient } from '../crypto/age/index.js';
import type { Keys } from '../crypto/keyfile.js';
import { connectXpony, isHybridHandshake, XponyError, type TunnelResult } from '../xpony/index.js';
import { formatReply, parseEnhancedCode, SmtpClient, SmtpClientError, type SmtpReply } from '../smtp/index.js';
import { mxMatches, type MtaStsCache, type MtaStsPolicy } from './mta-sts.js';
import { daneHolds, tlsaSource } from './dane-guard.js';
import {
  discoverPolicy,
  isAcceptableKey,
  keysVouched,
  recordUnknown,
  unvouchedKeys,
  withHttpsKeys,
  type DeliveryPolicy,
  type PolicyOptions,
} from './policy.js';
import { RemoteSession } from './remote-session.js';
import { sealedRelayRecipients } from './sealed-relay.js';
import { resolveNextHops, type NextHop, type RoutingOptions } from './routing.js';
import { ValidatedDnsError } from './validated-dns.js';

export type DeferralReason = 'enforce' | 'downgrade' | 'key-mismatch' | 'pin-store' | 'dns' | 'mta-sts';

export interface DialOptions {
  keys: Pick<Keys, 'noise'>;
  /** Our name, for EHLO. */
  hostName: string;
  routing: RoutingOptions;
  policy: PolicyOptions;
  /** MTA-STS policies of legacy destinations; absent: not consulted. */
  mtaSts?: MtaStsCache;
  /** Extra trust anchors (PEM) for MTA-STS certificate checks, beside the system's. */
  trustedCa?: string[];
  /** Connecting and the XPONY handshake, per address. */
  connectTimeoutMs: number;
  /** Waiting for each reply. */
  commandTimeoutMs: number;
  /** Told what each MX host of a domain listed in its EHLO reply (the keyword lines): XPONY sightings. */
  onEhlo?: (domain: string, ehloKeywords: readonly string[]) => void;
}

export interface DeliveryPlan {
  domain: string;
  policy: DeliveryPolicy;
  /** The domain's MTA-STS policy, when one applies (docs/PROTOCOL.md section 11: it keeps holding under any `_pony` policy). */
  mtaSts?: MtaStsPolicy;
  /** What planning noted for the delivery's log (an MTA-STS policy that could not be fetched). */
  notes: string[];
  /** Keys of an unsigned record set aside for stronger evidence: logged as a warning naming that evidence. */
  warnings: string[];
}

export type PlanOutcome = { kind: 'plan'; plan: DeliveryPlan } | { kind: 'failed'; reason: string; deferral: DeferralReason };

export type DialOutcome =
  | { kind: 'session'; session: RemoteSession; mailReply: SmtpReply; attempts: string[]; testingFailure: boolean }
  /** A 5xx to MAIL: the destination refused the sender. */
  | { kind: 'refused'; reply: SmtpReply; session: RemoteSession; attempts: string[] }
  | { kind: 'failed'; permanent: boolean; reason: string; deferral?: DeferralReason; attempts: string[] };

/** What the sender policy and the domain's MTA-STS policy require of this delivery (computed for every message). */
export async function planDelivery(domain: string, options: DialOptions): Promise<PlanOutcome> {
  const policy = await discoverPolicy(domain, options.policy);
  if (policy.mode === 'defer') return { kind: 'failed', reason: policy.reason, deferral: /pin/.test(policy.reason) ? 'pin-store' : 'dns' };
  const notes: string[] = [];
  const mtaSts = await mtaStsFor(domain, options, notes);
  const vouched = mtaSts === undefined || mtaSts.mode === 'none' ? policy : withHttpsKeys(policy, mtaSts.ponyKeys);
  if (recordUnknown(vouched)) return { kind: 'failed', reason: `${vouched.reason}; waiting until the record can be known`, deferral: 'dns' };
  // Mail for a DANE domain reaches here only from a routing answer given before its TLSA was known: it waits, and goes to Postfix once asked again.
  try {
    const dane = await daneHolds(domain, vouched, tlsaSource(options.policy));
    if (dane !== null) return { kind: 'failed', reason: dane, deferral: 'dns' };
  } catch (error) {
    if (error instanceof ValidatedDnsError) return { kind: 'failed', reason: `DANE check: ${error.message}`, deferral: 'dns' };
    throw error;
  }
  const plan: DeliveryPlan = { domain, policy: vouched, notes, warnings: [], ...(mtaSts === undefined ? {} : { mtaSts }) };
  if (vouched.setAside !== undefined) plan.warnings.push(vouched.setAside);
  if (mtaStsGoverns(plan) && vouched.acceptableKeys !== 'any')
    plan.warnings.push(
      unvouchedKeys(vouched.acceptableKeys.length, 'the MTA-STS enforce policy', 'no tunnel to them, only verified STARTTLS to an MX the policy names'),
    );
  return { kind: 'plan', plan };
}

/**
 * Under MTA-STS enforce, only a tunnel to a vouched key or verified TLS is as strong as the
 * policy, and only to an MX it names; a record's key that only unsigned DNS named is neither.
 */
function mtaStsGoverns(plan: DeliveryPlan): boolean {
  return plan.mtaSts?.mode === 'enforce' && !keysVouched(plan.policy);
}

/** Whether a cached session may carry this plan's next message: checked against the current policies, not those it was made under. */
export function sessionFits(plan: DeliveryPlan, session: RemoteSession): boolean {
  if (session.closed) return false;
  if (plan.mtaSts?.mode === 'enforce') {
    if (!mxMatches(plan.mtaSts, session.host)) return false;
    if (session.tunnel === undefined ? !session.tlsVerified : mtaStsGoverns(plan)) return false;
  }
  if (session.tunnel === undefined) return plan.policy.mode !== 'enforce' || mtaStsGoverns(plan);
  return isAcceptableKey(plan.policy, session.tunnel.remoteStaticKey, session.tunnel.endorsedBy);
}

/** Why one address did not give a session. */
interface AttemptFailure {
  reason: string;
  deferral?: DeferralReason;
}

type AttemptOutcome =
  /** `fallback`: why this is a second choice on the same address (XPONY or TLS failed first). */
  { kind: 'session'; session: RemoteSession; fallback?: string } | { kind: 'next'; failure: AttemptFailure };

/** `mailCommand` builds the MAIL command for a session (its parameters depend on what the server offers). */
export async function dial(plan: DeliveryPlan, mailCommand: (session: RemoteSession) => string, options: DialOptions): Promise<DialOutcome> {
  const attempts: string[] = [...plan.notes];
  const failures: AttemptFailure[] = [];
  const routing = await resolveNextHops(plan.domain, options.routing);
  if (routing.kind !== 'hops') return { kind: 'failed', permanent: routing.kind === 'permanent', reason: routing.reason, attempts };
  const mtaSts = plan.mtaSts;
  let hops = routing.hops;
  if (mtaSts?.mode === 'enforce') {
    hops = hops.filter((hop) => mxMatches(mtaSts, hop.host));
    if (hops.length === 0) {
      const reason = `MTA-STS enforce: no MX host of ${plan.domain} matches the policy (${mtaSts.mx.join(', ')})`;
      return { kind: 'failed', permanent: false, reason, deferral: 'mta-sts', attempts: [reason] };
    }
  }
  /** Addresses that answered without XPONY under enforce: where a sealed relay may go. */
  const withoutXpony: { hop: NextHop; address: string }[] = [];
  for (const hop of hops) {
    for (const address of hop.addresses) {
      const attempt = await connectAddress(plan, hop, address, mtaSts, options);
      if (attempt.kind === 'next') {
        failures.push(attempt.failure);
        attempts.push(attempt.failure.reason);
        if (attempt.failure.deferral === 'downgrade') withoutXpony.push({ hop, address });
        continue;
      }
      const session = attempt.session;
      // Logged with the delivery: e.g. a STARTTLS that failed before the plaintext that worked.
      if (attempt.fallback !== undefined) attempts.push(attempt.fallback);
      const reply = await sendMail(session, mailCommand, attempts);
      if (reply === undefined) continue;
      // p=testing: the domain wanted XPONY and did not get it; counted and logged.
      const testingFailure = plan.policy.mode === 'testing' && session.mode !== 'xpony';
      if (reply.code === 250) return { kind: 'session', session, mailReply: reply, attempts, testingFailure };
      attempts.push(`${session.describe()}: MAIL answered ${formatReply(reply)}`);
      if (reply.code >= 500) return { kind: 'refused', reply, session, attempts };
      session.destroy();
    }
  }
  const sealTo = sealedRelayRecipients(plan.policy);
  if (sealTo !== undefined) {
    const relayed = await sealedRelay(withoutXpony, sealTo, mtaSts, mailCommand, attempts, options);
    if (relayed !== undefined) return relayed;
  }
  const deferral = failures.find((f) => f.deferral !== undefined)?.deferral;
  const reason = attempts.length > 0 ? attempts.join('; ') : `no address to try for ${plan.domain}`;
  return { kind: 'failed', permanent: false, reason, attempts, ...(deferral === undefined ? {} : { deferral }) };
}

/** MAIL on a new session: its reply, or undefined (logged in `attempts`, session dropped) when the session broke. */
async function sendMail(session: RemoteSession, mailCommand: (session: RemoteSession) => string, attempts: string[]): Promise<SmtpReply | undefined> {
  try {
    return await session.command(mailCommand(session));
  } catch (error) {
    attempts.push(`${session.describe()}: ${(error as Error).message}`);
    session.destroy();
    return undefined;
  }
}

/**
 * The sealed relay (sealed-relay.ts): the addresses that answered without XPONY, by preference,
 * over the transport the legacy path would use (STARTTLS when offered; MTA-STS enforce still
 * holds), with the message sealed to `sealTo`. A relay's refusal of MAIL (the sealed form too
 * large, say) is not the domain's answer: the next one is tried, and the mail waits if none takes it.
 */
async function sealedRelay(
  candidates: readonly { hop: NextHop; address: string }[],
  sealTo: Recipient[],
  mtaSts: MtaStsPolicy | undefined,
  mailCommand: (session: RemoteSession) => string,
  attempts: string[],
  options: DialOptions,
): Promise<DialOutcome | undefined> {
  for (const { hop, address } of candidates) {
    const attempt = await legacy(hop, address, undefined, mtaSts, options, 'try', sealTo);
    if (attempt.kind === 'next') {
      attempts.push(`sealed relay: ${attempt.failure.reason}`);
      continue;
    }
    const session = attempt.session;
    if (attempt.fallback !== undefined) attempts.push(`sealed relay: ${attempt.fallback}`);
    const reply = await sendMail(session, mailCommand, attempts);
    if (reply === undefined) continue;
    if (reply.code === 250) return { kind: 'session', session, mailReply: reply, attempts, testingFailure: false };
    attempts.push(`${session.describe()}: MAIL answered ${formatReply(reply)}`);
    session.destroy();
  }
  return undefined;
}

/**
 * The domain's MTA-STS policy, looked up whatever its `_pony` policy says (a record is unsigned
 * DNS and must not switch MTA-STS off). A policy that cannot be fetched and is not cached counts
 * as none (RFC 8461 section 5.1); `notes` gets why.
 */
async function mtaStsFor(domain: string, options: DialOptions, notes: string[]): Promise<MtaStsPolicy | undefined> {
  if (options.mtaSts === undefined) return undefined;
  const outcome = await options.mtaSts.policyFor(domain);
  if (outcome.kind === 'policy') return outcome.policy;
  if (outcome.kind === 'temporary') notes.push(`MTA-STS ${domain}: ${outcome.reason}`);
  return undefined;
}

async function connectAddress(
  plan: DeliveryPlan,
  hop: NextHop,
  address: string,
  mtaSts: MtaStsPolicy | undefined,
  options: DialOptions,
): Promise<AttemptOutcome> {
  const { policy } = plan;
  const where = `${hop.host}[${address}]:${hop.port}`;
  // Under MTA-STS enforce, a tunnel to a key nobody vouched for would be weaker than PKIX STARTTLS.
  const tryXpony = !mtaStsGoverns(plan);
  if (tryXpony) {
    let result;
    const started = performance.now();
    try {
      result = await connectXpony({
        host: address,
        port: hop.port,
        localHostName: options.hostName,
        keys: options.keys,
        timeoutMs: options.connectTimeoutMs,
        requireKey: (key, endorsedBy) =>
          isAcceptableKey(policy, key, endorsedBy) ? true : `not a key ${plan.domain} published or this host pinned (${policy.reason})`,
      });
    } catch (error) {
      if (!(error instanceof XponyError)) throw error;
      const xponyFailure = error.kind === 'key-rejected' || error.kind === 'handshake-failed';
      if (!xponyFailure || policy.mode === 'enforce') {
        return {
          kind: 'next',
          failure: { reason: `${where}: ${error.message}`, ...(error.kind === 'key-rejected' ? { deferral: 'key-mismatch' as const } : {}) },
        };
      }
      return asFallback(await legacy(hop, address, undefined, mtaSts, options), `${where}: ${error.message}; falling back`);
    }
    options.onEhlo?.(plan.domain, result.ehloLines.slice(1));
    if (result.kind === 'tunnel') return tunnelSession(plan, hop, address, result, performance.now() - started, options);
    if (policy.mode === 'enforce') {
      result.socket.destroy();
      return { kind: 'next', failure: { reason: `${where}: no XPONY offered; ${policy.reason}`, deferral: 'downgrade' } };
    }
    const greeting: SmtpReply = { code: result.greeting.code, enhancedCode: parseEnhancedCode(result.greeting.lines), lines: result.greeting.lines };
    return legacy(hop, address, { socket: result.socket, greeting, ehloLines: result.ehloLines }, mtaSts, options);
  }
  return legacy(hop, address, undefined, mtaSts, options);
}

/** A fallback's outcome, carrying why it was tried: in its failure reason, or beside its session. */
function asFallback(outcome: AttemptOutcome, why: string): AttemptOutcome {
  return outcome.kind === 'next'
    ? { kind: 'next', failure: { ...outcome.failure, reason: `${why}: ${outcome.failure.reason}` } }
    : { ...outcome, fallback: why };
}

async function tunnelSession(
  plan: DeliveryPlan,
  hop: NextHop,
  address: string,
  result: TunnelResult,
  handshakeMs: number,
  options: DialOptions,
): Promise<AttemptOutcome> {
  const where = `${hop.host}[${address}]:${hop.port}`;
  let client: SmtpClient;
  try {
    client = await SmtpClient.over(result.tunnel, { host: address, port: hop.port, timeoutMs: options.commandTimeoutMs, label: `${hop.host} (tunnel)` });
    if (client.greeting.code !== 220) throw new Error(`inner greeting ${formatReply(client.greeting)}`);
    const ehlo = await client.command(`EHLO ${options.hostName}`);
    if (ehlo.code !== 250) throw new Error(`inner EHLO answered ${formatReply(ehlo)}`);
    return {
      kind: 'session',
      session: new RemoteSession({
        client,
        mode: 'xpony',
        host: hop.host,
        address,
        port: hop.port,
        ehloLines: ehlo.lines,
        tunnel: {
          tunnel: result.tunnel,
          remoteStaticKey: result.remoteStaticKey,
          fingerprint: result.fingerprint,
          endorsedBy: result.endorsedBy,
          sealTo: sealingRecipients(plan.policy, result.ageRecipients, isHybridHandshake(result.version)),
          ...(result.sealedRelay ? { relayTo: sealingRecipients(plan.policy, result.ageRecipients, false)[0]! } : {}),
          handshakeMs,
        },
      }),
    };
  } catch (error) {
    result.tunnel.destroy();
    return { kind: 'next', failure: { reason: `${where}: ${(error as Error).message}` } };
  }
}

/**
 * The age recipient a message through this tunnel is sealed to (docs/PROTOCOL.md section 13): in a
 * tunnel whose handshake was itself hybrid (`hybridTunnel`, version 2), the record's `a=`, else the
 * X25519 one the server announced: the tunnel already keeps the message from a quantum attacker,
 * and the receiver opens it before it leaves the tunnel, so a second ML-KEM per message would buy
 * nothing. Otherwise (a version-1 tunnel, and what a sealed relay through the domain's other MX
 * hosts seals to, which waits in queues) the hybrid post-quantum one when the server announced it,
 * else the same X25519 choice. All of them are authenticated, by the handshake with an accepted
 * key or by the record. age does not mix hybrid and classic recipients in one file, so it is
 * always exactly one.
 */
export function sealingRecipients(policy: DeliveryPolicy, announced: readonly Recipient[], hybridTunnel: boolean): Recipient[] {
  const hybrid = announced.find(isHybridRecipient);
  if (hybrid !== undefined && !hybridTunnel) return [hybrid];
  if (policy.ageRecipient !== undefined) return [parseRecipient(policy.ageRecipient)];
  return [announced.find((r) => !isHybridRecipient(r))!];
}

interface OpenedPlaintext {
  socket: Socket;
  greeting: SmtpReply;
  ehloLines: string[];
}

/**
 * A legacy session on `address`: over the socket XPONY left after EHLO, or a fresh connection.
 * STARTTLS when offered; required and verified under MTA-STS enforce.
 */
async function legacy(
  hop: NextHop,
  address: string,
  opened: OpenedPlaintext | undefined,
  mtaSts: MtaStsPolicy | undefined,
  options: DialOptions,
  tls: 'try' | 'skip' = 'try',
  sealedRelay?: Recipient[],
): Promise<AttemptOutcome> {
  const where = `${hop.host}[${address}]:${hop.port}`;
  const enforceTls = mtaSts?.mode === 'enforce';
  const endpoint = { host: address, port: hop.port, timeoutMs: options.commandTimeoutMs, label: hop.host };
  let client: SmtpClient | undefined;
  try {
    let ehloLines: string[];
    if (opened !== undefined) {
      client = await SmtpClient.over(opened.socket, endpoint, opened.greeting);
      ehloLines = opened.ehloLines;
    } else {
      client = await SmtpClient.open({ ...endpoint, timeoutMs: options.connectTimeoutMs });
      if (client.greeting.code !== 220) throw new Error(`greeting ${formatReply(client.greeting)}`);
      ehloLines = await ehlo(client, options.hostName);
    }
    const offersTls = ehloLines.slice(1).some((line) => /^STARTTLS$/i.test(line.trim()));
    if (!offersTls || tls === 'skip') {
      if (enforceTls) throw new Error(`MTA-STS enforce: ${offersTls ? 'TLS failed' : 'no STARTTLS offered'}`);
      return legacySession(client, hop, address, ehloLines, 'plain', false, sealedRelay);
    }
    const upgraded = await client.startTls(tlsOptions(hop.host, enforceTls, options));
    if (!(upgraded instanceof SmtpClient)) {
      if (enforceTls) throw new Error(`MTA-STS enforce: STARTTLS answered ${formatReply(upgraded)}`);
      return legacySession(client, hop, address, ehloLines, 'plain', false, sealedRelay);
    }
    client = upgraded;
    return legacySession(client, hop, address, await ehlo(client, options.hostName), 'starttls', enforceTls, sealedRelay);
  } catch (error) {
    client?.destroy();
    opened?.socket.destroy();
    const message = (error as Error).message;
    if (error instanceof SmtpClientError && error.kind === 'tls' && !enforceTls && tls === 'try') {
      // As Postfix with `may`: a failed TLS handshake is retried in plaintext.
      return asFallback(await legacy(hop, address, undefined, mtaSts, options, 'skip', sealedRelay), `${where}: ${message}; retrying without TLS`);
    }
    return {
      kind: 'next',
      failure: { reason: `${where}: ${message}`, ...(enforceTls && /MTA-STS|TLS/.test(message) ? { deferral: 'mta-sts' as const } : {}) },
    };
  }
}

async function ehlo(client: SmtpClient, hostName: string): Promise<string[]> {
  const reply = await client.command(`EHLO ${hostName}`);
  if (reply.code !== 250) throw new Error(`EHLO answered ${formatReply(reply)}`);
  return reply.lines;
}

function legacySession(
  client: SmtpClient,
  hop: NextHop,
  address: string,
  ehloLines: string[],
  mode: 'starttls' | 'plain',
  tlsVerified = false,
  sealedRelay?: Recipient[],
): AttemptOutcome {
  return {
    kind: 'session',
    session: new RemoteSession({
      client,
      mode,
      host: hop.host,
      address,
      port: hop.port,
      ehloLines,
      tlsVerified,
      ...(sealedRelay === undefined ? {} : { sealedRelay }),
    }),
  };
}

function tlsOptions(host: string, verify: boolean, options: DialOptions): ConnectionOptions {
  const servername = isIP(host) === 0 ? { servername: host } : {};
  if (!verify) return { ...servername, rejectUnauthorized: false };
  return { ...servername, rejectUnauthorized: true, ca: [...rootCertificates, ...(options.trustedCa ?? [])] };
}
