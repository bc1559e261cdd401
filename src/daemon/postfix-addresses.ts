/**
 * Addresses as Postfix writes them: where an inet service of master.cf listens (`[host:]port`,
 * the host's absence meaning inet_interfaces), address lists such as mynetworks and
 * smtpd_authorized_xclient_hosts (`1.2.3.0/24`, `[::1]/128`, host names, `type:table`), and
 * the next hop of an lmtp or smtp transport (`unix:/path`, `inet:[host]:port`, `[host]:port`).
 */
import { BlockList, isIP } from 'node:net';
import { parseAddressRange, type AddressRange } from '../xpony/index.js';
import type { Endpoint } from './config-values.js';
import { postfixList, type MasterService } from './postfix-settings.js';

/** The /etc/services names Postfix's stock master.cf uses. */
const SERVICE_PORTS: Readonly<Record<string, number>> = { smtp: 25, submission: 587, submissions: 465, smtps: 465, lmtp: 24 };

/** A port number or a well-known service name; undefined for a name this does not know. */
export function portNumber(text: string): number | undefined {
  if (/^[0-9]{1,5}$/.test(text)) return Number(text);
  return SERVICE_PORTS[text];
}

export function isLoopbackHost(host: string): boolean {
  const bare = unbracket(host);
  return bare === 'localhost' || bare === '::1' || (isIP(bare) === 4 && bare.startsWith('127.'));
}

/** The addresses that mean "every address": 0.0.0.0, ::, or Postfix's "all". */
export function isWildcardHost(host: string): boolean {
  const bare = unbracket(host);
  return bare === 'all' || bare === '0.0.0.0' || bare === '::' || bare === '';
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** The hosts inet_interfaces names: loopback-only is 127.0.0.1 and ::1, all is the wildcard. */
function interfaceHosts(inetInterfaces: string): string[] {
  return postfixList(inetInterfaces).flatMap((word) => (word === 'loopback-only' ? ['127.0.0.1', '::1'] : [word]));
}

/** Where an inet service listens: its own host, or every inet_interfaces address; undefined port for an unknown service name. */
export function inetListener(service: MasterService, inetInterfaces: string): { hosts: string[]; port: number | undefined } {
  const match = /^(?:(\[[^\]]*\]|[^:]*):)?([^:]+)$/.exec(service.name);
  const host = match?.[1];
  return {
    hosts: host === undefined ? interfaceHosts(inetInterfaces) : [unbracket(host)],
    port: match === null ? undefined : portNumber(match[2]!),
  };
}

/** Whether a listener's hosts take connections for `host` (the same address, or a wildcard on either side). */
export function coversHost(hosts: readonly string[], host: string): boolean {
  const wanted = normalizeHost(host);
  return hosts.some((candidate) => isWildcardHost(candidate) || isWildcardHost(wanted) || normalizeHost(candidate) === wanted);
}

function normalizeHost(host: string): string {
  const bare = unbracket(host);
  return bare === 'localhost' ? '127.0.0.1' : bare.toLowerCase();
}

/** One entry of a Postfix address list: an address or network, or what this cannot evaluate (a host name, a table, a negation). */
export interface AddressListEntry {
  readonly text: string;
  readonly range: AddressRange | undefined;
}

export function addressList(value: string): AddressListEntry[] {
  return postfixList(value).map((text) => {
    // Postfix writes IPv6 in brackets, with the prefix after them: [2001:db8::]/32.
    const bare = text.replace(/^\[([^\]]*)\](\/\d+)?$/, '$1$2');
    const range = parseAddressRange(bare);
    return { text, range: typeof range === 'string' ? undefined : range };
  });
}

function blockList(range: AddressRange): BlockList {
  const list = new BlockList();
  list.addSubnet(range.address, range.prefix, range.family);
  return list;
}

/** Whether the entry's network holds the address (host names and tables never do, as far as this can tell). */
export function entryHolds(entry: AddressListEntry, address: string): boolean {
  if (entry.range === undefined) return false;
  const family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
  return entry.range.family === family && blockList(entry.range).check(address, family);
}

/** Networks that are not the Internet's: loopback, private, link-local, unique local. */
const LOCAL_NETWORKS: readonly AddressRange[] = [
  { address: '127.0.0.0', prefix: 8, family: 'ipv4' },
  { address: '10.0.0.0', prefix: 8, family: 'ipv4' },
  { address: '172.16.0.0', prefix: 12, family: 'ipv4' },
  { address: '192.168.0.0', prefix: 16, family: 'ipv4' },
  { address: '169.254.0.0', prefix: 16, family: 'ipv4' },
  { address: '::1', prefix: 128, family: 'ipv6' },
  { address: 'fc00::', prefix: 7, family: 'ipv6' },
  { address: 'fe80::', prefix: 10, family: 'ipv6' },
];

/** Public networks larger than this many prefix bits allow are "wide": more than one site's addresses. */
const NARROWEST_WIDE_PREFIX = { ipv4: 24, ipv6: 48 } as const;

/** Whether the entry trusts a public network wider than a /24 (IPv4) or /48 (IPv6). */
export function isWidePublicNetwork(entry: AddressListEntry): boolean {
  const range = entry.range;
  if (range === undefined || range.prefix >= NARROWEST_WIDE_PREFIX[range.family]) return false;
  const local = LOCAL_NETWORKS.some(
    (network) => network.family === range.family && range.prefix >= network.prefix && blockList(network).check(range.address, range.family),
  );
  return !local;
}

/** How many addresses an entry's network holds, for messages ("16777216 addresses", "2^80 addresses"). */
export function networkSize(range: AddressRange): string {
  const bits = (range.family === 'ipv4' ? 32 : 128) - range.prefix;
  return bits <= 32 ? `${2 ** bits} addresses` : `2^${bits} addresses`;
}

/**
 * Where an lmtp or smtp next hop leads: `unix:PATH` (relative to the queue directory),
 * `inet:HOST:PORT`, `[HOST]:PORT` or `HOST:PORT`; undefined when it is none of these.
 */
export function nextHopEndpoint(nextHop: string, command: string, queueDirectory: string): Endpoint | undefined {
  if (nextHop.startsWith('unix:')) {
    const path = nextHop.slice('unix:'.length);
    return command === 'lmtp' ? { path: path.startsWith('/') ? path : `${queueDirectory}/${path}` } : undefined;
  }
  const hostPort = command === 'lmtp' ? nextHop.replace(/^inet:/, '') : nextHop;
  const match = /^(\[[^\]]*\]|[^:[\]]+)(?::([^:]+))?$/.exec(hostPort);
  if (match === null) return undefined;
  const port = match[2] === undefined ? (command === 'lmtp' ? 24 : 25) : portNumber(match[2]);
  return port === undefined ? undefined : { host: unbracket(match[1]!), port };
}

/** Whether two endpoints are the same socket (loopback names compared as addresses). */
export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  if ('path' in a || 'path' in b) return 'path' in a && 'path' in b && a.path === b.path;
  return a.port === b.port && normalizeHost(a.host) === normalizeHost(b.host);
}
