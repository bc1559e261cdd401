/**
 * More than one core (the `workers` setting): a primary process and N worker processes, made with
 * node:cluster. Each worker runs the whole daemon (daemon.ts) as one process would, on listening
 * sockets the primary holds: it binds them when the first worker asks (a configured address, a
 * unix socket file, or the sockets systemd passed it, the loopback legs' checked here), accepts
 * each connection and hands it to the next worker in turn (cluster's round-robin), so an idle
 * worker gets the next client.
 *
 * The primary serves no mail. It holds the sockets, the one metrics endpoint (summing the
 * workers' counters, asked over IPC at each scrape), the counts of max_clients and the
 * per-client limits (shared-client-limits.ts), the turns of messages at Postfix's verdict
 * (shared-verdict-turns.ts) and what the workers remember of other domains (XPONY sightings,
 * `_pony` records, MTA-STS policies: shared-tables.ts). It restarts a worker that dies, passes
 * SIGHUP on, and on SIGTERM stops every worker (each drains its sessions as one process would)
 * before it exits.
 * `workers: 1` runs no primary: the daemon is this process, as before.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { fingerprint } from '../crypto/fingerprint.js';
import { loadKeyFile } from '../crypto/keyfile.js';
import { SightingsTable } from '../outbound/sightings-table.js';
import type { Logger } from '../log.js';
import type { Config } from './config.js';
import type { Daemon } from './running-daemon.js';
import { socketsForWorkers, WORKER_SOCKETS_VARIABLE } from './listen.js';
import type { Metrics } from './metrics.js';
import { serveMetrics, type MetricsServer } from './metrics-server.js';
import { OUTBOUND_LEG } from './outbound-listen.js';
import { ClientLimitsForWorkers, clientLimitsOf } from './shared-client-limits.js';
import { TablesForWorkers } from './shared-tables.js';
import { VerdictTurnsForWorkers } from './shared-verdict-turns.js';
import { removeStaleSocket } from './socket-file.js';
import { LOOKUP_LEG } from './transport-map.js';

/** `workers: auto` starts at most this many (each holds its own caches and keys). */
export const MAX_AUTO_WORKERS = 4;
/**
 * `workers: auto` leaves this many cores per worker: blackpony runs beside the MTA it relays for,
 * which spends about as much CPU per message again (`npm run bench:e2e`). On 2 cores, one worker
 * per core made mail drain a fifth slower than one process: the workers contend with Postfix.
 */
const CORES_PER_AUTO_WORKER = 2;
/** How long a scrape waits for each worker's counters before it fails (the sum would be short). */
const METRICS_ANSWER_MS = 5_000;

/** How many worker processes `setting` means on this machine. */
export function workerProcessCount(setting: Config['workers'], cores = availableParallelism()): number {
  if (setting !== 'auto') return setting;
  return Math.max(1, Math.min(Math.floor(cores / CORES_PER_AUTO_WORKER), MAX_AUTO_WORKERS));
}

/** Whether this process is a worker that a primary started. */
export function isWorker(): boolean {
  return cluster.isWorker;
}

/** What a worker tells its primary. */
type WorkerMessage =
  | { blackpony: 'listening'; addresses: Daemon['addresses'] }
  | { blackpony: 'reloaded' }
  | { blackpony: 'metrics'; request: number; metrics: MetricObjectWithValues<MetricValue<string>>[] };
/** What the primary asks a worker. */
type PrimaryMessage = { blackpony: 'metrics'; request: number };

/** A worker's configuration: the primary serves the metrics. */
export function workerConfig(config: Config): Config {
  return { ...config, metrics: { ...config.metrics, listen: '' } };
}

/** In a worker, its log lines name it: cluster's worker number (1, 2, ...; a restarted one gets the next) and its pid. */
export function workerLogger(logger: Logger): Logger {
  return cluster.isWorker ? logger.child({ worker: cluster.worker?.id, pid: process.pid }) : logger;
}

/**
 * In a worker, once the daemon listens: tells the primary (which waits for every worker before
 * it says it listens) and answers its requests for the counters.
 */
export function reportToPrimary(daemon: Daemon, metrics: Metrics): void {
  const send = (message: WorkerMessage): void => {
    process.send?.(message);
  };
  process.on('message', (message: PrimaryMessage) => {
    if (message?.blackpony !== 'metrics') return;
    void metrics.registry.getMetricsAsJSON().then((json) => send({ blackpony: 'metrics', request: message.request, metrics: json }));
  });
  send({ blackpony: 'listening', addresses: daemon.addresses });
}

/** In a worker, after a reload (done or failed): the primary waits for every worker's before it is ready again. */
export function reportReloaded(): void {
  process.send?.({ blackpony: 'reloaded' } satisfies WorkerMessage);
}

/** How long the primary waits for its workers' reloads before it says it is ready again anyway. */
const RELOAD_ANSWER_MS = 60_000;

