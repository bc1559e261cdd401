/**
 * Where the listeners listen: a configured address, or the sockets systemd passes by socket
 * activation (sd_listen_fds_with_names(3)): LISTEN_FDS sockets from fd 3 on, meant for the process
 * LISTEN_PID, named in LISTEN_FDNAMES by each socket unit's FileDescriptorName=. The sockets named
 * for the outbound listener or the transport lookup go to them; the inbound side takes all others
 * (blackpony.socket passes two, IPv4 and IPv6 port 25, named "smtp"; unnamed ones are "unknown").
 */
import cluster from 'node:cluster';
import { once } from 'node:events';
import { readFile, readlink, stat } from 'node:fs/promises';
import { Server, type AddressInfo, type Socket } from 'node:net';
import { formatHostPort, type Endpoint, type HostPort } from './config-values.js';
import type { InboundServer } from '../inbound/inbound-server.js';
import { isLoopback } from '../outbound/validated-dns.js';
import { errorMessage } from '../error-message.js';

/** sd_listen_fds(3): the first passed file descriptor. */
const SD_LISTEN_FDS_START = 3;

/** FileDescriptorName= of the passed sockets meant for a listener other than the inbound one. */
export const SOCKET_NAMES = { outbound: 'outbound', transportLookup: 'transport-lookup' } as const;
/**
 * In a worker (workers.ts): the passed sockets as its primary read them (JSON), which holds them
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

export interface PassedSocket {
  fd: number;
  /** Its FileDescriptorName=, "unknown" when systemd gave none. */
  name: string;
}

/**
 * The sockets systemd passed to this process, for the setting that asks for them; the variables
 * are then removed, as sd_listen_fds does, so that no child process takes them for its own.
 */
