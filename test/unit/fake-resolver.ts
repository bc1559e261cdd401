import type { ClientNameResolver, DnsResolver } from '../../src/dns.js';

/** A DNS error as node:dns throws it. */
export function dnsError(code: string, query = 'query'): Error {
  return Object.assign(new Error(`${query} ${code}`), { code });
}

type Answer<T> = T | Error;

/**
 * An in-memory resolver for cases dnsmasq cannot produce (SERVFAIL, timeouts, null MX, one
 * address family failing). Unknown names are NXDOMAIN; a known name without the type is NODATA.
 */
export class FakeResolver implements DnsResolver, ClientNameResolver {
  readonly mx = new Map<string, Answer<{ exchange: string; priority: number }[]>>();
  readonly a = new Map<string, Answer<string[]>>();
  readonly aaaa = new Map<string, Answer<string[]>>();
  readonly txt = new Map<string, Answer<string[][]>>();
  /** PTR names by address, as written (an unknown address is NXDOMAIN). */
  readonly ptr = new Map<string, Answer<string[]>>();
  readonly queries: string[] = [];

  resolveMx(name: string) {
    return this.answer('MX', name, this.mx);
  }
  resolve4(name: string) {
    return this.answer('A', name, this.a);
  }
  resolve6(name: string) {
    return this.answer('AAAA', name, this.aaaa);
  }
  resolveTxt(name: string) {
    return this.answer('TXT', name, this.txt);
  }

  reverse(address: string) {
    return this.answer('PTR', address, this.ptr);
  }

  private exists(name: string): boolean {
    return [this.mx, this.a, this.aaaa, this.txt].some((table) => table.has(name));
  }

  private answer<T>(type: string, name: string, table: Map<string, Answer<T>>): Promise<T> {
    this.queries.push(`${type} ${name}`);
    const value = table.get(name);
    if (value instanceof Error) return Promise.reject(value);
    if (value !== undefined) return Promise.resolve(value);
    return Promise.reject(dnsError(this.exists(name) ? 'ENODATA' : 'ENOTFOUND', `${type} ${name}`));
  }
}
