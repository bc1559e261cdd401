import { isIP, isIPv4, isIPv6 } from 'node:net';
import { normalizeDomain } from '../crypto/domain-name.js';
import { parseRoute, RouteError } from '../outbound/routing.js';
import { parseAddressRange } from '../protocol/client-limiter.js';
import { DEFAULT_CLIENT_LIMITS, HANDSHAKE_TIMEOUT_MS, MAX_PENDING_HANDSHAKES } from '../protocol/limits.js';

/**
 * The configuration file's schema: one table of every setting with its type, range, default and a
 * one-line description. Validation (config.ts) and the commented default configuration are both
 * generated from it, so the documentation cannot drift from what is accepted.
 */

/** Reports a problem with a value: `reason` reads "expected ..., got ...", `at` names a map entry. */
export type Report = (reason: string, at?: string) => void;

/** One setting. `default` is written in the file's own form and goes through `read` like user input. */
export interface Field<T> {
  readonly description: string;
  /** Absent for a required setting. */
  readonly default?: unknown;
  /** The value shown (commented out) in the default configuration when there is no default. */
  readonly example?: string;
  /** Whether the value is a filesystem path, resolved against the configuration file's folder. */
  readonly path?: boolean;
  /** Converts a YAML value; calls `report` and returns anything when it is invalid. */
  readonly read: (value: unknown, report: Report) => T;
}

