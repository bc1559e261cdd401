/**
 * `blackpony run` tells its supervisor when it listens (src/daemon/readiness.ts): READY=1 on
 * systemd's notification socket only once every listener (inbound, outbound, transport lookup,
 * metrics) accepts connections, RELOADING=1 / READY=1 around a reload, STOPPING=1 at a stop; and a
 * ready file for supervisors without systemd. The notification socket is a real unix datagram
 * socket (python3), the messages come through the real systemd-notify.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeys, writeKeyFile } from '../../src/crypto/keyfile.js';
import { cliWorkDir, PROJECT_ROOT, runCli } from '../harness/cli.js';
import { jsonLogLines } from '../harness/daemon-log.js';
import { PYTHON3, startNotifyReceiver, type NotifyReceiver } from '../harness/notify-socket.js';
import { freePort } from '../harness/ports.js';
import { startProcess, type ManagedProcess } from '../harness/processes.js';
import { describeWith, executable } from '../harness/requirements.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

const CLI = join(PROJECT_ROOT, 'bin/blackpony.js');
const SYSTEMD_NOTIFY = executable('systemd-notify', '/usr/bin/systemd-notify');

interface Ports {
  inbound: number;
  outbound: number;
  lookup: number;
  metrics: number;
  /** Where the inbound side would find Postfix: nobody listens (its first look fails and is logged; it listens anyway). */
  postfix: number;
}

async function writeConfig(dir: string, ports: Ports): Promise<string> {
  const keysPath = join(dir, 'keys');
  await writeKeyFile(keysPath, generateKeys());
  const configPath = join(dir, 'config.yaml');
  await writeFile(
    configPath,
    [
      'hostname: mx.ready.test',
      `keys: ${keysPath}`,
      'state_dir: .',
      // One process: the notification and log sequences below are one daemon's.
      'workers: 1',
      `inbound: {listen: "127.0.0.1:${ports.inbound}", postfix: "127.0.0.1:${ports.postfix}", client_name_lookup: false}`,
      `outbound: {listen: "127.0.0.1:${ports.outbound}", transport_lookup: {listen: "127.0.0.1:${ports.lookup}"}}`,
      `metrics: {listen: "127.0.0.1:${ports.metrics}"}`,
      '',
    ].join('\n'),
  );
  return configPath;
}

async function freePorts(): Promise<Ports> {
  return { inbound: await freePort(), outbound: await freePort(), lookup: await freePort(), metrics: await freePort(), postfix: await freePort() };
}

