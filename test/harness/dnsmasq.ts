import { Resolver } from 'node:dns/promises';
import { ComponentStartError, HarnessUsageError } from './errors.js';
import { freePort } from './ports.js';
import { startProcess, type ManagedProcess } from './processes.js';
import { loadScaled, waitFor } from './wait.js';

const DNSMASQ = '/usr/sbin/dnsmasq';

/** Records the test DNS serves; every name must be under .test. */
export interface DnsRecords {
  mx?: readonly { domain: string; host: string; preference: number }[];
  a?: readonly { host: string; address: string }[];
  aaaa?: readonly { host: string; address: string }[];
  /** PTR records beyond those that `a` and `aaaa` make (each of which also has its PTR). */
  ptr?: readonly { address: string; host: string }[];
  /** A value longer than 255 bytes is served as several strings that rejoin to it byte for byte. */
  txt?: readonly { name: string; value: string }[];
  /** TLSA records (type 52) at `_25._tcp.<host>`, given as the record data in hex (usage, selector, matching type, data). */
  tlsa?: readonly { host: string; hex: string }[];
  /** Names whose queries go to another server on 127.0.0.1 (e.g. servfail-dns.ts), with everything under them. */
  forward?: readonly { name: string; port: number }[];
  /** The TTL of every answer, in seconds (dnsmasq's --local-ttl); default 0, which no cache keeps. */
  ttl?: number;
}

export interface TestDns {
  port: number;
  /** A resolver that asks only this server. */
  resolver(): Resolver;
  /** Serves `records` instead, on the same port. */
  restart(records: DnsRecords): Promise<void>;
  /** How many `type` queries for `name` the running server has answered (its query log). */
  queries(type: string, name: string): number;
  stop(): Promise<void>;
}

/**
 * Starts dnsmasq on a free 127.0.0.1 port (UDP and TCP), authoritative for .test only: names it
 * does not know are NXDOMAIN, everything outside .test is refused. Records go on the command line
 * (dnsmasq's config-file lines cannot hold long TXT values).
 */
export async function startDns(records: DnsRecords): Promise<TestDns> {
  const port = await freePort({ udp: true });
  let server = await startDnsmasq(port, dnsmasqArgs(port, records));
  return {
    port,
    resolver() {
      const resolver = new Resolver({ timeout: loadScaled(2_000), tries: 1 });
      resolver.setServers([`127.0.0.1:${port}`]);
      return resolver;
    },
    async restart(newRecords) {
      const args = dnsmasqArgs(port, newRecords); // bad records fail here, with the old server still up
      await server.stop();
      server = await startDnsmasq(port, args);
    },
    queries(type, name) {
      const line = new RegExp(`: query\\[${type}\\] ${name.replace(/\./g, '\\.')} from `, 'g');
      return server.stderr().match(line)?.length ?? 0;
    },
    async stop() {
      await server.stop();
    },
  };
}

function dnsmasqArgs(port: number, records: DnsRecords): string[] {
  return [
    '--keep-in-foreground',
    '--conf-file=/dev/null',
    '--pid-file=',
    '--log-facility=-',
    '--log-queries',
    '--user=nobody',
    '--group=nogroup',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--local=/test/',
    // Addresses without a PTR record are answered NXDOMAIN, not refused.
    '--local=/in-addr.arpa/',
    '--local=/ip6.arpa/',
    ...recordArgs(records),
  ];
}

async function startDnsmasq(port: number, args: readonly string[]): Promise<ManagedProcess> {
  const dnsmasq = await startProcess(`dnsmasq (${port})`, DNSMASQ, args);
  try {
    await waitFor(
      `dnsmasq: listening on 127.0.0.1:${port}`,
      () => {
        if (dnsmasq.status !== null) throw new ComponentStartError('dnsmasq', `exited (${JSON.stringify(dnsmasq.status)})`, dnsmasq.output());
        return /dnsmasq\[\d+\]: started/.test(dnsmasq.stderr()) ? true : undefined;
      },
      { diagnostics: () => dnsmasq.output() },
    );
  } catch (error) {
    await dnsmasq.stop();
    throw error;
  }
  return dnsmasq;
}

function recordArgs(records: DnsRecords): string[] {
  return [
    ...(records.ttl === undefined ? [] : [`--local-ttl=${records.ttl}`]),
    ...(records.mx ?? []).map(({ domain, host, preference }) => `--mx-host=${testName(domain)},${testName(host)},${preference}`),
    ...[...(records.a ?? []), ...(records.aaaa ?? [])].map(({ host, address }) => `--host-record=${testName(host)},${address}`),
    ...(records.ptr ?? []).map(({ address, host }) => `--ptr-record=${reverseName(address)},${testName(host)}`),
    ...(records.txt ?? []).map(({ name, value }) => `--txt-record=${testName(name)},${txtValue(name, value)}`),
    ...(records.tlsa ?? []).map(({ host, hex }) => `--dns-rr=_25._tcp.${testName(host)},52,${hexData(hex)}`),
    ...(records.forward ?? []).map(({ name, port }) => `--server=/${testName(name)}/127.0.0.1#${port}`),
  ];
}

/** The in-addr.arpa name of an IPv4 address. */
function reverseName(address: string): string {
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(address)) throw new HarnessUsageError(`test DNS: PTR address "${address}" is not IPv4`);
  return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
}

function hexData(hex: string): string {
  if (!/^([0-9a-f]{2})+$/.test(hex)) throw new HarnessUsageError(`test DNS: record data "${hex}" is not lower-case hex`);
  return hex;
}

function testName(name: string): string {
  if (!/^([a-z0-9_-]+\.)*test$/.test(name)) throw new HarnessUsageError(`test DNS: "${name}" is not a lower-case name under .test`);
  return name;
}

/** dnsmasq splits a command-line TXT value at every comma into separate strings, so none may contain one. */
function txtValue(name: string, value: string): string {
  if (value.includes(',')) throw new HarnessUsageError(`test DNS: TXT value of ${name} contains ",", which dnsmasq would split`);
  return value;
}