export interface Primary {
  /**
   * Passes SIGHUP to every worker: each reloads the configuration and key file itself and names
   * the restart-only settings that changed, but for the one only the primary has (metrics.listen).
   * Resolves once every worker has reloaded (or exited), so that readiness follows the reload.
   */
  reload(next: Config): Promise<void>;
  /** Stops every worker (each drains its sessions) and the metrics endpoint; resolves with the exit code. */
  stop(): Promise<number>;
}

class WorkerStartError extends Error {
  override readonly name = 'WorkerStartError';
}

/** The workers this primary started that have not exited. */
function allWorkers(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined);
}

function describeExit(code: number | null, signal: string | null): string {
  return signal !== null ? `killed by ${signal}` : `exit code ${code}`;
}

/**
 * Starts `count` workers and resolves once every one of them listens: the one point where the
 * whole daemon is ready (logged "listening"). Throws if a worker cannot start; the others are
 * stopped then. `onFailure` is called when a restarted worker cannot start: the primary has
 * stopped them all by then and should exit with the code given.
 */
export async function startPrimary(config: Config, logger: Logger, count: number, onFailure: (code: number) => void): Promise<Primary> {
  const env: Record<string, string> = {};
  const { inbound, outbound } = config;
  const inboundSystemd = inbound.enabled && inbound.listen === 'systemd';
  const legs = [
    ...(outbound.enabled && outbound.listen === 'systemd' ? [OUTBOUND_LEG] : []),
    ...(outbound.enabled && outbound.transportLookup.listen === 'systemd' ? [LOOKUP_LEG] : []),
  ];
  if (inboundSystemd || legs.length > 0) {
    // Read and checked here, where the fds are the passed sockets; the workers listen on the same
    // numbers through the primary.
    env[WORKER_SOCKETS_VARIABLE] = JSON.stringify(await socketsForWorkers(inboundSystemd ? 'inbound.listen' : legs[0]!.setting, legs));
  }
  const outboundListen = config.outbound.listen;
  const socketFile = config.outbound.enabled && outboundListen !== 'systemd' && 'path' in outboundListen ? outboundListen.path : undefined;
  if (socketFile !== undefined) {
    // The primary binds the file (a worker cannot tell a live one of its siblings from another program's).
    await removeStaleSocket(socketFile, `outbound.listen: unix:${socketFile}`);
    // Created owner-only; a worker sets the configured mode and group once it listens.
    process.umask(process.umask() | 0o077);
  }

  const listening = new Map<number, WorkerMessage & { blackpony: 'listening' }>();
  const metricsWaiters = new Map<number, { worker: Worker; done: (metrics: MetricObjectWithValues<MetricValue<string>>[] | undefined) => void }>();
  let nextRequest = 0;
  let stopping = false;
  let metricsServer: MetricsServer | undefined;
  let firstStart: { resolve: () => void; reject: (error: Error) => void } | undefined;
  /** The workers whose reload is still under way. */
  let reloading: { pending: Set<number>; done: () => void } | undefined;
  const reloadedOrGone = (worker: Worker): void => {
    if (reloading?.pending.delete(worker.id) === true && reloading.pending.size === 0) reloading.done();
  };

  // Each client counted once, for every worker (inbound.limits), and every connection (max_clients), as in one process.
  const clientLimits = config.inbound.enabled ? new ClientLimitsForWorkers(clientLimitsOf(config.inbound), config.inbound.maxClients) : undefined;
  // A message's end at Postfix one at a time, whichever worker its retries reach (XPONY-ID).
  const verdictTurns = config.inbound.enabled && config.inbound.acceptedMessages.days > 0 ? new VerdictTurnsForWorkers() : undefined;
  // A record, policy or sighting one worker learns holds in every worker; one process writes the sightings' file.
  const lookup = outbound.transportLookup;
  const learnsSightings = lookup.listen !== '' && lookup.learnFromEhlo;
  const remembered = !outbound.enabled
    ? undefined
    : new TablesForWorkers(
        !learnsSightings
          ? undefined
          : await SightingsTable.open({
              stateDir: config.stateDir,
              persist: true,
              onError: (error) => logger.warn({ err: error.message }, 'XPONY sightings not saved'),
            }),
      );
  // Structured clone, not JSON: the remembered records and policies hold keys as Uint8Arrays.
  cluster.setupPrimary({ serialization: 'advanced' });
  const fork = (): Worker => {
    const worker = cluster.fork(env);
    clientLimits?.serve(worker);
    verdictTurns?.serve(worker);
    remembered?.serve(worker);
    worker.on('message', (message: WorkerMessage) => {
      if (message?.blackpony === 'listening') {
        listening.set(worker.id, message);
        if (firstStart !== undefined && listening.size === count) firstStart.resolve();
      } else if (message?.blackpony === 'metrics') {
        metricsWaiters.get(message.request)?.done(message.metrics);
      } else if (message?.blackpony === 'reloaded') {
        reloadedOrGone(worker);
      }
    });
    return worker;
  };

  const stopWorkers = async (): Promise<boolean> => {
    stopping = true;
    const workers = allWorkers();
    const exits = workers.map(
      (worker) =>
        new Promise<boolean>((resolve) => {
          if (worker.isDead()) return resolve(worker.process.exitCode === 0);
          worker.once('exit', (code) => resolve(code === 0));
          worker.process.kill('SIGTERM');
        }),
    );
    const clean = (await Promise.all(exits)).every(Boolean);
    await Promise.all([metricsServer?.close(), remembered?.saved()]);
    return clean;
  };

  cluster.on('exit', (worker, code, signal) => {
    const wasListening = listening.delete(worker.id);
    reloadedOrGone(worker);
    for (const waiter of metricsWaiters.values()) if (waiter.worker === worker) waiter.done(undefined);
    if (stopping) return;
    const fields = { worker: worker.id, pid: worker.process.pid, code, signal };
    if (!wasListening) {
      // A worker that cannot start would fail again: the primary stops, as one process would.
      const reason = `worker ${worker.id} (pid ${worker.process.pid}) stopped before it listened (${describeExit(code, signal)}); its log lines say why`;
      logger.error(fields, reason);
      if (firstStart !== undefined) firstStart.reject(new WorkerStartError(reason));
      else void stopWorkers().then(() => onFailure(1));
      return;
    }
    logger.error(fields, `worker ${worker.id} (pid ${worker.process.pid}) died (${describeExit(code, signal)}); starting another, the others keep serving`);
    fork();
  });

  const started = new Promise<void>((resolve, reject) => (firstStart = { resolve, reject }));
  for (let index = 0; index < count; index++) fork();
  try {
    await started;
  } catch (error) {
    await stopWorkers();
    throw error;
  } finally {
    firstStart = undefined;
  }

  /** Every listening worker's counters, summed (gauges too: sessions open in all; see metrics.ts for the exceptions). */
  const collect = async (): Promise<string> => {
    const workers = allWorkers().filter((worker) => listening.has(worker.id) && worker.isConnected());
    const answers = await Promise.all(
      workers.map(
        (worker) =>
          new Promise<MetricObjectWithValues<MetricValue<string>>[] | undefined>((resolve, reject) => {
            const request = nextRequest++;
            const timer = setTimeout(() => {
              metricsWaiters.delete(request);
              reject(new Error(`worker ${worker.id} (pid ${worker.process.pid}) did not answer within ${METRICS_ANSWER_MS / 1000} s`));
            }, METRICS_ANSWER_MS);
            // A worker that exits meanwhile is left out: its counters went with it.
            metricsWaiters.set(request, { worker, done: (metrics) => (clearTimeout(timer), metricsWaiters.delete(request), resolve(metrics)) });
            // A channel closed meanwhile (the worker is exiting) is an answer with nothing, not an error event.
            worker.send({ blackpony: 'metrics', request } satisfies PrimaryMessage, undefined, (error) => {
              if (error !== null) metricsWaiters.get(request)?.done(undefined);
            });
          }),
      ),
    );
    return AggregatorRegistry.aggregate(answers.filter((answer) => answer !== undefined)).metrics();
  };

  if (config.metrics.listen !== '') {
    try {
      metricsServer = await serveMetrics({ registry: { contentType: Registry.PROMETHEUS_CONTENT_TYPE, metrics: collect } }, config.metrics.listen);
    } catch (error) {
      await stopWorkers();
      throw error;
    }
  }
  const first = [...listening.values()][0]!;
  logger.info(
    {
      addresses: { ...first.addresses, metrics: metricsServer?.address },
      hostname: config.hostname,
      fingerprint: fingerprint((await loadKeyFile(config.keys)).noise.publicKey),
      workers: allWorkers().map((worker) => worker.process.pid),
    },
    'listening',
  );

  return {
    async reload(next) {
      // Compared with what it serves: the file it started with.
      if (JSON.stringify(next.metrics.listen) !== JSON.stringify(config.metrics.listen)) {
        logger.warn({ settings: ['metrics.listen'] }, 'reload: metrics.listen changed; this takes effect on restart');
      }
      clientLimits?.configure(clientLimitsOf(next.inbound), next.inbound.maxClients);
      const workers = allWorkers();
      const done = new Promise<void>((resolve) => {
        reloading = { pending: new Set(workers.map((worker) => worker.id)), done: resolve };
        if (workers.length === 0) resolve();
      });
      for (const worker of workers) worker.process.kill('SIGHUP');
      logger.info({ workers: workers.length }, 'reload passed on to every worker');
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), RELOAD_ANSWER_MS)));
      const answered = await Promise.race([done.then(() => true), late]);
      clearTimeout(timer);
      const waiting = [...(reloading?.pending ?? [])];
      reloading = undefined;
      if (answered) logger.info({ workers: workers.length }, 'reload done in every worker');
      else
        logger.warn(
          { workers: waiting },
          `reload: no answer from ${waiting.length} worker(s) after ${RELOAD_ANSWER_MS / 1000} s; ready again anyway (the listeners never closed)`,
        );
    },
    async stop() {
      logger.info({ workers: allWorkers().length }, 'stopping: every worker drains its sessions');
      const clean = await stopWorkers();
      logger.info(clean ? 'stopped' : 'stopped; a worker did not exit cleanly (its log lines say why)');
      return clean ? 0 : 1;
    },
  };
}
