/** The outbound listener's unix socket file: replaced when stale, never taken from a live listener or over another file. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Server } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { ListenError } from '../../src/daemon/listen.js';
import { listenOnSocketFile } from '../../src/daemon/socket-file.js';
import { describeWith, ROOT } from '../harness/requirements.js';

const dirs: string[] = [];
const servers: Server[] = [];

function socketPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'blackpony-socket-'));
  dirs.push(dir);
  return join(dir, 'lmtp.sock');
}

function server(): Server {
  const made = createServer((socket) => socket.on('error', () => undefined).end('220 here\r\n'));
  servers.push(made);
  return made;
}

const close = (target: Server) => new Promise<void>((resolve) => target.close(() => resolve()));

afterEach(async () => {
  await Promise.all(
    servers
      .splice(0)
      .filter((s) => s.listening)
      .map(close),
  );
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

it('creates the socket with the configured mode, and removes it on close', async () => {
  const path = socketPath();
  const listener = server();
  await listenOnSocketFile(listener, path, { mode: 0o640, group: '' }, 'outbound');
  expect(statSync(path).isSocket()).toBe(true);
  expect(statSync(path).mode & 0o777).toBe(0o640);
  await close(listener);
  expect(() => statSync(path)).toThrow(/ENOENT/);
});

describeWith([ROOT], "the socket file's group", () => {
  it("is the configured one (root may give any: nogroup's 65534 here)", async () => {
    const path = socketPath();
    await listenOnSocketFile(server(), path, { mode: 0o660, group: '65534' }, 'outbound');
    expect(statSync(path).gid).toBe(65534);
  });
});

it('replaces a socket file nobody listens on (left by a killed run)', async () => {
  const path = socketPath();
  // A process killed while listening leaves the file behind, with nobody listening on it.
  const killed = spawnSync(process.execPath, [
    '-e',
    `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  expect(killed.signal).toBe('SIGKILL');
  expect(statSync(path).isSocket()).toBe(true);
  await listenOnSocketFile(server(), path, { mode: 0o660, group: '' }, 'outbound');
  const greeting = await new Promise<string>((resolve, reject) => {
    const client = connect({ path }).setEncoding('latin1');
    client.once('data', resolve).once('error', reject);
  });
  expect(greeting).toBe('220 here\r\n');
});

it('refuses to start where another process listens, over a file that is not a socket, and with an unknown group', async () => {
  const path = socketPath();
  await listenOnSocketFile(server(), path, { mode: 0o660, group: '' }, 'outbound');
  await expect(listenOnSocketFile(server(), path, { mode: 0o660, group: '' }, 'outbound')).rejects.toThrow(
    new ListenError(`outbound.listen: unix:${path}: another process listens on it`),
  );
  const file = socketPath();
  writeFileSync(file, 'not a socket');
  await expect(listenOnSocketFile(server(), file, { mode: 0o660, group: '' }, 'outbound')).rejects.toThrow(
    new ListenError(`outbound.listen: unix:${file}: exists and is not a socket; not replacing it`),
  );
  await expect(listenOnSocketFile(server(), socketPath(), { mode: 0o660, group: 'no-such-group-here' }, 'outbound')).rejects.toThrow(
    new ListenError('outbound.listen_group: no group "no-such-group-here" in /etc/group'),
  );
});
