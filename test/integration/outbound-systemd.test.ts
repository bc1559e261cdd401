/**
 * The outbound listener and the transport lookup socket-activated (outbound.listen: systemd), as
 * systemd/blackpony.socket, blackpony-outbound.socket and blackpony-lookup.socket pass them: named
 * sockets (LISTEN_FDNAMES "smtp:outbound:transport-lookup") from the real systemd-socket-activate. A sender Postfix delivers over lmtp:unix: to a socket that exists before
 * blackpony runs: its first delivery starts blackpony and goes through, no refused connection. A
 * passed socket every local user could connect to, or none named "outbound", stops the start.
 */
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeys, writeKeyFile } from '../../src/crypto/keyfile.js';
import { PROJECT_ROOT } from '../harness/cli.js';
import { runCommand } from '../harness/command.js';
import { jsonLogLines } from '../harness/daemon-log.js';
import { freePort } from '../harness/ports.js';
import { startPostfix, type PostfixInstance } from '../harness/postfix.js';
import type { ManagedProcess } from '../harness/processes.js';
import { describeWith, executable, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { startSocketActivated, SYSTEMD_SOCKET_ACTIVATE } from '../harness/socket-activate.js';
import { runSwaks } from '../harness/swaks.js';
import { systemGroup } from '../harness/system-users.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';
import { mainCfSnippet, masterCfEntries, MAILBOX, startPostfixBehind, type PostfixBehind } from './inbound-fixtures.js';

const CLI = join(PROJECT_ROOT, 'bin/blackpony.js');
const NETCAT = executable('netcat-openbsd', '/usr/bin/nc');
const SNIPPET_SOCKET = 'unix:/run/blackpony/lmtp.sock';

/**
 * The daemon under systemd-socket-activate, which binds every `-l` and names them `names`; it
 * starts the daemon at the first connection. The socket file `unixSocket` then gets `mode`, as a
 * socket unit's SocketMode= gives it (systemd-socket-activate has no such option).
 */
async function startActivated(
  dir: string,
  listens: readonly string[],
  names: string | undefined,
  unixSocket: { path: string; mode: number },
): Promise<ManagedProcess> {
  const daemon = await startSocketActivated('blackpony run (socket-activated)', listens, [process.execPath, CLI, 'run', '--config', join(dir, 'config.yaml')], {
    cwd: dir,
    ...(names === undefined ? {} : { fdNames: names }),
  });
  await chmod(unixSocket.path, unixSocket.mode);
  return daemon;
}

async function writeConfig(dir: string, inbound: string, outbound: string, postfixPort: number, inboundPort: number, lookup = '', workers = 1): Promise<void> {
  await writeKeyFile(join(dir, 'keys'), generateKeys());
  const config = [
    'hostname: mx.activated.test',
    'keys: keys',
    'state_dir: .',
    `workers: ${workers}`,
    `inbound: {listen: "${inbound}", postfix: "127.0.0.1:${postfixPort}", client_name_lookup: false}`,
    // d.test mail goes to this daemon's own inbound side, so one message crosses both passed sockets.
    `outbound: {listen: "${outbound}", routes: {d.test: "[127.0.0.1]:${inboundPort}"}, policies: {e.test: testing}, transport_lookup: {listen: "${lookup}"}}`,
    'metrics: {listen: ""}',
    '',
  ].join('\n');
  await writeFile(join(dir, 'config.yaml'), config);
}

/** A folder like the socket unit's: group postfix, setgid, so the socket made in it is group postfix. */
async function postfixFolder(dir: string): Promise<string> {
  const runDir = join(dir, 'run');
  await mkdir(runDir);
  await chown(runDir, 0, systemGroup('postfix'));
  await chmod(runDir, 0o2750);
  return runDir;
}

// With workers the primary holds the passed sockets and checks them; each worker listens on them through it.
describe.each([1, 2])('with workers: %i', (workers) => {
  describeWith(
    [ROOT, POSTFIX, SWAKS, SYSTEMD_SOCKET_ACTIVATE, NETCAT],
    'outbound listener under systemd socket activation, with real Postfix instances',
    () => {
      let behind: PostfixBehind;
      let sender: PostfixInstance;
      let daemon: ManagedProcess;
      let socket: string;
      let inboundPort: number;
      let lookupPort: number;

      beforeAll(async () => {
        behind = await startPostfixBehind();
        const dir = await makeTempDir('outbound-systemd');
        socket = join(await postfixFolder(dir), 'lmtp.sock');
        [inboundPort, lookupPort] = [await freePort(), await freePort()];
        await writeConfig(dir, 'systemd', 'systemd', behind.listenerPort, inboundPort, 'systemd', workers);
        // As the socket unit makes it: SocketMode=0660 in the group postfix.
        daemon = await startActivated(dir, [`127.0.0.1:${inboundPort}`, socket, `127.0.0.1:${lookupPort}`], 'smtp:outbound:transport-lookup', {
          path: socket,
          mode: 0o660,
        });
        const transport = mainCfSnippet('outbound-lmtp-unix.cf');
        if (!transport.default_transport?.endsWith(SNIPPET_SOCKET))
          throw new Error(`deploy/postfix/outbound-lmtp-unix.cf: expected default_transport to end in ${SNIPPET_SOCKET}`);
        sender = await startPostfix({
          hostname: 'mx.a.test',
          mainCf: { ...transport, default_transport: transport.default_transport.replace(SNIPPET_SOCKET, `unix:${socket}`) },
          masterCf: [masterCfEntries('outbound-master.cf')],
        });
      });
      afterAll(async () => {
        await daemon?.stop();
        await sender?.stop();
        await behind?.postfix.stop();
      });

      it("delivers Postfix's first message at once: Postfix's connection starts blackpony, which takes both named sockets", async () => {
        expect(jsonLogLines(daemon, 'listening'), 'blackpony runs before anything connects').toEqual([]);
        const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
        const sent = await runSwaks({ server: `127.0.0.1:${sender.port}`, from: 'bob@a.test', to: MAILBOX, headers: { Subject: 'out over a passed socket' } });
        expect(sent.exitCode, sent.transcript).toBe(0);
        const text = (await behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('utf8');
        expect(text).toContain('Subject: out over a passed socket');
        // With workers, the primary says it once every worker listens: the first may have served already.
        const listening = await waitFor('the "listening" line', () => jsonLogLines(daemon, 'listening')[0], { diagnostics: () => daemon.output() });
        // A primary's line names its workers' pids; one process's names none.
        expect(listening?.workers ?? [daemon.pid], daemon.output()).toHaveLength(workers);
        expect(listening?.addresses, daemon.output()).toMatchObject({
          inbound: [`127.0.0.1:${inboundPort}`],
          outbound: [`unix:${socket}`],
          transportLookup: `127.0.0.1:${lookupPort}`,
        });
        // The mailbox has it before Postfix A has logged blackpony's reply: wait for the log line.
        const sentLine = new RegExp(`to=<${MAILBOX}>, relay=\\S+\\[${socket.replace(/[./]/g, '\\$&')}\\], .*status=sent`);
        const log = await waitFor(
          'Postfix A logs the delivery through the passed socket',
          async () => {
            const text = await sender.readLog();
            return sentLine.test(text) ? text : undefined;
          },
          { diagnostics: () => sender.readLog() },
        );
        // Not one delivery attempt met a socket nobody listened on.
        expect(log).not.toMatch(/Connection refused|status=deferred/);
      });

      it('serves Postfix\'s transport lookup on the passed socket named "transport-lookup", answering with the passed outbound socket', async () => {
        // e.test has a local policy, so it goes to blackpony (d.test carries this host's own key: it stays with Postfix).
        const query = await runCommand('/usr/sbin/postmap', ['-q', 'e.test', `socketmap:inet:127.0.0.1:${lookupPort}:transport`], { terminal: true });
        expect(query.stdout.trim(), `exit ${query.exitCode} ${query.stdout} ${query.stderr}`).toBe(`blackpony:unix:${socket}`);
      });
    },
  );
});

describeWith([ROOT, SYSTEMD_SOCKET_ACTIVATE, NETCAT], 'outbound.listen: systemd refuses a socket it must not relay from', () => {
  /** Starts the daemon on the given sockets, makes it run by connecting to the first, and returns its failure. */
  async function failedStart(names: string | undefined, mode: number, workers = 1, tcp?: string): Promise<string> {
    const dir = await makeTempDir('outbound-systemd-refused');
    const socket = join(dir, 'lmtp.sock');
    await writeConfig(dir, `127.0.0.1:${await freePort()}`, 'systemd', await freePort(), await freePort(), '', workers);
    const daemon = await startActivated(dir, [tcp ?? socket, ...(tcp === undefined ? [] : [socket])], names, { path: socket, mode });
    try {
      await runCommand('/usr/bin/nc', tcp === undefined ? ['-U', '-z', socket] : ['-z', '127.0.0.1', tcp.split(':').at(-1)!]);
      const status = await daemon.exited;
      expect(status.code, daemon.output()).toBe(1);
      return daemon.stderr();
    } finally {
      await daemon.stop();
    }
  }

  it('a passed unix socket every local user may connect to (mode 0777)', async () => {
    const stderr = await failedStart('outbound', 0o777);
    expect(stderr).toMatch(
      /blackpony: run: outbound\.listen: "systemd", but the passed socket unix:\S+lmtp\.sock has mode 0777, which lets every local user connect \(set SocketMode=0660 and SocketGroup=postfix\): anyone who can reach it could relay mail through this host/,
    );
  });

  it('no passed socket named "outbound"', async () => {
    const stderr = await failedStart(undefined, 0o600);
    expect(stderr).toContain(
      'blackpony: run: outbound.listen: "systemd", but no passed socket is named "outbound" (LISTEN_FDNAMES "unknown"): set FileDescriptorName=outbound in its .socket unit',
    );
  });

  it('with two workers: the primary refuses it before any worker starts', async () => {
    const stderr = await failedStart('outbound', 0o777, 2);
    expect(stderr).toMatch(
      /blackpony: run: outbound\.listen: "systemd", but the passed socket unix:\S+lmtp\.sock has mode 0777, which lets every local user connect/,
    );
    expect(stderr).not.toContain('worker');
  });

  it('a passed TCP socket beyond loopback (0.0.0.0), with two workers or one', async () => {
    for (const workers of [1, 2]) {
      const port = await freePort();
      const stderr = await failedStart('outbound:unused', 0o600, workers, `0.0.0.0:${port}`);
      expect(stderr).toContain(
        `blackpony: run: outbound.listen: "systemd", but the passed socket is 0.0.0.0:${port}, not a loopback address: anyone who can reach it could relay mail through this host`,
      );
    }
  });
});
