/**
 * A listening unix-domain socket for a loopback leg (outbound.listen: unix:/PATH): only those its
 * file mode and group let in may connect, unlike a loopback TCP port, which every local user can
 * reach. A socket file a previous run left behind is replaced; one that something still listens
 * on is not (a second blackpony, another program), nor a file that is not a socket. The file goes
 * when the server closes (Node unlinks it).
 */
import { readFileSync } from 'node:fs';
import { chmod, chown, lstat, unlink } from 'node:fs/promises';
import { once } from 'node:events';
import cluster from 'node:cluster';
import { connect, type Server } from 'node:net';
import { ListenError } from './listen.js';

export interface SocketFileAccess {
  /** The file mode, e.g. 0o660. */
  mode: number;
  /** A group name or number; "" keeps the process's group. */
  group: string;
}

/**
 * Listens on `path` with `access`; errors are ListenErrors naming the settings of `section`
 * (e.g. "outbound": outbound.listen, outbound.listen_group).
 */
export async function listenOnSocketFile(server: Server, path: string, access: SocketFileAccess, section: string): Promise<void> {
  const where = `${section}.listen: unix:${path}`;
  const gid = access.group === '' ? undefined : groupId(access.group, `${section}.listen_group`);
  // A worker's socket is bound by the primary (workers.ts), which replaced a stale file before.
  if (!cluster.isWorker) await removeStaleSocket(path, where);
  // Created owner-only and opened up after: a client connecting in between would keep its connection.
  const previousUmask = process.umask(0o177);
  try {
    server.listen(path);
    const [error] = await Promise.race([once(server, 'listening').then(() => [undefined]), once(server, 'error')]);
    if (error !== undefined) throw new ListenError(`${where}: ${(error as Error).message}`);
  } finally {
    process.umask(previousUmask);
  }
  try {
    if (gid !== undefined) await chown(path, -1, gid);
    await chmod(path, access.mode);
  } catch (error) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw new ListenError(`${where}: cannot set its ${gid === undefined ? 'mode' : 'group and mode'}: ${(error as Error).message}`);
  }
}

/** Unlinks a socket file nobody listens on; refuses anything else in the way. */
export async function removeStaleSocket(path: string, where: string): Promise<void> {
  let stat;
  try {
    stat = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new ListenError(`${where}: ${(error as Error).message}`);
  }
  if (!stat.isSocket()) throw new ListenError(`${where}: exists and is not a socket; not replacing it`);
  const listening = await new Promise<boolean | Error>((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED' ? false : error));
  });
  if (listening === true) throw new ListenError(`${where}: another process listens on it`);
  if (listening instanceof Error) throw new ListenError(`${where}: ${listening.message}`);
  await unlink(path);
}

/** A group's number, from a number or a name in /etc/group (Node has no getgrnam). */
function groupId(group: string, setting: string): number {
  if (/^[0-9]+$/.test(group)) return Number(group);
  const entry = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .map((line) => line.split(':'))
    .find((fields) => fields[0] === group);
  const gid = Number(entry?.[2]);
  if (entry === undefined || !Number.isInteger(gid)) throw new ListenError(`${setting}: no group ${JSON.stringify(group)} in /etc/group`);
  return gid;
}
