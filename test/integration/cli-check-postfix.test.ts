/**
 * `blackpony check-postfix -c DIR` against real Postfix configurations, read by Postfix's own
 * postconf: the deploy guide's layout (deploy/postfix/ snippets, as the other integration tests
 * install them) passes, and a real Postfix started from it makes its listener where the check
 * looked; each broken variant is named with what to change, exit 1.
 */
import { existsSync } from 'node:fs';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { expectOneLineFailure, runCli, type CliRun } from '../harness/cli.js';
import { freePort } from '../harness/ports.js';
import { startPostfix, type PostfixInstance, type PostfixOptions } from '../harness/postfix.js';
import { mainCf, masterCf, postfixLayout } from '../harness/postfix-config.js';
import { describeWith, executable, POSTFIX, ROOT } from '../harness/requirements.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';
import { mainCfSnippet, masterCfEntries, unixMasterCfSnippet } from './inbound-fixtures.js';

const POSTCONF = executable('postconf', '/usr/sbin/postconf');
const LISTENER = unixMasterCfSnippet();

/** The deploy guide's Postfix: inbound listener on a unix socket, outbound through the transport lookup. */
function deployed(): PostfixOptions {
  return { mainCf: { ...mainCfSnippet('main.cf'), ...mainCfSnippet('outbound-lookup.cf') }, masterCf: [LISTENER.entry, masterCfEntries('outbound-master.cf')] };
}

interface Blackpony {
  clientIdentity?: 'xclient' | 'proxy';
  /** inbound.postfix; default the unix listener under the queue directory. */
  postfix?: string;
  transportLookup?: string;
}

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await removeTempDir(dir);
});

/** Writes a Postfix configuration as the harness does (not started) and blackpony's; runs the check. */
async function check(options: PostfixOptions, blackpony: Blackpony = {}, configDir?: string): Promise<CliRun> {
  const dir = await makeTempDir('check-postfix');
  dirs.push(dir);
  const layout = postfixLayout(dir, await freePort());
  const etc = configDir ?? layout.configDir;
  if (configDir === undefined) {
    await mkdir(etc);
    await writeFile(join(etc, 'main.cf'), mainCf(layout, options));
    await writeFile(join(etc, 'master.cf'), masterCf(layout, options));
    // postconf re-reads a file younger than a second; dated back, it reads it at once.
    const past = new Date(Date.now() - 60_000);
    for (const file of ['main.cf', 'master.cf']) await utimes(join(etc, file), past, past);
  }
  const queueDir = configDir === undefined ? layout.queueDir : join(configDir, '..', 'spool');
  const config = [
    'hostname: mx.check.test',
    'keys: keys',
    `inbound: {listen: systemd, postfix: "${blackpony.postfix ?? `unix:${join(queueDir, 'public', LISTENER.service)}`}", client_identity: ${blackpony.clientIdentity ?? 'xclient'}}`,
    `outbound: {listen: "unix:/run/blackpony/lmtp.sock", transport_lookup: {listen: "${blackpony.transportLookup ?? '127.0.0.1:10588'}"}}`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'config.yaml'), config);
  return runCli(dir, ['check-postfix', '-c', etc, '--config', 'config.yaml']);
}

function problems(run: CliRun): string[] {
  return run.stdout.split('\n').filter((line) => line.startsWith('problem: '));
}

function expectProblem(run: CliRun, pattern: RegExp): void {
  expect(run.stderr).toBe('');
  expect(run.status).toBe(1);
  expect(
    problems(run).some((line) => pattern.test(line)),
    run.stdout,
  ).toBe(true);
  expect(run.stdout).toMatch(/\n\d+ problems?: Postfix \(.*\) does not fit blackpony \(config\.yaml\) yet\n$/);
}

