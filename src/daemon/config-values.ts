/**
 * The kinds of value a configuration setting takes (the schema's `read` functions, config-schema.ts):
 * each converts a YAML value, or reports "expected ..., got ..." and returns anything. Also the
 * value types they produce and how the file writes them back.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { normalizeDomain } from '../crypto/domain-name.js';
import { parseRoute, RouteError } from '../outbound/routing.js';
import { parseAddressRange } from '../xpony/index.js';

/** Reports a problem with a value: `reason` reads "expected ..., got ...", `at` names a map entry. */
export type Report = (reason: string, at?: string) => void;

export interface HostPort {
  /** A hostname or IP address, IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
}

/** `HOST:PORT`, with an IPv6 host in brackets, as the file writes it. */
export function formatHostPort(address: HostPort): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

/** A unix-domain socket, written `unix:/absolute/path` in the file. */
export interface SocketPath {
  readonly path: string;
}

/** Where a loopback leg to or from Postfix runs: a TCP address or a unix-domain socket. */
export type Endpoint = HostPort | SocketPath;

const UNIX_PREFIX = 'unix:';
/** sun_path holds 108 bytes, the terminating NUL included (unix(7)). */
const MAX_SOCKET_PATH_BYTES = 107;

/** `HOST:PORT` or `unix:/path`, as the file writes it. */
export function formatEndpoint(endpoint: Endpoint): string {
  return 'path' in endpoint ? `${UNIX_PREFIX}${endpoint.path}` : formatHostPort(endpoint);
}

export type PolicyMode = 'enforce' | 'testing' | 'none';

/** How a value appears in an error message: strings quoted, containers by kind. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  // eslint-disable-next-line @typescript-eslint/no-base-to-string -- no object is left: numbers, booleans and the like print themselves
  return String(value);
}

const HOSTNAME_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

function isHostname(text: string): boolean {
  return text.length <= 253 && text.split('.').every((label) => HOSTNAME_LABEL.test(label));
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'));
}

interface ParsedAddress extends HostPort {
  readonly bracketed: boolean;
}

/** Parses `HOST:PORT`, `[HOST]:PORT` or, with a default port, just the host; returns a reason on failure. */
function parseAddress(text: string, defaultPort?: number): ParsedAddress | string {
  const bracketed = text.startsWith('[');
  const match = bracketed ? /^\[([^\]]*)\](?::(.*))?$/.exec(text) : /^([^:]*)(?::([^:]*))?$/.exec(text);
  if (match === null) return bracketed ? 'unbalanced brackets' : 'IPv6 addresses go in brackets, like [::1]:25';
  const host = match[1] ?? '';
  const portText = match[2];
  if (!(isIPv4(host) || (bracketed && isIPv6(host)) || (host !== '' && isHostname(host)))) return `"${host}" is not a hostname or IP address`;
  if (portText === undefined) {
    return defaultPort === undefined ? 'no port' : { host, port: defaultPort, bracketed };
  }
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : 0;
  if (port < 1 || port > 65535) return `port not in 1-65535`;
  return { host, port, bracketed };
}

function string(value: unknown, expected: string, report: Report): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  report(`expected ${expected}, got ${describeValue(value)}`);
  return undefined;
}

export function boolean(value: unknown, report: Report): boolean {
  if (typeof value !== 'boolean') report(`expected true or false, got ${describeValue(value)}`);
  return value === true;
}

/** A whole number in [min, max]; durations are whole seconds or days in range. */
export function integer(min: number, max: number): (value: unknown, report: Report) => number {
  return (value, report) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      report(`expected ${min}-${max}, got ${describeValue(value)}`);
    }
    return value as number;
  };
}

export function oneOf<T extends string>(...choices: T[]): (value: unknown, report: Report) => T {
  const expected = `${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}`;
  return (value, report) => {
    if (!choices.includes(value as T)) report(`expected ${expected}, got ${describeValue(value)}`);
    return value as T;
  };
}

export function path(value: unknown, report: Report): string {
  return string(value, 'a file path', report) ?? '';
}

/** A fully qualified domain name, as lower-case ASCII (the form domains are compared in). */
export function domainName(value: unknown, report: Report): string {
  const domain = typeof value === 'string' ? normalizeDomain(value) : null;
  if (domain === null) report(`expected a fully qualified domain name like mail.example.org, got ${describeValue(value)}`);
  return domain ?? '';
}

/** outbound.listener_name: "" (derived from hostname) or a domain name. */
export function listenerName(value: unknown, report: Report): string {
  return value === '' ? '' : domainName(value, report);
}

