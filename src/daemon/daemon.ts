/**
 * The running daemon: the inbound side (port 25 -> Postfix), the outbound side (Postfix -> the
 * world) and the metrics endpoint, as configured. It starts from a validated Config, reloads the
 * configuration and key file on request without dropping sessions, and stops by draining sessions
 * in progress.
 * It logs start, reload, stop and errors; never key material (the fingerprint is public).
 */
import { readFile } from 'node:fs/promises';
import { Resolver } from 'node:dns/promises';
import { join } from 'node:path';
import { fingerprint } from '../crypto/fingerprint.js';
import { loadKeyFile, type Keys } from '../crypto/keyfile.js';
import { AcceptedMessages } from '../inbound/accepted-messages.js';
import { createInboundServer, type InboundServer, type InboundSettings } from '../inbound/inbound-server.js';
import type { Logger } from '../log.js';
import type { DialOptions } from '../outbound/dial.js';
import { ExpiringTable } from '../outbound/expiring-table.js';
import { DEFAULT_MAX_ENTRIES, MtaStsCache, type MtaStsPolicy } from '../outbound/mta-sts.js';
import { createOutboundServer, type OutboundServer } from '../outbound/outbound-server.js';
import { openPinStore } from '../outbound/pins.js';
import { DnsStub, serverAddress, ValidatingResolver } from '../outbound/validated-dns.js';
import type { LocalPolicy, PolicyOptions } from '../outbound/policy.js';
import { DEFAULT_MAX_RECORDS, RecordCache, type RememberedRecord } from '../outbound/record-cache.js';
import type { DeliveryRecord } from '../outbound/transaction.js';
import type { ClientLimitEvent, XponyHandshakeEvent } from '../xpony/index.js';
import { outboundListenerName, type Config } from './config.js';
import { formatEndpoint, type HostPort } from './config-values.js';
import { listen, type Listening } from './listen.js';
import { listenOutbound } from './outbound-listen.js';
import { RepeatLimiter } from './repeat-limiter.js';
import { clientLimitsOf, SharedClientLimits } from './shared-client-limits.js';
import { TableFromPrimary } from './shared-tables.js';
import { VerdictTurnsFromPrimary } from './shared-verdict-turns.js';
import { startTransportMap, type TransportMapService } from './transport-map.js';
import { createMetrics, type Metrics } from './metrics.js';
import { serveMetrics, type MetricsServer } from './metrics-server.js';
import type { Daemon } from './running-daemon.js';
import { isWorker } from './workers.js';
import { errorMessage } from '../error-message.js';

/** Settings a running daemon cannot change, as named in the file: listeners, and what they are. */
const RESTART_ONLY: ReadonlyArray<[string, (config: Config) => unknown]> = [
  ['hostname', (c) => c.hostname],
  ['state_dir', (c) => c.stateDir],
  ['workers', (c) => c.workers],
  ['log.pretty', (c) => c.log.pretty],
  ['inbound.enabled', (c) => c.inbound.enabled],
  ['inbound.listen', (c) => c.inbound.listen],
  ['inbound.accepted_messages', (c) => c.inbound.acceptedMessages],
  ['outbound.enabled', (c) => c.outbound.enabled],
  ['outbound.listen', (c) => c.outbound.listen],
  ['outbound.listen_mode', (c) => c.outbound.listenMode],
  ['outbound.listen_group', (c) => c.outbound.listenGroup],
  ['outbound.protocol', (c) => c.outbound.protocol],
  ['outbound.transport_lookup.listen', (c) => c.outbound.transportLookup.listen],
  ['outbound.transport_lookup.learn_from_ehlo', (c) => c.outbound.transportLookup.learnFromEhlo],
  ['metrics.listen', (c) => c.metrics.listen],
];

/** The restart-only settings that differ between two configurations. */
function restartOnlyChanges(current: Config, next: Config): string[] {
  return RESTART_ONLY.filter(([, get]) => JSON.stringify(get(current)) !== JSON.stringify(get(next))).map(([name]) => name);
}

