/**
 * The daemon's Prometheus metrics, in a registry of their own (never prom-client's global one, so
 * that two instances, e.g. in tests, share nothing). The inbound and outbound sides know nothing
 * of metrics: they report events through callbacks, and the daemon turns them into calls here.
 *
 * Every label combination starts at 0, so each series exists from the first scrape on and rate()
 * sees the first increment.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { POSTFIX_FAILURE_KINDS, type PostfixFailureKind } from '../inbound/relay-session.js';
import { LIMIT_NAMES, type LimitName } from '../xpony/index.js';
import { VERSION } from '../version.js';

const PREFIX = 'blackpony_';

const SIDES = ['inbound', 'outbound'] as const;
const INBOUND_VIAS = ['xpony', 'starttls', 'plain'] as const;
const INBOUND_OUTCOMES = ['accepted', 'rejected', 'deferred'] as const;
const DELIVERY_MODES = ['xpony', 'starttls', 'plain'] as const;
const DELIVERY_OUTCOMES = ['delivered', 'deferred', 'bounced'] as const;
const HANDSHAKE_SIDES = ['client', 'server'] as const;
const HANDSHAKE_OUTCOMES = ['tunnel', 'failed'] as const;
const DEFERRAL_REASONS = ['enforce', 'downgrade', 'key-mismatch', 'pin-store', 'dns', 'mta-sts'] as const;
const BOOLEANS = ['true', 'false'] as const;
const TRANSPORT_ROUTES = ['blackpony', 'postfix', 'wait', 'not-a-domain'] as const;

/** Which side of the daemon a session belongs to: from remote MTAs, or from Postfix. */
export type SessionSide = (typeof SIDES)[number];
/** How an inbound message arrived. */
export type InboundVia = (typeof INBOUND_VIAS)[number];
export type InboundOutcome = (typeof INBOUND_OUTCOMES)[number];
/** How a delivery reached the remote MX; `none` when no session was made (DNS, policy, unreachable). */
export type DeliveryModeLabel = (typeof DELIVERY_MODES)[number] | 'none';
export type DeliveryOutcomeLabel = (typeof DELIVERY_OUTCOMES)[number];
/** Which Noise role this host played. */
export type HandshakeSide = (typeof HANDSHAKE_SIDES)[number];
export type HandshakeOutcome = (typeof HANDSHAKE_OUTCOMES)[number];
export type PolicyDeferralReason = (typeof DEFERRAL_REASONS)[number];
/** A transport lookup's answer: OK (blackpony), NOTFOUND (Postfix's own delivery), TEMP (wait), or a key that names no domain. */
export type TransportRoute = (typeof TRANSPORT_ROUTES)[number];

/** Noise handshakes take about a millisecond on loopback and seconds over a slow path. */
const HANDSHAKE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface Metrics {
  readonly registry: Registry;
  sessionOpened(side: SessionSide): void;
  sessionClosed(side: SessionSide): void;
  /** `retry`: a peer's retry of a message Postfix had accepted, answered from the accepted messages. */
  inboundMessage(event: { via: InboundVia; sealed: boolean; outcome: InboundOutcome; retry: boolean }): void;
  /** One attempt to deliver to one recipient domain; `bytes` count only when delivered. */
  delivery(event: { mode: DeliveryModeLabel; outcome: DeliveryOutcomeLabel; bytes: number }): void;
  handshake(event: { side: HandshakeSide; outcome: HandshakeOutcome; seconds: number }): void;
  policyDeferral(reason: PolicyDeferralReason): void;
  /** A `p=testing` domain where XPONY failed and the mail went out without it. */
  testingFailure(): void;
  /** A delivery attempt sealed through an MX without XPONY (a backup MX; relay=sealed). */
  sealedRelay(outcome: DeliveryOutcomeLabel): void;
  /** Postfix's listener could not be reached or used; the client got a 451. */
  postfixFailure(kind: PostfixFailureKind): void;
  /** An inbound client ran into a limit and got its 4xx (docs/PROTOCOL.md section 6). */
  limitReached(limit: LimitName): void;
  /** One answer to Postfix's transport lookup, and how long it took. */
  transportLookup(route: TransportRoute, seconds: number): void;
}

/** Every combination of the given label values, for starting each series at 0. */
function combinations<L extends string>(values: Record<L, readonly string[]>): Record<L, string>[] {
  return Object.entries<readonly string[]>(values).reduce<Record<string, string>[]>(
    (partial, [name, choices]) => partial.flatMap((labels) => choices.map((choice) => ({ ...labels, [name]: choice }))),
    [{}],
  );
}