export function systemdSockets(setting: string, env: NodeJS.ProcessEnv = process.env, pid = process.pid): PassedSocket[] {
  const handed = env[WORKER_SOCKETS_VARIABLE];
  if (cluster.isWorker && handed !== undefined) return JSON.parse(handed) as PassedSocket[];
  const { LISTEN_PID: listenPid, LISTEN_FDS: listenFds, LISTEN_FDNAMES: listenFdNames } = env;
  if (listenPid === undefined || listenFds === undefined) {
    throw new ListenError(
      `${setting}: "systemd", but no sockets were passed (LISTEN_PID and LISTEN_FDS unset): start its .socket unit, or listen on an address`,
    );
  }
  if (listenPid !== String(pid)) {
    throw new ListenError(`${setting}: "systemd", but the passed sockets are for process ${JSON.stringify(listenPid)}, not this one (${pid})`);
  }
  const count = /^[0-9]{1,4}$/.test(listenFds) ? Number(listenFds) : 0;
  if (count < 1) throw new ListenError(`${setting}: "systemd", but LISTEN_FDS is ${JSON.stringify(listenFds)}, expected 1 or more sockets`);
  const names = listenFdNames === undefined ? [] : listenFdNames.split(':');
  for (const name of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES']) delete env[name];
  return Array.from({ length: count }, (_, index) => ({ fd: SD_LISTEN_FDS_START + index, name: names[index] || 'unknown' }));
}

/** Read once per process: the first listener that asks removes the variables. */
let passed: PassedSocket[] | undefined;

/**
 * The passed sockets for one listener: those named `name`, or for the inbound side (no name)
 * those named for no other listener. Throws a ListenError naming `setting` when there are none.
 */
export function takeSystemdSockets(setting: string, name?: string): number[] {
  passed ??= systemdSockets(setting);
  const reserved: readonly string[] = Object.values(SOCKET_NAMES);
  const mine = passed.filter((socket) => (name === undefined ? !reserved.includes(socket.name) : socket.name === name));
  if (mine.length === 0) {
    const names = JSON.stringify(passed.map((socket) => socket.name).join(':'));
    throw new ListenError(
      name === undefined
        ? `${setting}: "systemd", but every passed socket is named for another listener (LISTEN_FDNAMES ${names})`
        : `${setting}: "systemd", but no passed socket is named ${JSON.stringify(name)} (LISTEN_FDNAMES ${names}): set FileDescriptorName=${name} in its .socket unit`,
    );
  }
  return mine.map((socket) => socket.fd);
}

function describeAddress(server: Server): string {
  const address = server.address() as AddressInfo | null;
  return address === null ? 'unknown' : formatHostPort({ host: address.address, port: address.port });
}

/** Makes `server` listen on a passed socket; errors name `setting`. */
export async function listenOnFd(server: Server, fd: number, setting: string): Promise<void> {
  server.listen({ fd });
  const [error] = await Promise.race([once(server, 'listening').then(() => [undefined]), once(server, 'error')]);
  if (error !== undefined) throw new ListenError(`${setting}: systemd socket on fd ${fd}: ${(error as Error).message}`);
}

/** Makes the inbound server listen on `target`. */
export async function listen(inbound: InboundServer, target: ListenTarget): Promise<Listening> {
  if (target !== 'systemd') {
    try {
      const address = await inbound.listen(target.port, target.host);
      return { addresses: [formatHostPort({ host: address.address, port: address.port })], close: async () => undefined };
    } catch (error) {
      throw new ListenError(`inbound.listen: ${formatHostPort(target)}: ${errorMessage(error)}`);
    }
  }
  const [first, ...others] = takeSystemdSockets('inbound.listen');
  const main = inbound.server.server;
  try {
    // Through the inbound server, so that it asks Postfix what to advertise first.
    await inbound.listen({ fd: first! });
  } catch (error) {
    throw new ListenError(`inbound.listen: systemd socket on fd ${first}: ${errorMessage(error)}`);
  }
  // A net.Server listens on one socket: the others hand their connections to the main one.
  const extras: Server[] = [];
  for (const fd of others) {
    const extra = new Server((socket: Socket) => main.emit('connection', socket));
    extras.push(extra);
    await listenOnFd(extra, fd, 'inbound.listen');
  }
  return {
    addresses: [main, ...extras].map(describeAddress),
    close: async () => {
      await Promise.all(extras.map((extra) => new Promise<void>((resolve) => extra.close(() => resolve()))));
    },
  };
}

/**
 * Makes `server` listen on the one passed socket named `name`, for a loopback leg: refused (with
 * `why`) unless it is loopback, or a unix socket other users cannot connect to (a .socket unit's
 * SocketMode=0660 and SocketGroup=postfix). Returns where it listens.
 */
export async function listenOnNamedSocket(server: Server, setting: string, name: string, why: string): Promise<Endpoint> {
  const fds = takeSystemdSockets(setting, name);
  if (fds.length !== 1) throw new ListenError(`${setting}: "systemd", but ${fds.length} passed sockets are named "${name}", expected one`);
  const fd = fds[0]!;
  await listenOnFd(server, fd, setting);
  // Node knows the address of a TCP socket it did not bind, not the path of a unix one.
  const address = server.address() ?? (await unixSocketPath(fd));
  const problem = await openToOthers(address);
  if (problem === undefined) return typeof address === 'string' ? { path: address } : { host: address!.address, port: address!.port };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  throw new ListenError(`${setting}: "systemd", but the passed socket ${problem}: ${why}`);
}

/** The path a listening unix socket is bound to, from the kernel's table of them (unix(7)), or null. */
async function unixSocketPath(fd: number): Promise<string | null> {
  const inode = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/self/fd/${fd}`))?.[1];
  if (inode === undefined) return null;
  // Num RefCount Protocol Flags Type St Inode Path
  const row = (await readFile('/proc/net/unix', 'utf8'))
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .find((fields) => fields[6] === inode);
  return row?.[7] ?? null;
}

/** Why others than Postfix could connect to the listening socket, or undefined when they cannot. */
async function openToOthers(address: AddressInfo | string | null): Promise<string | undefined> {
  if (address === null) return 'has no address';
  if (typeof address !== 'string') {
    return isLoopback(address.address) ? undefined : `is ${formatHostPort({ host: address.address, port: address.port })}, not a loopback address`;
  }
  if (!address.startsWith('/')) return `is ${JSON.stringify(address)}, not a socket file (an abstract or unnamed socket has no file mode to keep others out)`;
  const { mode } = await stat(address);
  // connect(2) on a unix socket needs write permission on its file.
  if ((mode & 0o002) !== 0)
    return `unix:${address} has mode 0${(mode & 0o777).toString(8)}, which lets every local user connect (set SocketMode=0660 and SocketGroup=postfix)`;
  return undefined;
}
