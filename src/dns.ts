/**
 * The resolvers both sides ask, and how a failed DNS query is read: "the name does not exist" and
 * "no records of this type" are answers; everything else (SERVFAIL, timeout, refused, unreachable
 * server) only means "ask again later".
 */
import { errorMessage } from './error-message.js';

/** The subset of node:dns/promises Resolver that routing and discovery use (injectable in tests). */
export interface DnsResolver {
  resolveMx(name: string): Promise<{ exchange: string; priority: number }[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  resolveTxt(name: string): Promise<string[][]>;
}

/** The subset the inbound side uses to name its clients. */
export type ClientNameResolver = Pick<DnsResolver, 'resolve4' | 'resolve6'> & { reverse(address: string): Promise<string[]> };

export type DnsFailure = { kind: 'nxdomain'; detail: string } | { kind: 'nodata'; detail: string } | { kind: 'temporary'; detail: string };

/** Classifies an error thrown by a resolver query (node:dns error codes). */
export function dnsFailure(query: string, error: unknown): DnsFailure {
  const code = (error as { code?: unknown } | null)?.code;
  const detail = `${query}: ${typeof code === 'string' ? code : errorMessage(error)}`;
  if (code === 'ENOTFOUND') return { kind: 'nxdomain', detail };
  if (code === 'ENODATA') return { kind: 'nodata', detail };
  return { kind: 'temporary', detail };
}
