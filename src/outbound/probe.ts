/**
 * `blackpony probe`: what mail to a domain would meet, checked without sending any. The verdict
 * comes from the delivery engine itself (planDelivery and dial, with NOOP where MAIL would go),
 * so it cannot drift from what a real delivery does; the per-address details around it are for
 * the operator: the greeting, whether XPONY is offered and which key answers, how that key
 * compares with the `_pony` record and the pin, and what STARTTLS offers.
 */
import { isIP } from 'node:net';
import { rootCertificates, type TLSSocket } from 'node:tls';
import { base64 } from '@scure/base';
import { fingerprint } from '../crypto/fingerprint.js';
import { connectXpony, XponyError, type Tunnel } from '../xpony/index.js';
import { formatReply, parseEnhancedCode, SmtpClient, type SmtpEndpoint } from '../smtp/index.js';
import { dial, planDelivery, type DeferralReason, type DeliveryPlan, type DialOptions } from './dial.js';
import { lookupPonyRecord, type RecordLookup } from './discovery.js';
import { mxMatches, type MtaStsOutcome } from './mta-sts.js';
import type { Pin, PinStore } from './pins.js';
import { includesKey, isAcceptableKey, type PolicyDecision } from './policy.js';
import type { DeliveryMode } from './remote-session.js';
import { resolveNextHops, type NextHop, type RoutingResult } from './routing.js';
import { decideTransport, type TransportDecision } from './transport-lookup.js';
import { errorMessage } from '../error-message.js';

export interface XponyProbe {
  offered: boolean;
  /** The handshake's failure, when it was offered and did not complete. */
  error?: string;
  fingerprint?: string;
  /** The server's Noise static key, base64. */
  key?: string;
  record?: 'match' | 'not-in-record' | 'no-record';
  pin?: 'match' | 'not-pinned' | 'no-pin';
  /**
   * What vouches for this key, strongest first (docs/PROTOCOL.md section 11): a DNSSEC-validated
   * record, the MTA-STS policy file over HTTPS, a pin, an unsigned record; empty: nothing.
   */
  evidence?: KeyEvidence[];
  /** Whether the sender policy accepts this key. */
  acceptedByPolicy?: boolean;
  ageRecipients?: string[];
  /** The first line of the EHLO reply inside the tunnel. */
  innerEhlo?: string;
}

export type KeyEvidence = 'dnssec' | 'https' | 'pin' | 'unsigned-record';

export interface StartTlsProbe {
  offered: boolean;
  error?: string;
  protocol?: string | null;
  cipher?: string;
  /** Whether the certificate chains to a trusted root and names the MX host. */
  certificateValid?: boolean;
  certificateError?: string;
}

export interface AddressProbe {
  host: string;
  address: string;
  port: number;
  preference: number;
  /** Why the address could not be talked to (connect, greeting or EHLO). */
  error?: string;
  greeting?: string;
  ehlo?: string[];
  xpony?: XponyProbe;
  starttls?: StartTlsProbe;
  /** Under an MTA-STS policy: whether this MX host is one it names. */
  mtaStsMatch?: boolean;
}

export type ProbeVerdict =
  /** Mail would go through an XPONY tunnel, to a key the policy accepts. */
  | { outcome: 'xpony'; peer: string; fingerprint: string }
  /** Mail would be delivered without a tunnel; `sealedRelay`: sealed, through an MX without XPONY (sealed-relay.ts). */
  | { outcome: 'legacy'; mode: Exclude<DeliveryMode, 'xpony'>; peer: string; sealedRelay?: true }
  /** Mail would wait in the queue (or be refused): nothing acceptable was reachable. */
  | { outcome: 'undeliverable'; permanent: boolean; reason: string; deferral?: DeferralReason };

export interface ProbeReport {
  domain: string;
  routing: RoutingResult;
  record: RecordLookup;
  /** Keys of the pin, base64 with fingerprints; null: no pin; a string: the pin could not be read. */
  pin: { key: string; fingerprint: string; expiresAt: string }[] | null | string;
  policy: PolicyDecision | { mode: 'defer'; reason: string };
  mtaSts: MtaStsOutcome | 'not-consulted';
  addresses: AddressProbe[];
  verdict: ProbeVerdict;
  /** What the delivery engine tried on the way to its verdict. */
  attempts: string[];
  /** What Postfix's transport lookup answers for the domain: which way its mail is routed, and why. */
  transport: TransportDecision;
}

/** A pin store for probing without a state directory: nothing is pinned, nothing can be. */
export const NO_PINS: PinStore = {
  directory: '(none)',
  get: () => Promise.resolve(null),
  pin: (domain) => Promise.reject(new Error(`pin ${domain}: probing never pins`)),
  forget: () => Promise.resolve(false),
  list: () => Promise.resolve([]),
  prune: () => Promise.resolve([]),
};

