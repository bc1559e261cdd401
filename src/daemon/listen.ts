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
import { Server, SocketAddress, type AddressInfo, type Socket } from 'node:net';
import { endianness } from 'node:os';
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
  /** For a loopback leg's socket handed to a worker: where it listens, as the primary checked it. */
  checked?: Endpoint;
}

/** A loopback leg's passed socket: the setting that asks for it, its FileDescriptorName=, why others must not connect. */
export interface LoopbackLeg {
  setting: string;
  name: string;
  why: string;
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
  return passedFor(setting, name).map((socket) => socket.fd);
}

function passedFor(setting: string, name?: string): PassedSocket[] {
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
  return mine;
}

/**
 * In a primary (workers.ts), before any worker starts: the passed sockets the workers will listen
 * on, each loopback leg's checked here, where its fd is the socket (a worker listens through
 * the primary and has no such fd to read). Throws a ListenError as a single process would.
 */
export async function socketsForWorkers(firstSetting: string, legs: readonly LoopbackLeg[]): Promise<PassedSocket[]> {
  passed ??= systemdSockets(firstSetting);
  for (const leg of legs) {
    const socket = onePassedSocket(leg);
    socket.checked = await checkedAddress(socket.fd, leg);
  }
  return passed;
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
 * Makes `server` listen on the one passed socket named for a loopback leg: refused (with the
 * leg's `why`) unless it is loopback, or a unix socket other users cannot connect to (a .socket
 * unit's SocketMode=0660 and SocketGroup=postfix); checked before it takes a connection. Returns
 * where it listens.
 */
export async function listenOnNamedSocket(server: Server, leg: LoopbackLeg): Promise<Endpoint> {
  const socket = onePassedSocket(leg);
  const address = socket.checked ?? (await checkedAddress(socket.fd, leg));
  await listenOnFd(server, socket.fd, leg.setting);
  return address;
}

function onePassedSocket({ setting, name }: LoopbackLeg): PassedSocket {
  const sockets = passedFor(setting, name);
  if (sockets.length !== 1) throw new ListenError(`${setting}: "systemd", but ${sockets.length} passed sockets are named "${name}", expected one`);
  return sockets[0]!;
}

/** Where the passed socket on `fd` listens, if others than Postfix cannot connect to it; else a ListenError. */
async function checkedAddress(fd: number, { setting, why }: LoopbackLeg): Promise<Endpoint> {
  const address = await passedSocketAddress(fd);
  const problem = await openToOthers(address);
  if (problem !== undefined) throw new ListenError(`${setting}: "systemd", but the passed socket ${problem}: ${why}`);
  return address!.kind === 'unix' ? { path: address!.path } : { host: address!.host, port: address!.port };
}

type BoundAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/**
 * Where a listening socket this process holds is bound, from the kernel's tables by its inode
 * (proc(5): /proc/net/unix, tcp, tcp6), without listening on it: Node knows the address of a
 * socket only once it listens, and not the path of a unix one it did not bind. Null: not found.
 */
export async function passedSocketAddress(fd: number): Promise<BoundAddress | null> {
  const inode = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/self/fd/${fd}`))?.[1];
  if (inode === undefined) return null;
  // Num RefCount Protocol Flags Type St Inode Path
  const unix = (await tableRows('/proc/net/unix')).find((fields) => fields[6] === inode);
  if (unix !== undefined) return unix[7] === undefined ? null : { kind: 'unix', path: unix[7] };
  // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const tcp = (await tableRows(table)).find((fields) => fields[9] === inode);
    if (tcp !== undefined) {
      const [host, port] = tcp[1]!.split(':');
      return { kind: 'tcp', host: kernelAddress(host!), port: Number.parseInt(port!, 16) };
    }
  }
  return null;
}

async function tableRows(path: string): Promise<string[][]> {
  const text = await readFile(path, 'utf8').catch(() => ''); // no IPv6: no tcp6 table
  return text
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/));
}

/** An address as /proc/net/tcp{,6} print it (32-bit words in hex, each in the host's byte order), as Node prints it. */
function kernelAddress(hex: string): string {
  const octets = Buffer.from(hex, 'hex');
  if (endianness() === 'LE') for (let word = 0; word < octets.length; word += 4) octets.subarray(word, word + 4).reverse();
  if (octets.length === 4) return [...octets].join('.');
  const full = Array.from({ length: 8 }, (_, index) => octets.readUInt16BE(index * 2).toString(16)).join(':');
  return new SocketAddress({ address: full, family: 'ipv6' }).address;
}

/** Why others than Postfix could connect to the listening socket, or undefined when they cannot. */
async function openToOthers(address: BoundAddress | null): Promise<string | undefined> {
  if (address === null) return 'has no address';
  if (address.kind === 'tcp') {
    return isLoopback(address.host) ? undefined : `is ${formatHostPort({ host: address.host, port: address.port })}, not a loopback address`;
  }
  if (!address.path.startsWith('/'))
    return `is ${JSON.stringify(address.path)}, not a socket file (an abstract or unnamed socket has no file mode to keep others out)`;
  const { mode } = await stat(address.path);
  // connect(2) on a unix socket needs write permission on its file.
  if ((mode & 0o002) !== 0)
    return `unix:${address.path} has mode 0${(mode & 0o777).toString(8)}, which lets every local user connect (set SocketMode=0660 and SocketGroup=postfix)`;
  return undefined;
}
