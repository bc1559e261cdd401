/**
 * Where the outbound side listens for Postfix: a loopback address, a unix socket file
 * (socket-file.ts), or the socket systemd passes named "outbound" (blackpony-outbound.socket).
 * It relays to anywhere, so whoever can connect could relay: a passed socket is checked as the
 * configuration checks an address, loopback only, or a unix socket other users cannot connect to
 * (a .socket unit's SocketMode=0660 and SocketGroup=postfix).
 */
import { readFile, readlink, stat } from 'node:fs/promises';
import type { AddressInfo, Server } from 'node:net';
import type { OutboundServer } from '../outbound/outbound-server.js';
import { isLoopback } from '../outbound/validated-dns.js';
import type { Config } from './config.js';
import { formatHostPort, type Endpoint } from './config-schema.js';
import { listenOnFd, ListenError, SOCKET_NAMES, takeSystemdSockets } from './listen.js';
import { listenOnSocketFile } from './socket-file.js';

const SETTING = 'outbound.listen';

/** Makes the outbound server listen as configured; returns where it listens. */
export async function listenOutbound(server: OutboundServer, outbound: Config['outbound']): Promise<Endpoint> {
  const target = outbound.listen;
  if (target === 'systemd') return listenOnPassedSocket(server.server.server);
  if ('path' in target) {
    await listenOnSocketFile(server.server.server, target.path, { mode: outbound.listenMode, group: outbound.listenGroup }, 'outbound');
    return target;
  }
  try {
    const address = await server.listen(target.port, target.host);
    return { host: address.address, port: address.port };
  } catch (error) {
    throw new ListenError(`${SETTING}: ${formatHostPort(target)}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

async function listenOnPassedSocket(server: Server): Promise<Endpoint> {
  const fds = takeSystemdSockets(SETTING, SOCKET_NAMES.outbound);
  if (fds.length !== 1) throw new ListenError(`${SETTING}: "systemd", but ${fds.length} passed sockets are named "${SOCKET_NAMES.outbound}", expected one`);
  const fd = fds[0]!;
  await listenOnFd(server, fd, SETTING);
  // Node knows the address of a TCP socket it did not bind, not the path of a unix one.
  const address = server.address() ?? (await unixSocketPath(fd));
  const problem = await openToOthers(address);
  if (problem === undefined) return typeof address === 'string' ? { path: address } : { host: address!.address, port: address!.port };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  throw new ListenError(`${SETTING}: "systemd", but the passed socket ${problem}: anyone who can reach it could relay mail through this host`);
}

/** The path a listening unix socket is bound to, from the kernel's table of them (unix(7)), or null. */
async function unixSocketPath(fd: number): Promise<string | null> {
  const inode = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/self/fd/${fd}`))?.[1];
  if (inode === undefined) return null;
  // Num RefCount Protocol Flags Type St Inode Path
  const row = (await readFile('/proc/net/unix', 'utf8')).split('\n').map((line) => line.trim().split(/\s+/)).find((fields) => fields[6] === inode);
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
  if ((mode & 0o002) !== 0) return `unix:${address} has mode 0${(mode & 0o777).toString(8)}, which lets every local user connect (set SocketMode=0660 and SocketGroup=postfix)`;
  return undefined;
}