/** A listening address `HOST:PORT` (IPv6 as `[::1]:25`); `loopbackOnly` says why others are refused. */
export function listenAddress(loopbackOnly?: string, expected = 'HOST:PORT'): (value: unknown, report: Report) => HostPort {
  return (value, report) => {
    const text = string(value, expected, report);
    const address = text === undefined ? undefined : parseAddress(text);
    if (typeof address === 'string') report(`expected ${expected}, got ${describeValue(value)} (${address})`);
    if (address === undefined || typeof address === 'string') return { host: '', port: 0 };
    if (loopbackOnly !== undefined && !isLoopback(address.host)) {
      report(`expected a loopback address (127.0.0.1, [::1] or localhost), got ${describeValue(value)}: ${loopbackOnly}`);
    }
    return { host: address.host, port: address.port };
  };
}

/** Why `unix:PATH` cannot be a socket path, or undefined when it can. */
function socketPathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'the socket path must be absolute';
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) return `the socket path is longer than ${MAX_SOCKET_PATH_BYTES} bytes, the limit of unix sockets`;
  if (path.includes('\0')) return 'the socket path contains a NUL';
  return undefined;
}

/**
 * `HOST:PORT` or `unix:/PATH` (a unix-domain socket, reachable only by whom its file mode lets in);
 * `loopbackOnly` says why TCP addresses beyond loopback are refused.
 */
export function endpointAddress(loopbackOnly?: string, expected = 'HOST:PORT or unix:/PATH'): (value: unknown, report: Report) => Endpoint {
  const address = listenAddress(loopbackOnly, expected);
  return (value, report) => {
    if (typeof value !== 'string' || !value.startsWith(UNIX_PREFIX)) return address(value, report);
    const path = value.slice(UNIX_PREFIX.length);
    const problem = socketPathProblem(path);
    if (problem !== undefined) report(`expected ${expected}, got ${describeValue(value)} (${problem})`);
    return { path };
  };
}

/** inbound.source_address: "" or an IP address (IPv6 without brackets). */
export function sourceAddress(value: unknown, report: Report): string {
  if (value === '' || (typeof value === 'string' && isIP(value) !== 0)) return value;
  report(`expected "" or an IP address like 127.0.0.25, got ${describeValue(value)}`);
  return '';
}

/** A file mode in octal, quoted (YAML reads an unquoted 0660 as the number 660). */
export function fileMode(value: unknown, report: Report): number {
  if (typeof value === 'string' && /^0?[0-7]{3}$/.test(value)) return Number.parseInt(value, 8);
  report(`expected a file mode in octal, quoted, like "0660", got ${describeValue(value)}`);
  return 0;
}

/** A group name or number, or "" for none. */
export function groupName(value: unknown, report: Report): string {
  if (typeof value === 'string' && /^([a-z_][a-z0-9_.-]{0,31}\$?|[0-9]{1,10})?$/i.test(value)) return value;
  report(`expected a group name or number, or "" for none, got ${describeValue(value)}`);
  return '';
}

/** A listening address or one of the special values, e.g. "systemd", which are returned as is. */
export function listenAddressOr<S extends string>(specials: S | readonly S[], loopbackOnly?: string): (value: unknown, report: Report) => HostPort | S {
  const list: readonly S[] = typeof specials === 'string' ? [specials] : specials;
  const quoted = list.map((special) => JSON.stringify(special));
  const address = listenAddress(
    loopbackOnly,
    `HOST:PORT${quoted
      .slice(0, -1)
      .map((text) => `, ${text}`)
      .join('')} or ${quoted.at(-1)}`,
  );
  return (value, report) => (list.includes(value as S) ? (value as S) : address(value, report));
}

/** An endpoint or the one special value, e.g. "systemd", which is returned as is. */
export function endpointAddressOr<S extends string>(special: S, loopbackOnly?: string): (value: unknown, report: Report) => Endpoint | S {
  const endpoint = endpointAddress(loopbackOnly, `HOST:PORT, unix:/PATH or ${JSON.stringify(special)}`);
  return (value, report) => (value === special ? special : endpoint(value, report));
}

/** DNS servers as `IP[:PORT]` (IPv6 with a port as `[::1]:53`), kept in the form node:dns accepts. */
export function resolverList(value: unknown, report: Report): string[] {
  if (!Array.isArray(value)) {
    report(`expected a list of IP[:PORT], got ${describeValue(value)}`);
    return [];
  }
  value.forEach((entry, index) => {
    if (typeof entry === 'string' && isIP(entry) !== 0) return;
    const address = typeof entry === 'string' ? parseAddress(entry, 53) : 'not a string';
    if (typeof address === 'string' || isIP(address.host) === 0) {
      report(`expected IP[:PORT], got ${describeValue(entry)}`, String(index));
    }
  });
  return value as string[];
}

