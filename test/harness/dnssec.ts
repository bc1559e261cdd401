import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './command.js';
import { ComponentStartError } from './errors.js';
import { freePort } from './ports.js';
import { startProcess, type ManagedProcess } from './processes.js';
import { executable } from './requirements.js';
import { makeTempDir } from './temp-dir.js';
import { waitFor } from './wait.js';

export const NSD = executable('nsd', '/usr/sbin/nsd');
export const UNBOUND = executable('unbound', '/usr/sbin/unbound');
export const LDNS_SIGNZONE = executable('ldns-signzone', '/usr/bin/ldns-signzone');
export const LDNS_KEYGEN = executable('ldns-keygen', '/usr/bin/ldns-keygen');

/** The zone signed with ldns and anchored in the validating resolver. */
export const SIGNED_ZONE = 'signed.test';

export interface DnssecZones {
  /** Zone-file lines (owner names relative to signed.test, or absolute with a dot) that are signed. */
  signed: readonly string[];
  /** Lines added to signed.test after signing, without signatures: a forger's answers, bogus to a validator. */
  forged?: readonly string[];
  /**
   * Zones served unsigned, their answers without AD: e.g. plain.test (no trust anchor), or a zone
   * under signed.test, which is then delegated to it without a DS record (provably insecure).
   */
  unsigned?: readonly { zone: string; lines: readonly string[] }[];
}

export interface TestDnssec {
  /** The validating unbound on 127.0.0.1. */
  resolver: { host: string; port: number };
  /** The authoritative nsd (no validation): what a non-validating resolver would see. */
  authoritative: { host: string; port: number };
  stop(): Promise<void>;
}

/**
 * signed.test, signed with ldns-keygen + ldns-signzone, and the unsigned zones, served by nsd on
 * a free 127.0.0.1 port; in front a validating unbound on another free port, whose only trust
 * anchor is signed.test's key and which reaches every zone by stub-zone (no root hints used).
 */
export async function startDnssec(zones: DnssecZones): Promise<TestDnssec> {
  const dir = await makeTempDir('dnssec');
  const unsigned = zones.unsigned ?? [];
  const files = new Map<string, string>([[SIGNED_ZONE, await signZone(dir, zones)]]);
  for (const { zone, lines } of unsigned) {
    files.set(zone, join(dir, `${zone}.zone`));
    await writeFile(files.get(zone)!, zoneText(zone, lines));
  }
  const nsdPort = await freePort({ udp: true });
  const nsd = await startServer('nsd', '/usr/sbin/nsd', ['-d', '-c', await nsdConfig(dir, nsdPort, files)], /nsd started|zone .* (read|serial)/i);
  try {
    const unboundPort = await freePort({ udp: true });
    const unbound = await startServer(
      'unbound',
      '/usr/sbin/unbound',
      ['-d', '-c', await unboundConfig(dir, unboundPort, nsdPort, [...files.keys()])],
      /start of service/,
    );
    return {
      resolver: { host: '127.0.0.1', port: unboundPort },
      authoritative: { host: '127.0.0.1', port: nsdPort },
      async stop() {
        await unbound.stop();
        await nsd.stop();
      },
    };
  } catch (error) {
    await nsd.stop();
    throw error;
  }
}

function zoneText(zone: string, lines: readonly string[]): string {
  return [
    `$ORIGIN ${zone}.`,
    '$TTL 60',
    `@ IN SOA ns.${zone}. hostmaster.${zone}. 1 3600 600 86400 60`,
    `@ IN NS ns.${zone}.`,
    `ns IN A 127.0.0.1`,
    ...lines,
    '',
  ].join('\n');
}

