import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '../../src/daemon/config.js';
import { SYSTEMD_ANALYZE, describeWith } from '../harness/requirements.js';
import { waitBound } from '../harness/wait.js';

const SYSTEMD = resolve(import.meta.dirname, '../../systemd');
const DEPLOY = resolve(import.meta.dirname, '../../deploy/postfix');
const MAX_EXPOSURE = 2.0;

function analyze(...args: string[]) {
  return spawnSync('/usr/bin/systemd-analyze', args, { cwd: dir, encoding: 'utf8', timeout: waitBound() });
}

let dir: string;

describeWith([SYSTEMD_ANALYZE], 'systemd units', () => {
  beforeAll(() => {
    // verify checks that ExecStart's binary exists: point it at node instead of /usr/bin/blackpony.
    dir = mkdtempSync(join(tmpdir(), 'blackpony-systemd-'));
    const service = readFileSync(join(SYSTEMD, 'blackpony.service'), 'utf8');
    expect(service).toMatch(/^ExecStart=\/usr\/bin\/blackpony run /m);
    writeFileSync(join(dir, 'blackpony.service'), service.replace(/^ExecStart=\/usr\/bin\/blackpony /m, `ExecStart=${process.execPath} `));
    copyFileSync(join(SYSTEMD, 'blackpony.socket'), join(dir, 'blackpony.socket'));
    for (const socket of ['blackpony-outbound.socket', 'blackpony-lookup.socket']) copyFileSync(join(SYSTEMD, socket), join(dir, socket));
  });

  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('pass systemd-analyze verify without a single warning', () => {
    const run = analyze('verify', './blackpony.service', './blackpony.socket', './blackpony-outbound.socket', './blackpony-lookup.socket');
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('verify does warn about a misspelt key (so the check above means something)', () => {
    const service = readFileSync(join(dir, 'blackpony.service'), 'utf8');
    writeFileSync(join(dir, 'misspelt.service'), service.replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes'));
    const run = analyze('verify', './misspelt.service');
    expect(run.stderr).toMatch(/Unknown key 'NoNewPrivilege' in section \[Service\]/);
  });

  it(`rate the service's exposure at ${MAX_EXPOSURE} or lower`, () => {
    const run = analyze('security', '--offline=yes', `--threshold=${MAX_EXPOSURE * 10}`, './blackpony.service');
    const match = /Overall exposure level for blackpony\.service: (\d+\.\d+)/.exec(run.stdout);
    expect(match, run.stdout + run.stderr).not.toBeNull();
    expect(Number(match![1])).toBeLessThanOrEqual(MAX_EXPOSURE);
    expect(run.status).toBe(0);
  });

  it('run the daemon unprivileged, with port 25 from the socket and the pins directory persistent', () => {
    const service = readFileSync(join(SYSTEMD, 'blackpony.service'), 'utf8');
    const socket = readFileSync(join(SYSTEMD, 'blackpony.socket'), 'utf8');
    expect(socket).toMatch(/^ListenStream=0\.0\.0\.0:25$/m);
    expect(socket).toMatch(/^ListenStream=\[::\]:25$/m);
    // The outbound socket: only Postfix may connect, and the daemon finds it by its name (listen.ts).
    const outbound = readFileSync(join(SYSTEMD, 'blackpony-outbound.socket'), 'utf8');
    expect(outbound).toMatch(/^FileDescriptorName=outbound$/m);
    expect(outbound).toMatch(/^SocketMode=0660$/m);
    expect(outbound).toMatch(/^SocketGroup=postfix$/m);
    expect(outbound).toMatch(/^Service=blackpony\.service$/m);
    expect(outbound).not.toMatch(/^ListenStream=\/run\/blackpony\//m);
    const lookup = readFileSync(join(SYSTEMD, 'blackpony-lookup.socket'), 'utf8');
    expect(lookup).toMatch(/^FileDescriptorName=transport-lookup$/m);
    expect(lookup).toMatch(/^ListenStream=127\.0\.0\.1:10588$/m);
    expect(service).toMatch(/^DynamicUser=yes$/m);
    expect(service).toMatch(/^CapabilityBoundingSet=$/m);
    expect(service).toMatch(/^StateDirectory=blackpony$/m);
    expect(service).toMatch(/^ExecReload=kill -HUP \$MAINPID$/m);
    // Readiness (src/daemon/readiness.ts): systemd-notify, a child of the daemon, sends READY=1.
    expect(service).toMatch(/^Type=notify$/m);
    expect(service).toMatch(/^NotifyAccess=all$/m);
    // V8's JIT needs writable+executable memory.
    expect(service).not.toMatch(/^MemoryDenyWriteExecute=yes/m);
    // The loopback legs of deploy/: Postfix's smtpd socket in its public/ folder (group postdrop),
    // blackpony's LMTP socket in the runtime directory, which becomes group postfix and setgid.
    expect(service).toMatch(/^SupplementaryGroups=postdrop$/m);
    expect(service).toMatch(/^RuntimeDirectory=blackpony$/m);
    expect(service).toMatch(/^ExecStartPre=\+\/bin\/chown :postfix \/run\/blackpony$/m);
    expect(service).toMatch(/^ExecStartPre=\+\/bin\/chmod 2750 \/run\/blackpony$/m);
    expect(readFileSync(join(DEPLOY, 'outbound-lmtp-unix.cf'), 'utf8')).toMatch(/^default_transport = blackpony:unix:\/run\/blackpony\/lmtp\.sock$/m);
    expect(readFileSync(join(DEPLOY, 'master.cf'), 'utf8')).toMatch(/^blackpony-smtpd unix n /m);
    // The state directory systemd makes is the configuration's default state_dir.
    expect(parseConfig('hostname: mail.example.org\nkeys: /k\n').stateDir).toBe('/var/lib/blackpony');
  });
});
