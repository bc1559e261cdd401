/**
 * Next-hop selection for a destination domain (RFC 5321 section 5.1, RFC 7505 null MX), with a
 * static route table in Postfix's transport syntax.
 *
 * - MX records, lowest preference first; equal preferences in random order.
 * - No MX (the name exists, no MX records): the domain itself, as an implicit MX of preference 0.
 * - A single MX whose exchange is "." (null MX): the domain accepts no mail, a permanent failure.
 * - An MX host without addresses is skipped; when no host has any, the failure is temporary if any
 *   lookup failed temporarily, permanent otherwise.
 * - The domain does not exist: permanent. SERVFAIL, timeout and the like: temporary.
 *
 * Routes map a domain, or "*" for every domain (a smarthost), to "HOST:PORT" (HOST's MX records,
 * then its addresses) or "[HOST]:PORT" (HOST's addresses only, no MX lookup, as in Postfix);
 * ":PORT" may be left out (25). HOST may be an IP address ("[192.0.2.1]:25", "[::1]:2525").
 */
import { isIP } from 'node:net';
import { dnsFailure, type DnsFailure, type DnsResolver } from '../dns.js';

export const SMTP_PORT = 25;

export interface NextHop {
  host: string;
  port: number;
  /** IPv4 and IPv6 addresses, IPv4 first. */
  addresses: string[];
  preference: number;
}

export type RoutingResult =
  { kind: 'hops'; hops: NextHop[]; via: 'mx' | 'implicit-mx' | 'route' } | { kind: 'permanent'; reason: string } | { kind: 'temporary'; reason: string };

export interface RoutingOptions {
  resolver: DnsResolver;
  /** domain (or "*") -> "HOST:PORT" or "[HOST]:PORT". */
  routes?: Readonly<Record<string, string>>;
  /** Port of hosts found through MX or implicit MX (default 25; tests use a high port). */
  mxPort?: number;
  /** Source of randomness in [0, 1) for ordering equal preferences (default Math.random). */
  random?: () => number;
}

export class RouteError extends Error {
  override readonly name = 'RouteError';
  constructor(
    readonly route: string,
    readonly reason: string,
  ) {
    super(`route ${JSON.stringify(route)}: ${reason}`);
  }
}

export interface Route {
  host: string;
  port: number;
  /** Brackets: use the host's addresses, never its MX records. */
  skipMx: boolean;
}

const HOST_NAME = /^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*$/;
const ROUTE = /^(?:\[([^\]]+)\]|([^[\]:]+))(?::(\d{1,5}))?$/;

/** Parses "HOST", "HOST:PORT", "[HOST]" or "[HOST]:PORT"; throws RouteError. */
export function parseRoute(text: string): Route {
  const match = ROUTE.exec(text.trim());
  if (match === null) throw new RouteError(text, 'expected HOST:PORT or [HOST]:PORT');
  const port = match[3] === undefined ? SMTP_PORT : Number(match[3]);
  if (port < 1 || port > 65535) throw new RouteError(text, `port ${port} out of range 1-65535`);
  const bracketed = match[1];
  const host = normalizeName(bracketed ?? match[2]!);
  if (isIP(host) !== 0) {
    if (bracketed === undefined) throw new RouteError(text, 'an IP address needs brackets');
  } else if (!HOST_NAME.test(host)) {
    throw new RouteError(text, `${JSON.stringify(host)} is not a host name or IP address`);
  }
  return { host, port, skipMx: bracketed !== undefined };
}

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** The route for `domain`: its own entry, else "*", else none. */
export function findRoute(domain: string, routes: Readonly<Record<string, string>> = {}): Route | null {
  const entry = Object.entries(routes).find(([key]) => normalizeName(key) === domain) ?? Object.entries(routes).find(([key]) => key === '*');
  return entry === undefined ? null : parseRoute(entry[1]);
}