async function signZone(dir: string, zones: DnssecZones): Promise<string> {
  const zoneFile = join(dir, `${SIGNED_ZONE}.zone`);
  const delegations = (zones.unsigned ?? []).filter(({ zone }) => zone.endsWith(`.${SIGNED_ZONE}`)).map(({ zone }) => `${zone}. IN NS ns.${SIGNED_ZONE}.`);
  await writeFile(zoneFile, zoneText(SIGNED_ZONE, [...zones.signed, ...delegations]));
  const keygen = await runCommand('/usr/bin/ldns-keygen', ['-a', 'ECDSAP256SHA256', '-k', SIGNED_ZONE], { cwd: dir });
  if (keygen.exitCode !== 0) throw new ComponentStartError('ldns-keygen', `exit ${keygen.exitCode}`, keygen.stderr);
  const key = keygen.stdout.trim();
  const sign = await runCommand('/usr/bin/ldns-signzone', ['-o', SIGNED_ZONE, zoneFile, key], { cwd: dir });
  if (sign.exitCode !== 0) throw new ComponentStartError('ldns-signzone', `exit ${sign.exitCode}`, sign.stderr);
  const signedFile = `${zoneFile}.signed`;
  if ((zones.forged ?? []).length > 0) {
    const forged = (zones.forged ?? []).map((line) => (/^\S+\.\s/.test(line) ? line : `${line.replace(/^(\S+)/, `$1.${SIGNED_ZONE}.`)}`));
    await writeFile(signedFile, `${await readFile(signedFile, 'utf8')}\n${forged.join('\n')}\n`);
  }
  // The anchor: the zone's DNSKEY (ldns-keygen wrote it next to the private key).
  const files = await readdir(dir);
  if (!files.includes(`${key}.key`)) throw new ComponentStartError('ldns-keygen', `no ${key}.key written`, files.join(' '));
  await writeFile(join(dir, 'anchor.key'), await readFile(join(dir, `${key}.key`), 'utf8'));
  return signedFile;
}

async function nsdConfig(dir: string, port: number, files: ReadonlyMap<string, string>): Promise<string> {
  const file = join(dir, 'nsd.conf');
  await writeFile(
    file,
    [
      'server:',
      `  ip-address: 127.0.0.1@${port}`,
      `  port: ${port}`,
      '  username: ""',
      '  chroot: ""',
      `  zonesdir: "${dir}"`,
      `  pidfile: "${join(dir, 'nsd.pid')}"`,
      `  xfrdfile: "${join(dir, 'xfrd.state')}"`,
      `  zonelistfile: "${join(dir, 'zone.list')}"`,
      '  database: ""',
      '  server-count: 1',
      '  verbosity: 2',
      'remote-control:',
      '  control-enable: no',
      ...[...files].flatMap(([zone, file]) => ['zone:', `  name: "${zone}"`, `  zonefile: "${file}"`]),
      '',
    ].join('\n'),
  );
  return file;
}

async function unboundConfig(dir: string, port: number, nsdPort: number, zones: readonly string[]): Promise<string> {
  const file = join(dir, 'unbound.conf');
  await writeFile(
    file,
    [
      'server:',
      '  interface: 127.0.0.1',
      `  port: ${port}`,
      '  do-ip6: no',
      '  num-threads: 1',
      '  so-reuseport: no',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      `  pidfile: "${join(dir, 'unbound.pid')}"`,
      '  use-syslog: no',
      '  logfile: ""',
      '  verbosity: 1',
      '  access-control: 127.0.0.0/8 allow',
      '  do-not-query-localhost: no',
      '  module-config: "validator iterator"',
      `  trust-anchor-file: "${join(dir, 'anchor.key')}"`,
      '  local-zone: "test." nodefault',
      '  qname-minimisation: no',
      '  cache-max-ttl: 0',
      '  cache-max-negative-ttl: 0',
      '  val-log-level: 2',
      'remote-control:',
      '  control-enable: no',
      ...zones.flatMap((zone) => ['stub-zone:', `  name: "${zone}"`, `  stub-addr: 127.0.0.1@${nsdPort}`]),
      '',
    ].join('\n'),
  );
  return file;
}

async function startServer(name: string, path: string, args: readonly string[], ready: RegExp): Promise<ManagedProcess> {
  const server = await startProcess(name, path, args);
  try {
    await waitFor(
      `${name} started`,
      () => {
        if (server.status !== null) throw new ComponentStartError(name, `exited (${JSON.stringify(server.status)})`, server.output());
        return ready.test(server.output()) ? true : undefined;
      },
      { diagnostics: () => server.output() },
    );
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}
