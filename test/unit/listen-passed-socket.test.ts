/**
 * Where a socket systemd passed listens, read from the kernel's tables by its fd without listening
 * on it (a primary checks the loopback legs' sockets so, before its workers listen through it):
 * TCP on IPv4 and IPv6, and unix socket files.
 */
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { passedSocketAddress } from '../../src/daemon/listen.js';

const servers: Server[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A listening socket's fd, as a passed socket's would be. */
async function listeningFd(...args: [number, string] | [string]): Promise<{ fd: number; port: number }> {
  const server = createServer();
  servers.push(server);
  server.listen(...(args as [number, string]));
  await once(server, 'listening');
  const address = server.address();
  return { fd: (server as unknown as { _handle: { fd: number } })._handle.fd, port: typeof address === 'object' && address !== null ? address.port : 0 };
}

it('reads a TCP socket on 127.0.0.1, ::1 and 0.0.0.0 as Node would print its address', async () => {
  for (const host of ['127.0.0.1', '::1', '0.0.0.0']) {
    const { fd, port } = await listeningFd(0, host);
    expect(await passedSocketAddress(fd)).toEqual({ kind: 'tcp', host, port });
  }
});

it('reads the path of a unix socket file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'blackpony-passed-'));
  dirs.push(dir);
  const path = join(dir, 'lmtp.sock');
  const { fd } = await listeningFd(path);
  expect(await passedSocketAddress(fd)).toEqual({ kind: 'unix', path });
});

it('finds nothing for an fd that is not a socket', async () => {
  const fd = openSync(process.execPath, 'r');
  try {
    expect(await passedSocketAddress(fd)).toBeNull();
  } finally {
    closeSync(fd);
  }
});