function counter<L extends string>(registry: Registry, name: string, help: string, labels: Record<L, readonly string[]>): Counter<L> {
  const metric = new Counter<L>({ name: PREFIX + name, help, labelNames: Object.keys(labels) as L[], registers: [registry] });
  for (const combination of combinations(labels)) metric.inc(combination, 0);
  return metric;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: PREFIX });

  // aggregator: a primary sums its workers' metrics (workers.ts), all but this one.
  new Gauge({
    name: `${PREFIX}build_info`,
    help: 'Always 1; the version is in the label.',
    labelNames: ['version'],
    aggregator: 'first',
    registers: [registry],
  }).set({ version: VERSION }, 1);

  const sessionsTotal = counter(registry, 'sessions_total', 'SMTP sessions greeted: inbound from remote MTAs, outbound from Postfix.', { side: SIDES });
  const sessionsActive = new Gauge({
    name: `${PREFIX}sessions_active`,
    help: 'SMTP sessions greeted and open now.',
    labelNames: ['side'],
    registers: [registry],
  });
  for (const side of SIDES) sessionsActive.set({ side }, 0);

  const inboundMessages = counter(
    registry,
    'inbound_messages_total',
    'Messages received from remote MTAs, by transport, age sealing and what Postfix answered.',
    {
      via: INBOUND_VIAS,
      sealed: BOOLEANS,
      outcome: INBOUND_OUTCOMES,
    },
  );
  const retriesAnswered = new Counter({
    name: `${PREFIX}inbound_retries_answered_total`,
    help: 'Messages a peer sent again through a tunnel after our 250 was lost, answered 250 from the accepted messages without a second copy to Postfix.',
    registers: [registry],
  });
  const deliveries = counter(registry, 'deliveries_total', 'Delivery attempts to one recipient domain; mode "none" when no session with its MX was made.', {
    mode: [...DELIVERY_MODES, 'none'],
    outcome: DELIVERY_OUTCOMES,
  });
  const deliveryBytes = counter(registry, 'delivery_bytes_total', 'Message bytes delivered to remote MTAs, by transport.', { mode: DELIVERY_MODES });

  const handshakeSeconds = new Histogram({
    name: `${PREFIX}handshake_seconds`,
    help: 'XPONY Noise handshakes, from the XPONY command to the open tunnel or the failure.',
    labelNames: ['side', 'outcome'],
    buckets: HANDSHAKE_BUCKETS,
    registers: [registry],
  });
  for (const labels of combinations({ side: HANDSHAKE_SIDES, outcome: HANDSHAKE_OUTCOMES })) handshakeSeconds.zero(labels);

  const policyDeferrals = counter(registry, 'policy_deferrals_total', 'Mail deferred rather than sent less safely than policy or a pin requires, by reason.', {
    reason: DEFERRAL_REASONS,
  });
  const limitRefusals = counter(
    registry,
    'limit_refusals_total',
    'Inbound clients refused or cut off by a limit, named as its setting (max_clients, inbound.limits.*).',
    { limit: LIMIT_NAMES },
  );
  const transportLookups = new Histogram({
    name: `${PREFIX}transport_lookup_seconds`,
    help: "Postfix's transport lookups by answer: blackpony (OK), postfix (NOTFOUND), wait (TEMP), not-a-domain (NOTFOUND for an address or wildcard key).",
    labelNames: ['route'],
    buckets: [0.0001, 0.001, 0.01, 0.1, 0.5, 1, 5, 10],
    registers: [registry],
  });
  for (const route of TRANSPORT_ROUTES) transportLookups.zero({ route });
  const testingFailures = new Counter({
    name: `${PREFIX}testing_failures_total`,
    help: 'p=testing domains where XPONY failed and delivery fell back.',
    registers: [registry],
  });
  const sealedRelays = counter(
    registry,
    'sealed_relays_total',
    'Deliveries sealed through an MX without XPONY (a backup MX, the record saying relay=sealed), by outcome.',
    { outcome: DELIVERY_OUTCOMES },
  );
  const postfixFailures = counter(
    registry,
    'postfix_failures_total',
    "Inbound: Postfix's listener not reached (connect, timeout), refusing the relay (refused) or gone mid-session (lost); each cost a client a 451.",
    {
      kind: POSTFIX_FAILURE_KINDS,
    },
  );

  return {
    registry,
    sessionOpened(side) {
      sessionsTotal.inc({ side });
      sessionsActive.inc({ side });
    },
    sessionClosed(side) {
      sessionsActive.dec({ side });
    },
    inboundMessage({ via, sealed, outcome, retry }) {
      inboundMessages.inc({ via, sealed: String(sealed), outcome });
      if (retry) retriesAnswered.inc();
    },
    delivery({ mode, outcome, bytes }) {
      deliveries.inc({ mode, outcome });
      if (outcome === 'delivered' && mode !== 'none') deliveryBytes.inc({ mode }, bytes);
    },
    handshake({ side, outcome, seconds }) {
      handshakeSeconds.observe({ side, outcome }, seconds);
    },
    policyDeferral(reason) {
      policyDeferrals.inc({ reason });
    },
    testingFailure() {
      testingFailures.inc();
    },
    sealedRelay(outcome) {
      sealedRelays.inc({ outcome });
    },
    postfixFailure(kind) {
      postfixFailures.inc({ kind });
    },
    limitReached(limit) {
      limitRefusals.inc({ limit });
    },
    transportLookup(route, seconds) {
      transportLookups.observe({ route }, seconds);
    },
  };
}