/** The inbound side's reloadable settings; reads the TLS files. */
async function inboundSettings(config: Config, keys: Keys): Promise<InboundSettings> {
  const inbound = config.inbound;
  const tls = inbound.tls === undefined ? undefined : { cert: await readFile(inbound.tls.cert), key: await readFile(inbound.tls.key) };
  return {
    keys,
    postfix: {
      ...inbound.postfix,
      ...(inbound.sourceAddress === '' ? {} : { localAddress: inbound.sourceAddress }),
      timeoutMs: inbound.timeouts.postfixSeconds * 1000,
    },
    socketTimeoutMs: inbound.timeouts.idleSeconds * 1000,
    maxClients: inbound.maxClients,
    clientLimits: clientLimitsOf(inbound),
    clientIdentity: inbound.clientIdentity,
    ...(inbound.clientNameLookup ? { clientNames: resolverOf(inbound.resolver) } : {}),
    announceSealedRelay: inbound.sealedRelay,
    ...(tls === undefined ? {} : { tls }),
  };
}

/** At most one log line per Postfix endpoint and failure kind in this time; the metric counts every one. */
const POSTFIX_FAILURE_LOG_INTERVAL_MS = 60_000;

/** The accepted messages in state_dir (read now), unless they are not to be remembered. */
async function openAcceptedMessages(config: Config, log: Logger): Promise<AcceptedMessages | undefined> {
  const { days, maxEntries } = config.inbound.acceptedMessages;
  if (days === 0) return undefined;
  return AcceptedMessages.open({
    dir: join(config.stateDir, 'accepted-messages'),
    windowMs: days * 86_400_000,
    maxEntries,
    onError: (error) => log.error({ err: error.message }, 'accepted messages: could not remember a message; a retry of it would be delivered again'),
    // A retry may reach another worker than its first copy; a turn waits for at most two verdicts.
    ...(isWorker() ? { turns: new VerdictTurnsFromPrimary(2 * config.inbound.timeouts.postfixSeconds * 1000) } : {}),
  });
}

async function createInbound(config: Config, keys: Keys, metrics: Metrics, logger: Logger): Promise<InboundServer> {
  const log = logger.child({ side: 'inbound' });
  const postfixFailureLog = new RepeatLimiter(POSTFIX_FAILURE_LOG_INTERVAL_MS);
  const acceptedMessages = await openAcceptedMessages(config, log);
  const server = createInboundServer({
    ...(await inboundSettings(config, keys)),
    hostName: config.hostname,
    // With workers the primary counts each client once for all of them.
    ...(isWorker() ? { clientAdmission: new SharedClientLimits(clientLimitsOf(config.inbound)) } : {}),
    ...(acceptedMessages === undefined ? {} : { acceptedMessages }),
    onSession: (event) => {
      log.debug(`session ${event}`);
      if (event === 'open') metrics.sessionOpened('inbound');
      else metrics.sessionClosed('inbound');
    },
    onMessage: (event) => {
      metrics.inboundMessage(event);
      // One line per message, tied to Postfix's queue id by its reply ("250 2.0.0 Ok: queued as ...").
      const { outcome, via, ...fields } = event;
      const what = `${outcome}${event.retry ? ' (a retry, accepted before)' : ''}: via ${via}${event.sealed ? ', sealed' : ''}`;
      log[outcome === 'accepted' ? 'info' : 'warn']({ outcome, via, ...fields }, `message ${what}`);
    },
    onPostfixFailure: (event) => {
      metrics.postfixFailure(event.kind);
      const held = postfixFailureLog.pass(`${event.postfix} ${event.kind}`);
      if (held === undefined) return;
      // `suppressed`: the same failures since the last line, not logged each.
      log.warn({ ...event, ...(held === 0 ? {} : { suppressed: held }) }, 'postfix unavailable');
    },
  });
  server.server.on('xpony-handshake', (event: XponyHandshakeEvent) => {
    metrics.handshake({ side: 'server', outcome: event.outcome === 'tunnel' ? 'tunnel' : 'failed', seconds: event.seconds });
  });
  // One line each, as Postfix logs each client over an anvil limit.
  server.server.on('client-limit', (event: ClientLimitEvent) => {
    metrics.limitReached(event.limit);
    log.info({ limit: event.limit, client: event.remoteAddress, reply: event.reply }, `limit ${event.limit}: ${event.remoteAddress}`);
  });
  return server;
}