/** Whether a loopback port accepts a connection right now. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function targetsOf(ports: Ports): string[] {
  return [ports.inbound, ports.outbound, ports.lookup, ports.metrics].map((port) => `tcp:127.0.0.1:${port}`);
}

describeWith([PYTHON3, SYSTEMD_NOTIFY], 'blackpony run under systemd: sd_notify readiness', () => {
  let dir: string;
  let ports: Ports;
  let receiver: NotifyReceiver;
  let daemon: ManagedProcess;
  let readyFile: string;

  beforeAll(async () => {
    dir = await makeTempDir('readiness');
    ports = await freePorts();
    const configPath = await writeConfig(dir, ports);
    receiver = await startNotifyReceiver(dir, targetsOf(ports));
    // A ready file a crashed run left behind: it must not stand for this run.
    readyFile = join(dir, 'ready');
    await writeFile(readyFile, '999999\n');
    daemon = await startProcess('blackpony run', process.execPath, [CLI, 'run', '--config', configPath, '--ready-file', readyFile], {
      cwd: dir,
      env: { ...process.env, NOTIFY_SOCKET: receiver.path },
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    await receiver?.stop();
    if (dir !== undefined) await removeTempDir(dir);
  });

  it('sends READY=1 once, when every listener (inbound, outbound, transport lookup, metrics) accepts connections', async () => {
    const [ready] = await receiver.waitFor('READY=1');
    expect(ready!.accepting, daemon.output()).toEqual(Object.fromEntries(targetsOf(ports).map((target) => [target, true])));
    expect(ready!.fields).toContain('STATUS=listening');
    // The first message systemd gets is READY=1; the log said "listening" before it.
    expect(receiver.notifications()).toHaveLength(1);
    expect(jsonLogLines(daemon, 'listening')).toHaveLength(1);
    // The ready file is this run's, written before READY=1 went out.
    expect(await readFile(readyFile, 'utf8')).toBe(`${daemon.pid}\n`);
  });

  it('sends RELOADING=1 and READY=1 again around a reload (SIGHUP)', async () => {
    await receiver.waitFor('READY=1');
    process.kill(daemon.pid, 'SIGHUP');
    const notifications = await receiver.waitFor('READY=1', 2);
    const fields = notifications.map((n) => n.fields.find((field) => /^(READY|RELOADING|STOPPING)=/.test(field)));
    expect(fields, daemon.output()).toEqual(['READY=1', 'RELOADING=1', 'READY=1']);
    // systemd (253+) wants the reload's monotonic time beside RELOADING=1.
    expect(notifications[1]!.fields.find((field) => field.startsWith('MONOTONIC_USEC='))).toMatch(/^MONOTONIC_USEC=[1-9][0-9]*$/);
    expect(jsonLogLines(daemon, 'reloaded')).toHaveLength(1);
    expect(jsonLogLines(daemon).filter((line) => String(line.msg).startsWith('readiness:'))).toEqual([]);
  });

  it('sends STOPPING=1 when told to stop, removes the ready file, and exits 0', async () => {
    await receiver.waitFor('READY=1', 2);
    process.kill(daemon.pid, 'SIGTERM');
    await receiver.waitFor('STOPPING=1');
    expect((await daemon.exited).code, daemon.output()).toBe(0);
    expect(existsSync(readyFile)).toBe(false);
  });
});

describe('blackpony run --ready-file without systemd', () => {
  it('fails with the path and the reason when the ready file cannot be written, rather than run unannounced', async () => {
    const dir = cliWorkDir('ready-file');
    const configPath = await writeConfig(dir, await freePorts());
    const readyFile = join(dir, 'missing-folder', 'ready');
    const run = runCli(dir, ['run', '--config', configPath, '--ready-file', readyFile]);
    expect(run.status, run.stderr).toBe(1);
    expect(run.stderr).toContain(`blackpony: run: --ready-file ${readyFile}: cannot write it: ENOENT`);
  });

  it('writes the ready file (the process id) once every port accepts, removes it at a stop; without NOTIFY_SOCKET it logs nothing about readiness', async () => {
    const dir = await makeTempDir('ready-file');
    const ports = await freePorts();
    const configPath = await writeConfig(dir, ports);
    const readyFile = join(dir, 'ready');
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
    const daemon = await startProcess('blackpony run', process.execPath, [CLI, 'run', '--config', configPath, '--ready-file', readyFile], { cwd: dir, env });
    try {
      await waitFor('the ready file', () => (existsSync(readyFile) ? true : undefined), { intervalMs: 5, diagnostics: () => daemon.output() });
      // A supervisor starts Postfix now: every port accepts already.
      expect(await Promise.all([ports.inbound, ports.outbound, ports.lookup, ports.metrics].map(accepts))).toEqual([true, true, true, true]);
      expect(await readFile(readyFile, 'utf8')).toBe(`${daemon.pid}\n`);
      expect(jsonLogLines(daemon, 'listening')).toHaveLength(1);
      process.kill(daemon.pid, 'SIGTERM');
      expect((await daemon.exited).code).toBe(0);
      expect(existsSync(readyFile)).toBe(false);
      expect(jsonLogLines(daemon).filter((line) => String(line.msg).startsWith('readiness:'))).toEqual([]);
    } finally {
      await daemon.stop();
      await removeTempDir(dir);
    }
  });
});