/** `seen`: XPONY sightings (the state directory's), for the transport lookup's answer. */
export async function probe(domain: string, options: DialOptions, seen?: (domain: string) => boolean): Promise<ProbeReport> {
  const [routing, record, pin, mtaSts, transport] = await Promise.all([
    resolveNextHops(domain, options.routing),
    lookupPonyRecord(domain, options.policy.resolver, options.policy.validating),
    options.policy.pins.get(domain).catch((error: unknown) => errorMessage(error)),
    options.mtaSts === undefined ? ('not-consulted' as const) : options.mtaSts.policyFor(domain),
    decideTransport(domain, { policy: options.policy, ownKey: () => options.keys.noise.publicKey, ...(seen === undefined ? {} : { seen }) }),
  ]);
  const planned = await planDelivery(domain, options);
  const policy: ProbeReport['policy'] = planned.kind === 'plan' ? planned.plan.policy : { mode: 'defer', reason: planned.reason };
  const addresses: AddressProbe[] = [];
  if (routing.kind === 'hops') {
    for (const hop of routing.hops) {
      for (const address of hop.addresses) {
        const httpsKeys = mtaSts !== 'not-consulted' && mtaSts.kind === 'policy' ? mtaSts.policy.ponyKeys : [];
        const probed = await probeAddress(hop, address, { record, pin, policy, httpsKeys }, options);
        if (mtaSts !== 'not-consulted' && mtaSts.kind === 'policy') probed.mtaStsMatch = mxMatches(mtaSts.policy, hop.host);
        addresses.push(probed);
      }
    }
  }
  const { verdict, attempts } =
    planned.kind === 'plan' ? await deliveryVerdict(planned.plan, options) : { verdict: undeliverable(false, planned.reason, planned.deferral), attempts: [] };
  return { domain, routing, record, pin: pinKeys(pin), policy, mtaSts, addresses, verdict, attempts, transport };
}

function undeliverable(permanent: boolean, reason: string, deferral?: DeferralReason): ProbeVerdict {
  return { outcome: 'undeliverable', permanent, reason, ...(deferral === undefined ? {} : { deferral }) };
}

function pinKeys(pin: Pin | null | string): ProbeReport['pin'] {
  if (pin === null || typeof pin === 'string') return pin;
  return pin.keys.map((k) => ({ key: base64.encode(k.key), fingerprint: fingerprint(k.key), expiresAt: k.expiresAt.toISOString() }));
}

/** The delivery engine's own walk over the next hops, with NOOP in place of MAIL; the session is then closed. */
async function deliveryVerdict(plan: DeliveryPlan, options: DialOptions): Promise<{ verdict: ProbeVerdict; attempts: string[] }> {
  const outcome = await dial(plan, () => 'NOOP', options);
  if (outcome.kind === 'failed') return { verdict: undeliverable(outcome.permanent, outcome.reason, outcome.deferral), attempts: outcome.attempts };
  const session = outcome.session;
  session.quit();
  if (outcome.kind === 'refused')
    return { verdict: undeliverable(false, `${session.describe()}: NOOP answered ${formatReply(outcome.reply)}`), attempts: outcome.attempts };
  const peer = `${session.host}[${session.address}]:${session.port}`;
  const verdict: ProbeVerdict =
    session.mode === 'xpony'
      ? { outcome: 'xpony', peer, fingerprint: session.tunnel!.fingerprint }
      : { outcome: 'legacy', mode: session.mode, peer, ...(session.sealedRelay === undefined ? {} : { sealedRelay: true as const }) };
  return { verdict, attempts: outcome.attempts };
}

interface Trust {
  record: RecordLookup;
  pin: Pin | null | string;
  policy: ProbeReport['policy'];
  /** The keys the domain's MTA-STS policy file names. */
  httpsKeys: readonly Uint8Array[];
}

/** One address: greeting, EHLO and XPONY on one connection, then STARTTLS on a second. */
async function probeAddress(hop: NextHop, address: string, trust: Trust, options: DialOptions): Promise<AddressProbe> {
  const probed: AddressProbe = { host: hop.host, address, port: hop.port, preference: hop.preference };
  let serverKey: Uint8Array | undefined;
  try {
    const result = await connectXpony({
      host: address,
      port: hop.port,
      localHostName: options.hostName,
      keys: options.keys,
      timeoutMs: options.connectTimeoutMs,
      // The full handshake whatever the key: the report compares it; no mail follows.
      requireKey: (key) => {
        serverKey = key;
        return true;
      },
    });
    probed.ehlo = result.ehloLines;
    if (result.kind === 'no-xpony') {
      const greeting = { code: result.greeting.code, enhancedCode: parseEnhancedCode(result.greeting.lines), lines: result.greeting.lines };
      probed.greeting = formatReply(greeting);
      probed.xpony = { offered: false };
      (await SmtpClient.over(result.socket, endpoint(hop, address, options), greeting)).quit();
    } else {
      probed.xpony = { ...keyStanding(result.remoteStaticKey, trust, result.endorsedBy), ageRecipients: result.ageRecipients.map(String) };
      probed.xpony.innerEhlo = await innerEhlo(result.tunnel, hop, address, options).catch((error: unknown) => `failed: ${(error as Error).message}`);
    }
  } catch (error) {
    if (!(error instanceof XponyError)) throw error;
    // The address itself failed: no connection, no 220 greeting, EHLO refused, or no answer in time.
    if (error.kind === 'connect' || error.kind === 'timeout' || /^XPONY protocol: (greeting|EHLO) /.test(error.message)) {
      probed.error = error.message;
      return probed;
    }
    probed.xpony = { ...(serverKey === undefined ? { offered: true } : keyStanding(serverKey, trust)), error: error.message };
  }
  const plain = await probeStartTls(hop, address, options);
  probed.greeting ??= plain.greeting;
  probed.starttls = plain.starttls;
  return probed;
}

