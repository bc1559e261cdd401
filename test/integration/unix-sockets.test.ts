/**
 * Both loopback legs over unix sockets, as deploy/README.md and systemd/blackpony.service set them
 * up: blackpony, an unprivileged user in the group postdrop, relays to Postfix's unix-socket smtpd
 * (deploy/postfix/master.cf, public/blackpony-smtpd), and Postfix hands outgoing mail to blackpony
 * over `lmtp:unix:` (outbound-lmtp-unix.cf) on a socket in a setgid folder of group postfix.
 * Unlike a loopback port, neither socket lets another local user in: such a user cannot send
 * XCLIENT to Postfix or make blackpony relay for it.
 */
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateKeys, writeKeyFile } from '../../src/crypto/keyfile.js';
import { expectOneLineFailure, PROJECT_ROOT, runCli } from '../harness/cli.js';
import { runCommand } from '../harness/command.js';
import { freePort } from '../harness/ports.js';
import { startPostfix, type PostfixInstance } from '../harness/postfix.js';
import { startProcess, type ManagedProcess } from '../harness/processes.js';
import { describeWith, executable, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { ensureSystemUser, systemGroup } from '../harness/system-users.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';
import { MAILBOX, mainCfSnippet, masterCfEntries, startBlackpony, unixMasterCfSnippet } from './inbound-fixtures.js';

const CLI = join(PROJECT_ROOT, 'bin/blackpony.js');
const HOST = 'mx.sockets.test';
const NETCAT = executable('netcat-openbsd', '/usr/bin/nc');
const RUNUSER = executable('runuser', '/usr/sbin/runuser');
/** A local user in no group of Postfix's or blackpony's. */
const OUTSIDER = 'bp-test-outsider';
/** blackpony's user: in postdrop, as systemd/blackpony.service makes it (SupplementaryGroups=postdrop). */
const DAEMON_USER = 'bp-test-daemon';
const SNIPPET_SOCKET = 'unix:/run/blackpony/lmtp.sock';
const PROXY_SERVICE = 'blackpony-proxy';

/** Connects to a unix socket as `user` and hangs up (nc -z); resolves with nc's exit status and message. */
async function connectAs(user: string, path: string): Promise<{ exitCode: number | null; output: string }> {
  const result = await runCommand('/usr/sbin/runuser', ['-u', user, '--', '/usr/bin/nc', '-U', '-z', path]);
  return { exitCode: result.exitCode, output: result.stdout + result.stderr };
}

describeWith([ROOT, POSTFIX, SWAKS, NETCAT, RUNUSER], 'loopback legs over unix sockets, with real Postfix instances', () => {
  let behind: PostfixInstance;
  let sender: PostfixInstance;
  let daemon: ManagedProcess;
  let smtpdSocket: string;
  let lmtpSocket: string;
  let port: number;

  beforeAll(async () => {
    await ensureSystemUser(OUTSIDER);
    const daemonUser = await ensureSystemUser(DAEMON_USER, ['postdrop']);
    const listener = unixMasterCfSnippet();
    // Beside it, the same listener taking PROXY lines instead (inbound.client_identity: proxy).
    const proxyListener = `${listener.entry.replace(listener.service, PROXY_SERVICE)}\n  -o smtpd_upstream_proxy_protocol=haproxy`;
    behind = await startPostfix({ hostname: 'mx.d.test', mailboxes: [MAILBOX], mainCf: mainCfSnippet(), masterCf: [listener.entry, proxyListener] });
    smtpdSocket = join(behind.queueDir, 'public', listener.service);
    const dir = await makeTempDir('unix-sockets');
    // The unit's RuntimeDirectory, as its ExecStartPre lines leave it: blackpony's, group postfix, setgid.
    const runDir = join(dir, 'run');
    await mkdir(runDir);
    await chown(runDir, daemonUser.uid, systemGroup('postfix'));
    await chmod(runDir, 0o2750);
    lmtpSocket = join(runDir, 'lmtp.sock');
    await writeKeyFile(join(dir, 'keys'), generateKeys());
    await chown(join(dir, 'keys'), daemonUser.uid, daemonUser.gid);
    await chown(dir, daemonUser.uid, daemonUser.gid);
    port = await freePort();
    const config = [
      `hostname: ${HOST}`,
      'keys: keys',
      'state_dir: .',
      `inbound: {listen: "127.0.0.1:${port}", postfix: "unix:${smtpdSocket}", client_name_lookup: false}`,
      // d.test mail goes to this daemon's own inbound side, so one message crosses both sockets.
      `outbound: {listen: "unix:${lmtpSocket}", listen_mode: "0660", routes: {d.test: "[127.0.0.1]:${port}"}}`,
      'metrics: {listen: ""}',
      '',
    ].join('\n');
    await writeFile(join(dir, 'config.yaml'), config);
    daemon = await startProcess(
      'blackpony run',
      '/usr/sbin/runuser',
      ['-u', DAEMON_USER, '--', process.execPath, CLI, 'run', '--config', join(dir, 'config.yaml')],
      { cwd: dir },
    );
    await waitFor('blackpony listening', () => (daemon.stderr().includes('"msg":"listening"') ? true : undefined), { diagnostics: () => daemon.output() });
    const transport = mainCfSnippet('outbound-lmtp-unix.cf');
    if (!transport.default_transport?.endsWith(SNIPPET_SOCKET))
      throw new Error(`deploy/postfix/outbound-lmtp-unix.cf: expected default_transport to end in ${SNIPPET_SOCKET}`);
    sender = await startPostfix({
      hostname: 'mx.a.test',
      mainCf: { ...transport, default_transport: transport.default_transport.replace(SNIPPET_SOCKET, `unix:${lmtpSocket}`) },
      masterCf: [masterCfEntries('outbound-master.cf')],
    });
  });
  afterAll(async () => {
    await daemon?.stop();
    await sender?.stop();
    await behind?.stop();
  });

  it("listens on the outbound socket with the configured mode, and the folder's group", async () => {
    expect(daemon.stderr()).toContain(`"outbound":["unix:${lmtpSocket}"]`);
    const stat = await runCommand('/usr/bin/stat', ['-c', '%F %a %G', lmtpSocket]);
    expect(stat.stdout.trim()).toBe('socket 660 postfix');
  });

  it("relays a client's message to Postfix's unix-socket smtpd, and Postfix logs the real client address", async () => {
    const before = (await behind.maildirMessages(MAILBOX)).length;
    const result = await runSwaks({
      server: `127.0.0.1:${port}`,
      from: 'alice@sender.test',
      to: MAILBOX,
      headers: { Subject: 'over the socket' },
      extraArgs: ['--local-interface', '127.0.0.7'],
    });
    expect(result.exitCode, result.transcript).toBe(0);
    const text = (await behind.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('utf8');
    expect(text).toMatch(/^Received: from \S+ \(unknown \[127\.0\.0\.7\]\)/m);
    await behind.waitForLog(/postfix\/blackpony\/smtpd\[\d+\]: [0-9A-Za-z]+: client=unknown\[127\.0\.0\.7\]/);
  });

  it("takes Postfix's outgoing mail over lmtp:unix: and delivers it (here through its own inbound side and the smtpd socket)", async () => {
    const before = (await behind.maildirMessages(MAILBOX)).length;
    const sent = await runSwaks({ server: `127.0.0.1:${sender.port}`, from: 'bob@a.test', to: MAILBOX, headers: { Subject: 'out over lmtp unix' } });
    expect(sent.exitCode, sent.transcript).toBe(0);
    const text = (await behind.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('utf8');
    expect(text).toContain('Subject: out over lmtp unix');
    // Postfix logs the delivery once blackpony's LMTP reply is in, just after the message arrived.
    const sentLine = new RegExp(`to=<${MAILBOX}>, relay=\\S+\\[${lmtpSocket.replace(/[./]/g, '\\$&')}\\], .*status=sent`);
    await waitFor('the sender Postfix logging status=sent through the socket', async () => (sentLine.test(await sender.readLog()) ? true : undefined), {
      diagnostics: () => sender.readLog(),
    });
  });

  it("also relays with PROXY lines over a unix socket: its own probe names loopback, a client's names the client", async () => {
    const pony = await startBlackpony({ path: join(behind.queueDir, 'public', PROXY_SERVICE) }, { clientIdentity: 'proxy' });
    try {
      const before = (await behind.maildirMessages(MAILBOX)).length;
      const result = await runSwaks({
        server: `127.0.0.1:${pony.port}`,
        from: 'alice@sender.test',
        to: MAILBOX,
        ehlo: 'proxied.sender.test',
        extraArgs: ['--local-interface', '127.0.0.8'],
      });
      expect(result.exitCode, result.transcript).toBe(0);
      // Learnt from the probe, which Postfix took from blackpony as localhost[127.0.0.1].
      expect(result.transcript).toMatch(/<- {2}250-SIZE 10240000\r?\n/); // Postfix's default message_size_limit
      const text = (await behind.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('utf8');
      expect(text).toMatch(/^Received: from proxied\.sender\.test \(unknown \[127\.0\.0\.8\]\)/m);
    } finally {
      await pony.inbound.close();
    }
  });

  it('refuses another local user on both sockets (EACCES), and lets in those the permissions name', async () => {
    for (const path of [smtpdSocket, lmtpSocket]) {
      const outsider = await connectAs(OUTSIDER, path);
      expect(outsider.exitCode, path).not.toBe(0);
      expect(outsider.output, path).toMatch(/Permission denied/);
    }
    // The controls: the same connection succeeds for blackpony's user (Postfix's socket) and for postfix (blackpony's).
    expect(await connectAs(DAEMON_USER, smtpdSocket)).toMatchObject({ exitCode: 0 });
    expect(await connectAs('postfix', lmtpSocket)).toMatchObject({ exitCode: 0 });
  });

  it('a second daemon on the same socket refuses to start, naming the setting, and leaves the first one serving', async () => {
    const dir = await makeTempDir('unix-sockets-second');
    await writeKeyFile(join(dir, 'keys'), generateKeys());
    await writeFile(
      join(dir, 'config.yaml'),
      `hostname: ${HOST}\nkeys: keys\nstate_dir: .\ninbound: {enabled: false}\noutbound: {listen: "unix:${lmtpSocket}"}\nmetrics: {listen: ""}\n`,
    );
    const second = runCli(dir, ['run', '--config', join(dir, 'config.yaml')]);
    expectOneLineFailure(second, `blackpony: run: outbound.listen: unix:${lmtpSocket}: another process listens on it`);
    expect(await connectAs('postfix', lmtpSocket)).toMatchObject({ exitCode: 0 });
  });

  // Last: it stops the daemon.
  it('removes its socket file when it stops', async () => {
    await daemon.stop();
    await waitFor('the LMTP socket file gone', () => (existsSync(lmtpSocket) ? undefined : true), { diagnostics: () => daemon.output() });
    expect(daemon.stderr()).toContain('"msg":"stopped"');
  });
});