describeWith([ROOT, POSTFIX, POSTCONF], 'blackpony check-postfix with real Postfix configurations', () => {
  let postfix: PostfixInstance | undefined;
  afterAll(async () => {
    await postfix?.stop();
  });

  it("passes the deploy guide's configuration, whose running Postfix makes the listener the check found", async () => {
    postfix = await startPostfix(deployed());
    const run = await check({}, {}, postfix.configDir);
    expect(run.stderr).toBe('');
    expect(problems(run)).toEqual([]);
    expect(run.stdout).toMatch(/^ok: Postfix \(.*\) fits blackpony \(config\.yaml\)$/m);
    expect(run.status).toBe(0);
    const socket = join(postfix.queueDir, 'public', LISTENER.service);
    await waitFor(`postfix: ${socket}`, () => existsSync(socket) || undefined, { intervalMs: 50 });
  });

  it('finds port 25 still with Postfix', async () => {
    const base = deployed();
    const run = await check({ ...base, masterCf: [...base.masterCf!, 'smtp inet n - n - - smtpd'] });
    expectProblem(run, /^problem: port 25: master\.cf service smtp\/inet \(smtpd\) still listens on port 25, .*`postconf -c \S+ -M# smtp\/inet`$/);
  });

  it('finds no listener for the relay, and one in private/ instead of public/', async () => {
    const base = deployed();
    expectProblem(
      await check({ ...base, masterCf: base.masterCf!.slice(1) }),
      /^problem: relay listener: no master\.cf service listens on unix:\S+\/public\/blackpony-smtpd/,
    );
    const inPrivate = LISTENER.entry.replace(/^(\S+) unix n /, '$1 unix - ');
    expectProblem(
      await check({ ...base, masterCf: [inPrivate, ...base.masterCf!.slice(1)] }),
      /makes \S+\/private\/blackpony-smtpd instead \(set its private column to n/,
    );
  });

  it('finds XCLIENT not granted to blackpony, and then loopback in mynetworks', async () => {
    const base = deployed();
    const withoutXclient = LISTENER.entry.replace(/\n\s+-o smtpd_authorized_xclient_hosts=\S+/, '');
    const run = await check({ ...base, masterCf: [withoutXclient, ...base.masterCf!.slice(1)] });
    expectProblem(run, /^problem: client identity: master\.cf service blackpony-smtpd\/unix does not grant XCLIENT to blackpony \(127\.0\.0\.1\)/);
    expectProblem(run, /^problem: mynetworks: 127\.0\.0\.0\/8 trusts blackpony's own loopback address/);
  });

  it('finds XCLIENT granted too widely: beyond blackpony on its listener, and on other listeners', async () => {
    const base = deployed();
    const wide = LISTENER.entry.replace(/smtpd_authorized_xclient_hosts=\S+/, 'smtpd_authorized_xclient_hosts=$mynetworks');
    const run = await check({ ...base, mynetworks: '127.0.0.0/8 10.0.0.0/8', masterCf: [wide, ...base.masterCf!.slice(1)] });
    expectProblem(run, /grants XCLIENT to more than blackpony's 127\.0\.0\.1 \(127\.0\.0\.0\/8, 10\.0\.0\.0\/8\)/);
    const everywhere = await check({ ...base, mainCf: { ...base.mainCf, smtpd_authorized_xclient_hosts: '127.0.0.1' } });
    expectProblem(everywhere, /^problem: client identity: main\.cf grants XCLIENT to 127\.0\.0\.1 on 127\.0\.0\.1:\d+\/inet: only blackpony's listener should/);
  });

  it('finds PROXY lines taken on a listener others reach, and PROXY mode against a listener without it', async () => {
    const base = deployed();
    const open = await check({
      ...base,
      masterCf: [...base.masterCf!, `0.0.0.0:${await freePort()} inet n - n - - smtpd\n  -o smtpd_upstream_proxy_protocol=haproxy`],
    });
    expectProblem(open, /takes PROXY lines \(smtpd_upstream_proxy_protocol\) on 0\.0\.0\.0: anyone who reaches it can pass for any client/);
    const port = await freePort();
    const plain = await check(
      { ...base, masterCf: [...base.masterCf!, `127.0.0.1:${port} inet n - n - - smtpd`] },
      { clientIdentity: 'proxy', postfix: `127.0.0.1:${port}` },
    );
    expectProblem(plain, new RegExp(`^problem: client identity: master\\.cf service 127\\.0\\.0\\.1:${port}/inet takes no PROXY lines`));
  });

  it('finds a wide public network in mynetworks', async () => {
    expectProblem(
      await check({ ...deployed(), mynetworks: '127.0.0.0/8 192.168.0.0/16 0.0.0.0/0' }),
      /^problem: mynetworks: 0\.0\.0\.0\/0 trusts a wide public network \(4294967296 addresses\)/,
    );
  });

  it("finds the transport lookup not pointing at blackpony's", async () => {
    const base = deployed();
    const elsewhere = await check({ ...base, mainCf: { ...base.mainCf, transport_maps: 'socketmap:inet:127.0.0.1:10599:transport' } });
    expectProblem(
      elsewhere,
      /^problem: transport: transport_maps does not ask blackpony's lookup \(outbound\.transport_lookup\.listen 127\.0\.0\.1:10588\), it asks socketmap:inet:127\.0\.0\.1:10599:transport/,
    );
    const noRoute = await check({ ...base, mainCf: { ...base.mainCf, transport_maps: '' } }, { transportLookup: '' });
    expectProblem(noRoute, /^problem: transport: Postfix hands no mail to blackpony: .*default_transport \(smtp\)/);
  });

  it('a configuration that cannot be read is a usage error (exit 3)', async () => {
    const run = await check({}, {}, '/nonexistent/postfix');
    expectOneLineFailure(
      { ...run, status: run.status === 3 ? 1 : run.status },
      /^blackpony: check-postfix: postconf -c \/nonexistent\/postfix -x: postconf: fatal: open \/nonexistent\/postfix\/main\.cf/,
    );
    expect(run.status).toBe(3);
  });
});