/** A map of settings. An optional section without defaults is either absent or complete. */
export interface Section {
  readonly description: string;
  readonly optional?: boolean;
  readonly fields: Readonly<Record<string, Field<unknown> | Section>>;
}

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
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

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
function listenerName(value: unknown, report: Report): string {
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
function sourceAddress(value: unknown, report: Report): string {
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
  const address = listenAddress(loopbackOnly, `HOST:PORT${quoted.slice(0, -1).map((text) => `, ${text}`).join('')} or ${quoted.at(-1)}`);
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
    report(`expected a loopback IP address (127.0.0.0/8 or [::1]), got ${describeValue(value)}: its AD bit is trusted only on loopback, where nobody on the path can set it`);
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
function domainMap<T>(
  value: unknown,
  report: Report,
  expected: string,
  readEntry: (entry: unknown, report: Report) => T,
  allowStar: boolean,
): Map<string, T> {
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
function serviceName(value: unknown, report: Report): string {
  const text = string(value, 'a master.cf service name', report);
  if (text !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(text)) report(`expected a master.cf service name (letters, digits, "-", "_", "."), got ${describeValue(value)}`);
  return text ?? '';
}

/** Most worker processes the setting accepts. */
export const MAX_WORKERS = 64;

/** `workers`: "auto" or a whole number of processes. */
function workerCount(value: unknown, report: Report): 'auto' | number {
  if (value === 'auto' || (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_WORKERS)) return value;
  report(`expected "auto" or 1-${MAX_WORKERS}, got ${describeValue(value)}`);
  return 'auto';
}

const OPEN_RELAY = 'anyone who can reach it could relay mail through this host';
/** Why the transport lookup listens on loopback only (a passed socket is checked with the same words). */
export const LOOKUP_REVEALS = 'the answers reveal which domains this host sends mail to';

export const SCHEMA = {
  description: 'blackpony configuration',
  fields: {
    hostname: {
      description: "This host's fully qualified domain name, used in greetings, EHLO and trace headers.",
      example: 'mail.example.org',
      read: domainName,
    },
    keys: {
      description: 'The key file made by `blackpony keygen` (mode 0600). Overridable with --keys.',
      example: '/etc/blackpony/keys',
      path: true,
      read: path,
    },
    state_dir: {
      description: 'Where state lives (pinned peer keys). Overridable with --state-dir.',
      default: '/var/lib/blackpony',
      path: true,
      read: path,
    },
    workers: {
      description:
        'Worker processes serving the listeners: "auto" (one per core, at most 4) or 1-64. With more than one, a primary process holds the sockets and the metrics endpoint, hands each connection to the next worker and restarts one that dies; inbound.max_clients and inbound.limits count in each worker; outbound.listen or outbound.transport_lookup.listen "systemd" needs 1 for now. 1 runs everything in one process.',
      default: 'auto',
      read: workerCount,
    },
    log: {
      description: 'Logging: JSON lines on stderr.',
      fields: {
        level: {
          description: 'Least severe level written: trace, debug, info, warn, error or fatal.',
          default: 'info',
          read: oneOf<LogLevel>('trace', 'debug', 'info', 'warn', 'error', 'fatal'),
        },
        pretty: { description: 'Readable lines instead of JSON.', default: false, read: boolean },
      },
    },
    inbound: {
      description: 'Inbound: receives mail from the Internet on port 25 and hands it to Postfix.',
      fields: {
        enabled: { description: 'Whether the inbound side runs.', default: true, read: boolean },
        listen: {
          description: 'HOST:PORT to listen on, or "systemd" for the sockets systemd passes (blackpony.socket), all but those named "outbound" and "transport-lookup" (outbound.listen, outbound.transport_lookup.listen).',
          default: '0.0.0.0:25',
          read: listenAddressOr('systemd'),
        },
        postfix: {
          description: "Postfix's smtpd that receives the mail: HOST:PORT, or unix:/PATH for a unix-socket smtpd (deploy/postfix/master.cf).",
          default: '127.0.0.1:10025',
          read: endpointAddress(),
        },
        client_identity: {
          description:
            "How Postfix learns the real client's address: xclient (XCLIENT command) or proxy (PROXY protocol); none: for an MTA with neither (sendmail), which then judges source_address instead (deploy/README.md, \"Beside sendmail\").",
          default: 'xclient',
          read: oneOf('xclient', 'proxy', 'none'),
        },
        source_address: {
          description: 'The local IP address blackpony connects to postfix from; "": the system\'s choice. Required with client_identity none, and not 127.0.0.1 or ::1 then, which sendmail trusts to relay anywhere.',
          default: '',
          read: sourceAddress,
        },
        client_name_lookup: {
          description: "With xclient: tell Postfix each client's host name (PTR, confirmed by A/AAAA) as its smtpd_peername_lookup would; false: all are unknown.",
          default: true,
          read: boolean,
        },
        resolver: {
          description: 'DNS servers for client_name_lookup as IP[:PORT]; empty uses the system resolver.',
          default: [],
          read: resolverList,
        },
        max_clients: { description: 'Most simultaneous client connections.', default: 1000, read: integer(1, 100_000) },
        limits: {
          description: "Per client address, like Postfix's anvil; a client over a limit gets a 4xx reply (docs/PROTOCOL.md section 6).",
          fields: {
            connections_per_client: {
              description: "Simultaneous connections from one address (Postfix's smtpd_client_connection_count_limit); 0: no limit.",
              default: DEFAULT_CLIENT_LIMITS.connectionsPerClient,
              read: integer(0, 100_000),
            },
            connection_rate_per_client: {
              description: "Connections from one address per minute, refused ones included (smtpd_client_connection_rate_limit); 0: no limit.",
              default: DEFAULT_CLIENT_LIMITS.connectionRatePerClient,
              read: integer(0, 1_000_000),
            },
            pending_handshakes_per_client: {
              description: `XPONY handshakes of one address in progress at once (all clients together: ${MAX_PENDING_HANDSHAKES}).`,
              default: DEFAULT_CLIENT_LIMITS.pendingHandshakesPerClient,
              read: integer(1, MAX_PENDING_HANDSHAKES),
            },
            xpony_attempts_per_connection: {
              description: 'XPONY handshakes one connection may start; later ones are refused before any key agreement.',
              default: DEFAULT_CLIENT_LIMITS.xponyAttemptsPerConnection,
              read: integer(1, 100),
            },
            handshake_message3_seconds: {
              description: `Seconds a client has to answer the XPONY challenge with its Noise message 3 (the whole handshake: ${HANDSHAKE_TIMEOUT_MS / 1000}).`,
              default: DEFAULT_CLIENT_LIMITS.message3TimeoutMs / 1000,
              read: integer(1, HANDSHAKE_TIMEOUT_MS / 1000),
            },
            ipv6_prefix_length: {
              description: "IPv6 clients in one network of this many bits count as one, as one host often has a whole /64 (Postfix 3.8's smtpd_client_ipv6_prefix_length); 128: each address alone.",
              default: DEFAULT_CLIENT_LIMITS.ipv6PrefixLength,
              read: integer(16, 128),
            },
            exemptions: {
              description: "Client addresses (IP or CIDR) not counted against the per-address limits above, as Postfix exempts mynetworks.",
              default: [...DEFAULT_CLIENT_LIMITS.exemptions],
              read: addressRangeList,
            },
          },
        },
        tls: {
          description: 'Certificate and key (PEM) offered with STARTTLS to legacy clients. Optional: set both or neither.',
          optional: true,
          fields: {
            cert: { description: 'Certificate chain file.', example: '/etc/blackpony/tls/cert.pem', path: true, read: path },
            key: { description: 'Private key file.', example: '/etc/blackpony/tls/key.pem', path: true, read: path },
          },
        },
        accepted_messages: {
          description:
            "Messages accepted through tunnels with an XPONY-ID, remembered in state_dir/accepted-messages/ so that a peer's retry after a lost reply gets 250 without a second copy (docs/PROTOCOL.md section 5).",
          fields: {
            days: {
              description: "How long each is remembered, in days: as long as peers retry (Postfix's maximal_queue_lifetime, 5 days); 0: not at all, and XPONY-ID is not offered.",
              default: 5,
              read: integer(0, 60),
            },
            max_entries: { description: 'Most messages remembered at once (about 200 bytes of memory each); the oldest are forgotten first.', default: 100_000, read: integer(1, 10_000_000) },
          },
        },
        timeouts: {
          description: 'Timeouts in whole seconds.',
          fields: {
            idle_seconds: { description: 'Idle client connection.', default: 300, read: integer(1, 86_400) },
            postfix_seconds: { description: 'Waiting for a reply from Postfix.', default: 120, read: integer(1, 3600) },
          },
        },
      },
    },
    outbound: {
      description: 'Outbound: receives mail from Postfix and delivers it to other hosts.',
      fields: {
        enabled: { description: 'Whether the outbound side runs.', default: true, read: boolean },
        listen: {
          description:
            'Where Postfix relays to: HOST:PORT, loopback only as it relays to anywhere, or unix:/PATH, a socket only listen_mode and listen_group let in; or "systemd" for the socket systemd passes named "outbound" (systemd/blackpony-outbound.socket), refused unless it is loopback or a unix socket other users cannot connect to.',
          default: '127.0.0.1:10587',
          read: endpointAddressOr('systemd', OPEN_RELAY),
        },
        listen_mode: {
          description: 'With listen unix:/PATH: the socket file\'s mode, in octal ("0660": its owner and group may connect).',
          default: '0660',
          read: fileMode,
        },
        listen_group: {
          description: 'With listen unix:/PATH: the socket file\'s group, e.g. postfix; "" leaves it as created (blackpony\'s group, or its folder\'s if setgid).',
          default: '',
          read: groupName,
        },
        listener_name: {
          description:
            "The name the outbound listener greets Postfix (or sendmail) with and gives in its EHLO reply; \"\": blackpony.<hostname>. Not the host's own name, which a smart-host client takes for a mail loop (sendmail's 553 5.3.5).",
          default: '',
          read: listenerName,
        },
        protocol: {
          description: 'What Postfix speaks to it: lmtp (one reply per recipient) or smtp (see deploy/postfix/outbound-smtp.cf).',
          default: 'lmtp',
          read: oneOf('lmtp', 'smtp'),
        },
        resolver: {
          description: 'DNS servers as IP[:PORT] (IPv6 with a port as [::1]:53); empty uses the system resolver.',
          default: [],
          read: resolverList,
        },
        validating_resolver: {
          description:
            'A DNSSEC-validating resolver on loopback (IP[:PORT], e.g. a local unbound) whose AD bit is trusted: a validated _pony record then ranks beside HTTPS, and DANE domains (validated TLSA) stay with Postfix; "": none, every record counts as unsigned and any TLSA record the resolver names keeps a domain with Postfix.',
          default: '',
          read: validatingResolver,
        },
        routes: {
          description: 'Static next hops: domain to HOST[:PORT] or [HOST][:PORT] (no MX lookup); "*" is a smarthost.',
          default: {},
          read: routeMap,
        },
        policies: {
          description: "Local policy per domain, overriding DNS: enforce, testing or none.",
          default: {},
          read: policyMap,
        },
        tunnel_idle_seconds: { description: 'How long an idle session (tunnel or not) to a peer is kept for the next message, in seconds; 0: no reuse.', default: 60, read: integer(0, 3600) },
        mta_sts: { description: 'Honour MTA-STS policies of legacy hosts.', default: true, read: boolean },
        pin_max_age_days: {
          description: "How long a peer's key stays pinned after its last use when its _pony record gives no max-age, in days.",
          default: 30,
          read: integer(1, 3650),
        },
        mx_port: { description: 'Port of next hops found through MX records: 25 (other values for test networks only).', default: 25, read: integer(1, 65535) },
        connect_timeout_seconds: { description: 'Connecting to a next hop, in seconds.', default: 30, read: integer(1, 600) },
        command_timeout_seconds: {
          description: "Waiting for each reply of a next hop, in seconds (RFC 5321 4.5.3.2 asks for minutes; Postfix's smtp_data_done_timeout is 600).",
          default: 300,
          read: integer(1, 3600),
        },
        transport_lookup: {
          description: "Postfix's transport_maps lookup (socketmap): which recipient domains Postfix hands to blackpony; the rest stay with Postfix's own smtp.",
          fields: {
            listen: {
              description:
                'HOST:PORT of the socketmap service (loopback only, e.g. 127.0.0.1:10588), "systemd" for the socket systemd passes named "transport-lookup" (systemd/blackpony-lookup.socket), or "" for none. Postfix: transport_maps = socketmap:inet:HOST:PORT:transport',
              default: '',
              read: listenAddressOr(['', 'systemd'] as const, LOOKUP_REVEALS),
            },
            transport: {
              description: "The master.cf service that delivers to blackpony (deploy/postfix/master.cf); answered with outbound.listen as its next hop.",
              default: 'blackpony',
              read: serviceName,
            },
            cache_seconds: { description: 'How long an answer is reused for a domain, in seconds (a temporary failure: at most 10).', default: 60, read: integer(0, 86_400) },
            timeout_seconds: { description: 'A domain not decided within this is answered TEMP (Postfix defers the mail and asks again).', default: 10, read: integer(1, 100) },
            learn_from_ehlo: {
              description: "Probe the MX hosts of domains routed to Postfix for XPONY in EHLO (connect, EHLO, QUIT), and route them to blackpony once seen.",
              default: true,
              read: boolean,
            },
            sighting_days: { description: 'How long XPONY seen at a domain keeps it routed to blackpony, in days (renewed by each sighting).', default: 7, read: integer(1, 365) },
            reprobe_hours: { description: 'A domain probed without finding XPONY is probed again after this many hours.', default: 24, read: integer(1, 8760) },
          },
        },
      },
    },
    metrics: {
      description: 'Prometheus metrics over HTTP.',
      fields: {
        listen: {
          description: 'HOST:PORT to serve /metrics on (loopback only), or "" for none.',
          default: '127.0.0.1:9425',
          read: listenAddressOr('', 'metrics reveal who this host exchanges mail with'),
        },
      },
    },
  },
} as const satisfies Section;
