/**
 * Where the inbound side listens: a configured `HOST:PORT`, or the sockets systemd passes by socket
 * activation (sd_listen_fds(3)): LISTEN_FDS sockets from fd 3 on, meant for the process LISTEN_PID.
 * blackpony.socket passes two (IPv4 and IPv6 port 25).
 */
import cluster from 'node:cluster';
import { once } from 'node:events';
import { Server, type AddressInfo, type Socket } from 'node:net';
import { formatHostPort, type HostPort } from './config-schema.js';
import type { InboundServer } from '../inbound/inbound-server.js';

/** sd_listen_fds(3): the first passed file descriptor. */
const SD_LISTEN_FDS_START = 3;

/**
 * In a worker (workers.ts): the systemd sockets' numbers, checked by the primary, which holds them
 * and listens on them for every worker (node:cluster); the worker's own fds are not used.
 */
export const WORKER_SOCKETS_VARIABLE = 'BLACKPONY_SYSTEMD_FDS';

export type ListenTarget = HostPort | 'systemd';

export class ListenError extends Error {
  override readonly name = 'ListenError';
}

export interface Listening {
  /** Every listening address as `HOST:PORT`. */
  readonly addresses: string[];
  /** Stops the listeners this module made itself (the inbound server closes its own). */
  close(): Promise<void>;
}

/**
 * The sockets systemd passed to this process; the variables are then removed, as sd_listen_fds
 * does, so that no child process takes them for its own.
 */
export function systemdSocketFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number[] {
  const handed = env[WORKER_SOCKETS_VARIABLE];
  if (cluster.isWorker && handed !== undefined) return handed.split(',').map(Number);
  const { LISTEN_PID: listenPid, LISTEN_FDS: listenFds } = env;
  if (listenPid === undefined || listenFds === undefined) {
    throw new ListenError('inbound.listen: "systemd", but no sockets were passed (LISTEN_PID and LISTEN_FDS unset): start blackpony.socket, or listen on HOST:PORT');
  }
  if (listenPid !== String(pid)) {
    throw new ListenError(`inbound.listen: "systemd", but the passed sockets are for process ${JSON.stringify(listenPid)}, not this one (${pid})`);
  }
  const count = /^[0-9]{1,4}$/.test(listenFds) ? Number(listenFds) : 0;
  if (count < 1) throw new ListenError(`inbound.listen: "systemd", but LISTEN_FDS is ${JSON.stringify(listenFds)}, expected 1 or more sockets`);
  for (const name of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES']) delete env[name];
  return Array.from({ length: count }, (_, index) => SD_LISTEN_FDS_START + index);
}

function describeAddress(server: Server): string {
  const address = server.address() as AddressInfo | null;
  return address === null ? 'unknown' : formatHostPort({ host: address.address, port: address.port });
}

async function listenOnFd(server: Server, fd: number): Promise<void> {
  server.listen({ fd });
  const [error] = await Promise.race([once(server, 'listening').then(() => [undefined]), once(server, 'error')]);
  if (error !== undefined) throw new ListenError(`inbound.listen: systemd socket on fd ${fd}: ${(error as Error).message}`);
}

/** Makes the inbound server listen on `target`. */
export async function listen(inbound: InboundServer, target: ListenTarget): Promise<Listening> {
  if (target !== 'systemd') {
    try {
      const address = await inbound.listen(target.port, target.host);
      return { addresses: [formatHostPort({ host: address.address, port: address.port })], close: async () => undefined };
    } catch (error) {
      throw new ListenError(`inbound.listen: ${formatHostPort(target)}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  const [first, ...others] = systemdSocketFds();
  const main = inbound.server.server;
  try {
    // Through the inbound server, so that it asks Postfix what to advertise first.
    await inbound.listen({ fd: first! });
  } catch (error) {
    throw new ListenError(`inbound.listen: systemd socket on fd ${first}: ${error instanceof Error ? error.message : String(error)}`);
  }
  // A net.Server listens on one socket: the others hand their connections to the main one.
  const extras: Server[] = [];
  for (const fd of others) {
    const extra = new Server((socket: Socket) => main.emit('connection', socket));
    extras.push(extra);
    await listenOnFd(extra, fd);
  }
  return {
    addresses: [main, ...extras].map(describeAddress),
    close: async () => {
      await Promise.all(extras.map((extra) => new Promise<void>((resolve) => extra.close(() => resolve()))));
    },
  };
}