/** Ordered next hops for mail to `domain`. Never throws for DNS trouble; a malformed route throws RouteError. */
export async function resolveNextHops(domain: string, options: RoutingOptions): Promise<RoutingResult> {
  const name = normalizeName(domain);
  const route = findRoute(name, options.routes);
  if (route !== null) {
    if (route.skipMx) {
      const hop = await addressHop(options.resolver, route.host, route.port, 0);
      return 'failure' in hop ? noAddressResult([hop.failure], route.host) : { kind: 'hops', hops: [hop], via: 'route' };
    }
    const routed = await mxHops(route.host, { ...options, mxPort: route.port });
    return routed.kind === 'hops' ? { ...routed, via: 'route' } : routed;
  }
  return mxHops(name, options);
}

async function mxHops(name: string, options: RoutingOptions): Promise<RoutingResult> {
  const port = options.mxPort ?? SMTP_PORT;
  let records: { exchange: string; priority: number }[];
  try {
    records = await options.resolver.resolveMx(name);
  } catch (error) {
    const failure = dnsFailure(`MX ${name}`, error);
    if (failure.kind === 'nxdomain') return { kind: 'permanent', reason: `domain ${name} does not exist (${failure.detail})` };
    if (failure.kind === 'temporary') return { kind: 'temporary', reason: `MX lookup failed (${failure.detail})` };
    records = [];
  }
  if (records.length === 0) {
    const hop = await addressHop(options.resolver, name, port, 0);
    return 'failure' in hop ? noAddressResult([hop.failure], name) : { kind: 'hops', hops: [hop], via: 'implicit-mx' };
  }
  if (records.length === 1 && isNullExchange(records[0]!.exchange)) {
    return { kind: 'permanent', reason: `domain ${name} accepts no mail (null MX, RFC 7505)` };
  }
  const ordered = orderByPreference(
    records.filter((r) => !isNullExchange(r.exchange)),
    options.random ?? Math.random,
  );
  const looked = await Promise.all(ordered.map((r) => addressHop(options.resolver, normalizeName(r.exchange), port, r.priority)));
  const hops = looked.filter((hop): hop is NextHop => !('failure' in hop));
  if (hops.length > 0) return { kind: 'hops', hops, via: 'mx' };
  return noAddressResult(
    looked.flatMap((hop) => ('failure' in hop ? [hop.failure] : [])),
    `the MX hosts of ${name}`,
  );
}

function isNullExchange(exchange: string): boolean {
  return exchange === '' || exchange === '.';
}

/** Sorted by preference; a Fisher-Yates shuffle first makes the order within a preference random. */
function orderByPreference<T extends { priority: number }>(records: T[], random: () => number): T[] {
  const shuffled = [...records];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  return shuffled.sort((a, b) => a.priority - b.priority);
}

function noAddressResult(failures: DnsFailure[], what: string): RoutingResult {
  const details = failures.map((f) => f.detail).join('; ');
  return failures.some((f) => f.kind === 'temporary')
    ? { kind: 'temporary', reason: `no address for ${what} yet (${details})` }
    : { kind: 'permanent', reason: `no address for ${what} (${details})` };
}

/** The host's A and AAAA addresses; one family failing temporarily does not hide the other. */
async function addressHop(resolver: DnsResolver, host: string, port: number, preference: number): Promise<NextHop | { failure: DnsFailure }> {
  if (isIP(host) !== 0) return { host, port, addresses: [host], preference };
  const [v4, v6] = await Promise.all([
    resolver.resolve4(host).then(
      (a) => ({ addresses: a }),
      (e: unknown) => ({ failure: dnsFailure(`A ${host}`, e) }),
    ),
    resolver.resolve6(host).then(
      (a) => ({ addresses: a }),
      (e: unknown) => ({ failure: dnsFailure(`AAAA ${host}`, e) }),
    ),
  ]);
  const addresses = [...('addresses' in v4 ? v4.addresses : []), ...('addresses' in v6 ? v6.addresses : [])];
  if (addresses.length > 0) return { host, port, addresses, preference };
  const failures = [v4, v6].flatMap((r) => ('failure' in r ? [r.failure] : []));
  const failure = failures.find((f) => f.kind === 'temporary') ??
    failures.find((f) => f.kind === 'nxdomain') ??
    failures[0] ?? { kind: 'nodata', detail: `A/AAAA ${host}: no addresses` };
  return { failure };
}
