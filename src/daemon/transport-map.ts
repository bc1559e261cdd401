/**
 * The transport lookup as a daemon service: the socketmap listener Postfix's trivial-rewrite asks
 * per recipient domain (outbound.transport_lookup), with the XPONY sightings it learns from, its
 * log lines and metrics. See src/outbound/transport-lookup.ts for the decision.
 */
import { once } from 'node:events';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { DialOptions } from '../outbound/dial.js';
import { createSocketmapServer } from '../outbound/socketmap.js';
import type { SharedTable } from '../outbound/shared-table.js';
import { Sightings } from '../outbound/sightings.js';
import type { SightingChange } from '../outbound/sightings-table.js';
import { TransportLookup, type TransportLookupOptions } from '../outbound/transport-lookup.js';
import type { Config } from './config.js';
import { LOOKUP_REVEALS } from './config-schema.js';
import { formatEndpoint, formatHostPort, type Endpoint, type HostPort } from './config-values.js';
import { listenOnNamedSocket, ListenError, SOCKET_NAMES, type LoopbackLeg } from './listen.js';
import type { Metrics } from './metrics.js';
import { errorMessage } from '../error-message.js';

const SETTING = 'outbound.transport_lookup.listen';
/** The socket systemd passes for outbound.transport_lookup.listen "systemd". */
export const LOOKUP_LEG: LoopbackLeg = { setting: SETTING, name: SOCKET_NAMES.transportLookup, why: LOOKUP_REVEALS };

/** A temporary failure is asked again soon, whatever cache_seconds says. */
const TEMPORARY_CACHE_MS = 10_000;
const SECONDS_PER_DAY = 86_400;

export interface TransportMapService {
  readonly address: string;
  readonly lookup: TransportLookup;
  readonly sightings: Sightings | undefined;
  /** New settings and policy sources (a reload); the listener stays. */
  reconfigure(config: Config, dial: DialOptions): void;
  close(): Promise<void>;
}

/**
 * The `transport:nexthop` Postfix gets for blackpony domains: the configured master.cf service,
 * with blackpony's outbound listener (where it listens: a socket systemd passed has no address in
 * the configuration) as next hop in the syntax of that service's client.
 */
export function transportAnswer(config: Config, listen: Endpoint): string {
  const { protocol, transportLookup } = config.outbound;
  if ('path' in listen) return `${transportLookup.transport}:unix:${listen.path}`;
  const hostPort = `[${listen.host}]:${listen.port}`;
  return `${transportLookup.transport}:${protocol === 'lmtp' ? `inet:${hostPort}` : hostPort}`;
}

function lookupOptions(config: Config, outbound: Endpoint, dial: DialOptions, sightings: Sightings | undefined): TransportLookupOptions {
  const settings = config.outbound.transportLookup;
  return {
    policy: dial.policy,
    ownKey: () => dial.keys.noise.publicKey,
    answer: transportAnswer(config, outbound),
    cacheMs: settings.cacheSeconds * 1000,
    temporaryCacheMs: Math.min(TEMPORARY_CACHE_MS, settings.cacheSeconds * 1000),
    deadlineMs: settings.timeoutSeconds * 1000,
    ...(sightings === undefined ? {} : { seen: (domain: string) => sightings.has(domain), onPostfixRoute: (domain: string) => sightings.consider(domain) }),
  };
}

/** Starts the lookup on `target`, answering with `outbound`, where the outbound side listens. */
async function listenOnAddress(server: Server, target: HostPort): Promise<Endpoint> {
  server.listen(target.port, target.host);
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error as Error))]);
  } catch (error) {
    throw new ListenError(`${SETTING}: ${formatHostPort(target)}: ${errorMessage(error)}`);
  }
  const address = server.address() as AddressInfo;
  return { host: address.address, port: address.port };
}

export async function startTransportMap(
  config: Config,
  target: HostPort | 'systemd',
  outbound: Endpoint,
  dial: DialOptions,
  metrics: Metrics,
  logger: Logger,
  /** With workers: the sightings all of them learn (shared-tables.ts). */
  shared?: SharedTable<SightingChange>,
): Promise<TransportMapService> {
  const log = logger.child({ side: 'transport-lookup' });
  const settings = config.outbound.transportLookup;
  let lookup: TransportLookup | undefined;
  const sightings = !settings.learnFromEhlo
    ? undefined
    : await Sightings.open({
        stateDir: config.stateDir,
        lifetimeMs: settings.sightingDays * SECONDS_PER_DAY * 1000,
        reprobeMs: settings.reprobeHours * 3_600_000,
        routing: dial.routing,
        hostName: config.hostname,
        probeTimeoutMs: dial.connectTimeoutMs,
        ...(shared === undefined ? {} : { shared }),
        onChange: (domain, seen, here) => {
          lookup?.forget(domain);
          // Once, by the worker that learned it.
          if (here)
            log.info(
              { domain, seen },
              seen ? `XPONY seen at ${domain}'s MX: routed to blackpony from now on` : `XPONY no longer offered at ${domain}'s MX: routed to Postfix`,
            );
        },
        onError: (error) => log.warn({ err: error.message }, 'XPONY sightings not saved'),
      });
  lookup = new TransportLookup(lookupOptions(config, outbound, dial, sightings));
  // Every session blackpony makes teaches too: a domain whose MX stops offering XPONY goes back to Postfix.
  if (sightings !== undefined) dial.onEhlo = (domain, keywords) => sightings.learn(domain, keywords);
  const server = createSocketmapServer(async (map, key) => {
    const started = performance.now();
    const { answer, decision } = await lookup.lookup(key);
    metrics.transportLookup(decision?.route ?? 'not-a-domain', (performance.now() - started) / 1000);
    if (decision !== null)
      log.debug({ map, key, domain: decision.domain, route: decision.route, reason: decision.reason }, `${key}: ${decision.route} (${decision.reason})`);
    return answer;
  });
  // Postfix keeps its socketmap connections open between lookups: a stop closes them.
  const connections = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
  const address = target === 'systemd' ? await listenOnNamedSocket(server, LOOKUP_LEG) : await listenOnAddress(server, target);
  return {
    address: formatEndpoint(address),
    lookup,
    sightings,
    reconfigure(next, nextDial) {
      lookup.reconfigure(lookupOptions(next, outbound, nextDial, sightings));
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of connections) socket.destroy();
      });
      await sightings?.idle();
    },
  };
}