function resolverOf(servers: readonly string[]): Resolver {
  const resolver = new Resolver({ timeout: 5_000, tries: 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  return resolver;
}

/** What this process remembers of other domains: kept across reloads, and with workers shared by all (shared-tables.ts). */
interface Remembered {
  records: ExpiringTable<RememberedRecord>;
  mtaStsPolicies: ExpiringTable<MtaStsPolicy>;
}

async function rememberedTables(): Promise<Remembered> {
  const remembered = {
    records: new ExpiringTable<RememberedRecord>(DEFAULT_MAX_RECORDS),
    mtaStsPolicies: new ExpiringTable<MtaStsPolicy>(DEFAULT_MAX_ENTRIES),
  };
  if (isWorker())
    await Promise.all([remembered.records.share(new TableFromPrimary('records')), remembered.mtaStsPolicies.share(new TableFromPrimary('mta-sts'))]);
  return remembered;
}

/**
 * The outbound side's options. A reload passes the running ones: the pin store (state_dir is
 * restart-only) stays, and so do the remembered records and MTA-STS policies.
 */
async function dialOptions(config: Config, keys: Keys, remembered: Remembered, running?: DialOptions): Promise<DialOptions> {
  const outbound = config.outbound;
  const resolver = resolverOf(outbound.resolver);
  const localPolicies: Record<string, LocalPolicy> = {};
  for (const [domain, policy] of outbound.policies) if (policy !== 'none') localPolicies[domain] = policy;
  const mtaSts = !outbound.mtaSts ? undefined : new MtaStsCache({ resolver, remembered: remembered.mtaStsPolicies });
  return {
    keys,
    hostName: config.hostname,
    routing: { resolver, routes: Object.fromEntries(outbound.routes), mxPort: outbound.mxPort },
    policy: {
      resolver,
      pins: running?.policy.pins ?? (await openPinStore(config.stateDir)),
      recordCache: new RecordCache(remembered.records),
      localPolicies,
      defaultPinMaxAgeDays: outbound.pinMaxAgeDays,
      ...dnssecOptions(resolver, outbound.validatingResolver),
    },
    ...(mtaSts === undefined ? {} : { mtaSts }),
    connectTimeoutMs: outbound.connectTimeoutSeconds * 1000,
    commandTimeoutMs: outbound.commandTimeoutSeconds * 1000,
  };
}

/**
 * The DNS the evidence ranking and the DANE guard ask beside node:dns: the validating resolver
 * when configured, and the outbound resolver's first server asked directly for TLSA (the DANE
 * guard without a validating resolver; none when the system lists none). The probe uses the same.
 */
export function dnssecOptions(resolver: Resolver, validatingResolver: HostPort | null): Pick<PolicyOptions, 'validating' | 'directDns'> {
  const first = resolver.getServers()[0];
  return {
    ...(validatingResolver === null ? {} : { validating: new ValidatingResolver(validatingResolver) }),
    ...(first === undefined ? {} : { directDns: new DnsStub(serverAddress(first)) }),
  };
}

/** Counts one delivery record in the metrics. */
function countDelivery(metrics: Metrics, record: DeliveryRecord): void {
  metrics.delivery({ mode: record.mode ?? 'none', outcome: record.outcome, bytes: record.bytes });
  if (record.deferral !== undefined) metrics.policyDeferral(record.deferral);
  if (record.testingFailure === true) metrics.testingFailure();
  if (record.sealedRelay === true) metrics.sealedRelay(record.outcome);
  if (record.handshakeMs !== undefined) metrics.handshake({ side: 'client', outcome: 'tunnel', seconds: record.handshakeMs / 1000 });
}

async function createOutbound(config: Config, dial: DialOptions, metrics: Metrics, logger: Logger): Promise<OutboundServer> {
  return createOutboundServer({
    dial,
    hostName: outboundListenerName(config),
    lmtp: config.outbound.protocol === 'lmtp',
    sessionIdleMs: config.outbound.tunnelIdleSeconds * 1000,
    logger: logger.child({ side: 'outbound' }),
    onDelivery: (record) => countDelivery(metrics, record),
    onSession: (event) => (event === 'open' ? metrics.sessionOpened('outbound') : metrics.sessionClosed('outbound')),
  });
}

/** Starts the daemon; throws KeyFileError, ListenError or MetricsServerError when it cannot. */
export async function start(config: Config, logger: Logger, metrics: Metrics = createMetrics()): Promise<Daemon> {
  const keys = await loadKeyFile(config.keys);
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(stops.map((stop) => stop()));
  };
  const addresses: Daemon['addresses'] = { inbound: [], outbound: [], transportLookup: undefined, metrics: undefined };
  let inbound: InboundServer | undefined;
  let outbound: OutboundServer | undefined;
  let dial: DialOptions | undefined;
  let remembered: Remembered | undefined;
  let transportMap: TransportMapService | undefined;
  try {
    if (config.inbound.enabled) {
      const server = await createInbound(config, keys, metrics, logger);
      inbound = server;
      let listening: Listening;
      try {
        listening = await listen(server, config.inbound.listen);
      } catch (error) {
        await server.close();
        throw error;
      }
      stops.push(() => Promise.all([server.close(), listening.close()]).then(() => undefined));
      addresses.inbound = listening.addresses;
    }
    if (config.outbound.enabled) {
      remembered = await rememberedTables();
      dial = await dialOptions(config, keys, remembered);
      const server = await createOutbound(config, dial, metrics, logger);
      outbound = server;
      const listening = await listenOutbound(server, config.outbound);
      addresses.outbound = [formatEndpoint(listening)];
      stops.push(() => server.close());
      const lookupTarget = config.outbound.transportLookup.listen;
      if (lookupTarget !== '') {
        const service = await startTransportMap(
          config,
          lookupTarget,
          listening,
          dial,
          metrics,
          logger,
          isWorker() ? new TableFromPrimary('sightings') : undefined,
        );
        transportMap = service;
        addresses.transportLookup = service.address;
        stops.push(() => service.close());
      }
    }
    if (config.metrics.listen !== '') {
      const served: MetricsServer = await serveMetrics(metrics, config.metrics.listen);
      addresses.metrics = served.address;
      stops.push(() => served.close());
    }
  } catch (error) {
    await stopAll();
    throw error;
  }
  let current = config;
  // A worker's line; its primary says "listening" once every worker does (workers.ts).
  logger.info({ addresses, hostname: config.hostname, fingerprint: fingerprint(keys.noise.publicKey) }, isWorker() ? 'worker listening' : 'listening');

  return {
    addresses,
    async reload(next) {
      // Everything that can fail first, so a reload applies whole or not at all.
      let prepared: { keys: Keys; inbound?: InboundSettings; dial?: DialOptions };
      try {
        const nextKeys = await loadKeyFile(next.keys);
        prepared = {
          keys: nextKeys,
          ...(inbound === undefined ? {} : { inbound: await inboundSettings(next, nextKeys) }),
          ...(dial === undefined || remembered === undefined ? {} : { dial: await dialOptions(next, nextKeys, remembered, dial) }),
        };
      } catch (error) {
        logger.error({ err: errorMessage(error) }, 'reload failed; still running with the previous configuration');
        return;
      }
      if (prepared.inbound !== undefined) inbound?.reconfigure(prepared.inbound);
      if (dial !== undefined && prepared.dial !== undefined) {
        if (prepared.dial.mtaSts === undefined) delete dial.mtaSts;
        Object.assign(dial, prepared.dial);
        transportMap?.reconfigure(next, dial);
      }
      if (outbound !== undefined) outbound.cache.idleMs = next.outbound.tunnelIdleSeconds * 1000;
      const unchanged = restartOnlyChanges(current, next);
      if (unchanged.length > 0) logger.warn({ settings: unchanged }, `reload: ${unchanged.join(', ')} changed; these take effect on restart`);
      // A session in progress keeps its settings; the restart-only ones stay as they were.
      current = next;
      logger.info({ keys: next.keys, fingerprint: fingerprint(prepared.keys.noise.publicKey) }, 'reloaded');
    },
    async stop() {
      logger.info({ sessions: inbound?.server.connections.size ?? 0 }, 'stopping: no new connections; waiting for sessions in progress');
      await stopAll();
      logger.info('stopped');
    },
  };
}
