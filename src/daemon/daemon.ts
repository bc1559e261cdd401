/**
 * The running daemon: the inbound side (port 25 -> Postfix), the outbound side (Postfix -> the
 * world) and the metrics endpoint, as configured. It starts from a validated Config, reloads the
 * key file on request without dropping sessions, and stops by draining sessions in progress.
 * It logs start, reload, stop and errors; never key material (the fingerprint is public).
 */
import { readFile } from 'node:fs/promises';
import { Resolver } from 'node:dns/promises';
import { fingerprint } from '../crypto/fingerprint.js';
import { loadKeyFile, type Keys } from '../crypto/keyfile.js';
import { createInboundServer, type InboundServer } from '../inbound/inbound-server.js';
import type { Logger } from '../log.js';
import type { DialOptions } from '../outbound/dial.js';
import { MtaStsCache } from '../outbound/mta-sts.js';
import { createOutboundServer, type OutboundServer } from '../outbound/outbound-server.js';
import { openPinStore } from '../outbound/pins.js';
import type { LocalPolicy } from '../outbound/policy.js';
import { RecordCache } from '../outbound/record-cache.js';
import type { DeliveryRecord } from '../outbound/transaction.js';
import type { XponyHandshakeEvent } from '../protocol/server.js';
import type { Config } from './config.js';
import { formatHostPort } from './config-schema.js';
import { listen, ListenError, type Listening } from './listen.js';
import { createMetrics, type Metrics } from './metrics.js';
import { serveMetrics, type MetricsServer } from './metrics-server.js';

export interface Daemon {
  readonly addresses: { inbound: string[]; outbound: string[]; metrics: string | undefined };
  /** Applies a new configuration's key file to new sessions; a failure is logged and the old keys stay. */
  reload(next: Config): Promise<void>;
  /** Stops accepting connections and waits for sessions in progress (each side's bound: 30 s). */
  stop(): Promise<void>;
}

/** Replies to a command from Postfix may take this long: the remote side's own timeouts (RFC 5321 4.5.3.2). */
const COMMAND_TIMEOUT_MS = 300_000;

/** The settings a running daemon cannot change: a reload leaves them as they were. */
function restartOnlySettings(config: Config): string {
  const { hostname, inbound, outbound, metrics, stateDir } = config;
  return JSON.stringify({ hostname, inbound, outbound: { ...outbound, routes: [...outbound.routes], policies: [...outbound.policies] }, metrics, stateDir });
}

async function createInbound(config: Config, keys: Keys, metrics: Metrics): Promise<InboundServer> {
  const inbound = config.inbound;
  const tls = inbound.tls === undefined ? undefined : { cert: await readFile(inbound.tls.cert), key: await readFile(inbound.tls.key) };
  const server = createInboundServer({
    keys,
    hostName: config.hostname,
    postfix: { host: inbound.postfix.host, port: inbound.postfix.port, timeoutMs: inbound.timeouts.postfixSeconds * 1000 },
    socketTimeoutMs: inbound.timeouts.idleSeconds * 1000,
    maxClients: inbound.maxClients,
    clientIdentity: inbound.clientIdentity,
    ...(tls === undefined ? {} : { tls }),
    onSession: (event) => (event === 'open' ? metrics.sessionOpened('inbound') : metrics.sessionClosed('inbound')),
    onMessage: (event) => metrics.inboundMessage(event),
  });
  server.server.on('xpony-handshake', (event: XponyHandshakeEvent) => {
    metrics.handshake({ side: 'server', outcome: event.outcome === 'tunnel' ? 'tunnel' : 'failed', seconds: event.seconds });
  });
  return server;
}

function resolverOf(servers: readonly string[]): Resolver {
  const resolver = new Resolver({ timeout: 5_000, tries: 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  return resolver;
}

async function dialOptions(config: Config, keys: Keys): Promise<DialOptions> {
  const outbound = config.outbound;
  const resolver = resolverOf(outbound.resolver);
  const localPolicies: Record<string, LocalPolicy> = {};
  for (const [domain, policy] of outbound.policies) if (policy !== 'none') localPolicies[domain] = policy;
  return {
    keys,
    hostName: config.hostname,
    routing: { resolver, routes: Object.fromEntries(outbound.routes), mxPort: outbound.mxPort },
    policy: { resolver, pins: await openPinStore(config.stateDir), recordCache: new RecordCache(), localPolicies, defaultPinMaxAgeDays: outbound.pinMaxAgeDays },
    ...(outbound.mtaSts ? { mtaSts: new MtaStsCache({ resolver }) } : {}),
    connectTimeoutMs: outbound.connectTimeoutSeconds * 1000,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
  };
}

/** Counts one delivery record in the metrics. */
function countDelivery(metrics: Metrics, record: DeliveryRecord): void {
  metrics.delivery({ mode: record.mode ?? 'none', outcome: record.outcome, bytes: record.bytes });
  if (record.deferral !== undefined) metrics.policyDeferral(record.deferral);
  if (record.testingFailure === true) metrics.testingFailure();
  if (record.handshakeMs !== undefined) metrics.handshake({ side: 'client', outcome: 'tunnel', seconds: record.handshakeMs / 1000 });
}

async function createOutbound(config: Config, dial: DialOptions, metrics: Metrics, logger: Logger): Promise<OutboundServer> {
  return createOutboundServer({
    dial,
    hostName: config.hostname,
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
  const addresses: { inbound: string[]; outbound: string[]; metrics: string | undefined } = { inbound: [], outbound: [], metrics: undefined };
  let inbound: InboundServer | undefined;
  let dial: DialOptions | undefined;
  try {
    if (config.inbound.enabled) {
      const server = await createInbound(config, keys, metrics);
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
      dial = await dialOptions(config, keys);
      const server = await createOutbound(config, dial, metrics, logger);
      const target = config.outbound.listen;
      try {
        const address = await server.listen(target.port, target.host);
        addresses.outbound = [formatHostPort({ host: address.address, port: address.port })];
      } catch (error) {
        throw new ListenError(`outbound.listen: ${formatHostPort(target)}: ${error instanceof Error ? error.message : String(error)}`);
      }
      stops.push(() => server.close());
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
  logger.info({ addresses, hostname: config.hostname, fingerprint: fingerprint(keys.noise.publicKey) }, 'listening');

  return {
    addresses,
    async reload(next) {
      let nextKeys: Keys;
      try {
        nextKeys = await loadKeyFile(next.keys);
      } catch (error) {
        logger.error({ err: error instanceof Error ? error.message : String(error) }, 'reload failed; still running with the previous keys');
        return;
      }
      inbound?.setKeys(nextKeys);
      if (dial !== undefined) dial.keys = nextKeys;
      if (restartOnlySettings(next) !== restartOnlySettings(current)) {
        logger.warn('reload: only the key file is reloaded; other settings take effect on restart');
      }
      current = next;
      logger.info({ keys: next.keys, fingerprint: fingerprint(nextKeys.noise.publicKey) }, 'reloaded');
    },
    async stop() {
      logger.info({ sessions: inbound?.server.connections.size ?? 0 }, 'stopping: no new connections; waiting for sessions in progress');
      await stopAll();
      logger.info('stopped');
    },
  };
}