/**
 * A validating DNS resolver as `IP[:PORT]` on loopback, or "" for none. Its AD bit is trusted as
 * DNSSEC validation only on loopback: elsewhere anyone on the path could set it (RFC 6698 4.1).
 */
export function validatingResolver(value: unknown, report: Report): HostPort | null {
  if (value === '') return null;
  const address = typeof value === 'string' ? parseAddress(value, 53) : 'not a string';
  if (typeof address === 'string' || isIP(address.host) === 0) {
    report(`expected "" or a loopback IP[:PORT] like 127.0.0.1:53, got ${describeValue(value)}${typeof address === 'string' ? ` (${address})` : ''}`);
    return null;
  }
  if (!isLoopback(address.host) || address.host === 'localhost') {
    report(
      `expected a loopback IP address (127.0.0.0/8 or [::1]), got ${describeValue(value)}: its AD bit is trusted only on loopback, where nobody on the path can set it`,
    );
    return null;
  }
  return { host: address.host, port: address.port };
}

/** Client addresses as IP or CIDR (`192.0.2.0/24`, `2001:db8::/32`); invalid entries are reported. */
export function addressRangeList(value: unknown, report: Report): string[] {
  if (!Array.isArray(value)) {
    report(`expected a list of IP addresses or CIDR ranges, got ${describeValue(value)}`);
    return [];
  }
  return value.filter((entry, index) => {
    const range = typeof entry === 'string' ? parseAddressRange(entry) : 'not a string';
    if (typeof range === 'string') report(`expected an IP address or CIDR range, got ${describeValue(entry)} (${range})`, String(index));
    return typeof range !== 'string';
  }) as string[];
}

/** A map from domain names (and "*" where allowed) to entries; invalid entries are reported and left out. */
function domainMap<T>(value: unknown, report: Report, expected: string, readEntry: (entry: unknown, report: Report) => T, allowStar: boolean): Map<string, T> {
  const map = new Map<string, T>();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    report(`expected a map of domain to ${expected}, got ${describeValue(value)}`);
    return map;
  }
  for (const [domain, entry] of Object.entries(value)) {
    const key = allowStar && domain === '*' ? domain : normalizeDomain(domain);
    if (key === null) {
      report(`expected a domain name${allowStar ? ' or "*"' : ''} as key, got ${describeValue(domain)}`, domain);
      continue;
    }
    let valid = true;
    const result = readEntry(entry, (reason) => {
      valid = false;
      report(reason, domain);
    });
    if (valid) map.set(key, result);
  }
  return map;
}

/** Static next hops: domain (or "*" for a smarthost) to `HOST:PORT` or `[HOST]:PORT`, as routing.ts reads them. */
export function routeMap(value: unknown, report: Report): Map<string, string> {
  return domainMap(value, report, 'HOST[:PORT] or [HOST][:PORT]', route, true);
}

function route(entry: unknown, report: Report): string {
  if (typeof entry !== 'string') {
    report(`expected HOST[:PORT] or [HOST][:PORT], got ${describeValue(entry)}`);
    return '';
  }
  try {
    parseRoute(entry);
  } catch (error) {
    if (!(error instanceof RouteError)) throw error;
    report(`expected HOST[:PORT] or [HOST][:PORT] (an IP address in brackets), got ${describeValue(entry)}: ${error.reason}`);
  }
  return entry.trim();
}

/** Local policies: domain to enforce, testing or none. */
export function policyMap(value: unknown, report: Report): Map<string, PolicyMode> {
  return domainMap(value, report, 'enforce, testing or none', oneOf<PolicyMode>('enforce', 'testing', 'none'), false);
}

/** A master.cf service name: letters, digits, '-', '_' and '.'. */
export function serviceName(value: unknown, report: Report): string {
  const text = string(value, 'a master.cf service name', report);
  if (text !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(text))
    report(`expected a master.cf service name (letters, digits, "-", "_", "."), got ${describeValue(value)}`);
  return text ?? '';
}

/** Most worker processes the setting accepts. */
export const MAX_WORKERS = 64;

/** `workers`: "auto" or a whole number of processes. */
export function workerCount(value: unknown, report: Report): 'auto' | number {
  if (value === 'auto' || (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_WORKERS)) return value;
  report(`expected "auto" or 1-${MAX_WORKERS}, got ${describeValue(value)}`);
  return 'auto';
}