const EVIDENCE_RANK: readonly KeyEvidence[] = ['dnssec', 'https', 'pin', 'unsigned-record'];

/** How the server's key stands against the record, the pin and the policy (`endorsedBy`: previous keys that vouched for it). */
function keyStanding(key: Uint8Array, trust: Trust, endorsedBy: readonly Uint8Array[] = []): XponyProbe {
  const encoded = base64.encode(key);
  const record =
    trust.record.kind !== 'record' ? 'no-record' : trust.record.record.noiseKeys.some((k) => base64.encode(k) === encoded) ? 'match' : 'not-in-record';
  const pin =
    trust.pin === null || typeof trust.pin === 'string' ? 'no-pin' : trust.pin.keys.some((k) => base64.encode(k.key) === encoded) ? 'match' : 'not-pinned';
  const evidence: KeyEvidence[] = [];
  if (record === 'match') evidence.push(trust.record.kind === 'record' && trust.record.validated ? 'dnssec' : 'unsigned-record');
  if (includesKey(trust.httpsKeys, key)) evidence.push('https');
  if (pin === 'match') evidence.push('pin');
  evidence.sort((a, b) => EVIDENCE_RANK.indexOf(a) - EVIDENCE_RANK.indexOf(b));
  return {
    offered: true,
    fingerprint: fingerprint(key),
    key: encoded,
    record,
    pin,
    evidence,
    acceptedByPolicy: trust.policy.mode !== 'defer' && isAcceptableKey(trust.policy, key, endorsedBy),
  };
}

function endpoint(hop: NextHop, address: string, options: DialOptions): SmtpEndpoint {
  return { host: address, port: hop.port, timeoutMs: options.commandTimeoutMs, label: hop.host };
}

/** Inside the tunnel: the greeting, EHLO, then QUIT. */
async function innerEhlo(tunnel: Tunnel, hop: NextHop, address: string, options: DialOptions): Promise<string> {
  const client = await SmtpClient.over(tunnel, { ...endpoint(hop, address, options), label: `${hop.host} (tunnel)` });
  try {
    const reply = await client.command(`EHLO ${options.hostName}`);
    return formatReply({ ...reply, lines: reply.lines.slice(0, 1) });
  } finally {
    client.quit();
  }
}

/** A plain connection: EHLO, STARTTLS, and the certificate checked for the MX name without refusing it. */
async function probeStartTls(hop: NextHop, address: string, options: DialOptions): Promise<{ greeting?: string; starttls: StartTlsProbe }> {
  let client: SmtpClient | undefined;
  let greeting: string | undefined;
  let offered = false;
  const result = (starttls: StartTlsProbe): { greeting?: string; starttls: StartTlsProbe } => ({ ...(greeting === undefined ? {} : { greeting }), starttls });
  try {
    client = await SmtpClient.open({ ...endpoint(hop, address, options), timeoutMs: options.connectTimeoutMs });
    greeting = formatReply(client.greeting);
    const ehlo = await client.command(`EHLO ${options.hostName}`);
    if (ehlo.code !== 250) return result({ offered: false, error: `EHLO answered ${formatReply(ehlo)}` });
    offered = ehlo.lines.slice(1).some((line) => /^STARTTLS$/i.test(line.trim()));
    if (!offered) return result({ offered });
    const upgraded = await client.startTls({
      ...(isIP(hop.host) === 0 ? { servername: hop.host } : {}),
      rejectUnauthorized: false,
      ca: [...rootCertificates, ...(options.trustedCa ?? [])],
    });
    if (!(upgraded instanceof SmtpClient)) return result({ offered: true, error: `STARTTLS answered ${formatReply(upgraded)}` });
    client = upgraded;
    const socket = upgraded.transport as TLSSocket;
    const authorizationError = socket.authorizationError as Error | string | null;
    return result({
      offered: true,
      protocol: socket.getProtocol(),
      cipher: socket.getCipher().name,
      certificateValid: socket.authorized,
      ...(socket.authorized || authorizationError === null ? {} : { certificateError: String(authorizationError) }),
    });
  } catch (error) {
    return result({ offered, error: (error as Error).message });
  } finally {
    client?.quit();
  }
}
