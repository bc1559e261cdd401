/**
 * The running daemon: for now the inbound side only. It starts from a validated Config, reloads
 * the key file on request without dropping sessions, and stops by draining sessions in progress.
 * It logs start, reload, stop and errors; never key material (the fingerprint is public).
 */
import { fingerprint } from '../crypto/fingerprint.js';
import { loadKeyFile, type Keys } from '../crypto/keyfile.js';
import { createInboundServer, type InboundServer } from '../inbound/inbound-server.js';
import type { Logger } from '../log.js';
import type { Config } from './config.js';
import { listen, type Listening } from './listen.js';

export class DaemonError extends Error {
  override readonly name = 'DaemonError';
}

export interface Daemon {
  readonly addresses: string[];
  /** Applies a new configuration's key file to new sessions; a failure is logged and the old keys stay. */
  reload(next: Config): Promise<void>;
  /** Stops accepting connections and waits for sessions in progress (inbound server's bound: 30 s). */
  stop(): Promise<void>;
}

/** The settings a running inbound server cannot change: a reload leaves them as they were. */
function restartOnlySettings(config: Config): string {
  const { hostname, inbound } = config;
  return JSON.stringify({ hostname, inbound });
}

/** Settings accepted by the configuration that this version does not act on yet. */
function warnUnimplemented(config: Config, logger: Logger): void {
  if (config.outbound.enabled) logger.warn('outbound: not implemented yet in this version; inbound only');
  if (config.inbound.tls !== undefined) logger.warn('inbound.tls: STARTTLS not implemented yet in this version; not offered');
  if (config.inbound.clientIdentity === 'proxy') logger.warn('inbound.client_identity: proxy not implemented yet in this version; using xclient');
}

function createInbound(config: Config, keys: Keys): InboundServer {
  const inbound = config.inbound;
  return createInboundServer({
    keys,
    hostName: config.hostname,
    postfix: { host: inbound.postfix.host, port: inbound.postfix.port, timeoutMs: inbound.timeouts.postfixSeconds * 1000 },
    socketTimeoutMs: inbound.timeouts.idleSeconds * 1000,
    maxClients: inbound.maxClients,
  });
}

/** Starts the daemon; throws KeyFileError, ListenError or DaemonError when it cannot. */
export async function start(config: Config, logger: Logger): Promise<Daemon> {
  warnUnimplemented(config, logger);
  if (!config.inbound.enabled) throw new DaemonError('inbound.enabled is false and outbound is not implemented yet: nothing to run');
  const keys = await loadKeyFile(config.keys);
  const inbound = createInbound(config, keys);
  let listening: Listening;
  try {
    listening = await listen(inbound, config.inbound.listen);
  } catch (error) {
    await inbound.close();
    throw error;
  }
  let current = config;
  logger.info({ addresses: listening.addresses, hostname: config.hostname, fingerprint: fingerprint(keys.noise.publicKey) }, 'listening');

  return {
    addresses: listening.addresses,
    async reload(next) {
      let nextKeys: Keys;
      try {
        nextKeys = await loadKeyFile(next.keys);
      } catch (error) {
        logger.error({ err: error instanceof Error ? error.message : String(error) }, 'reload failed; still running with the previous keys');
        return;
      }
      inbound.setKeys(nextKeys);
      if (restartOnlySettings(next) !== restartOnlySettings(current)) {
        logger.warn('reload: hostname and inbound settings other than the key file take effect on restart only');
      }
      warnUnimplemented(next, logger);
      current = next;
      logger.info({ keys: next.keys, fingerprint: fingerprint(nextKeys.noise.publicKey) }, 'reloaded');
    },
    async stop() {
      logger.info({ sessions: inbound.server.connections.size }, 'stopping: no new connections; waiting for sessions in progress');
      await Promise.all([inbound.close(), listening.close()]);
      logger.info('stopped');
    },
  };
}
