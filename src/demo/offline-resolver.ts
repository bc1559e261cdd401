/**
 * A resolver for the demo, which runs without a DNS server: every name is unknown. Next hops come
 * from static routes, and "no _pony record" makes the sender policy opportunistic: XPONY whenever
 * the peer offers it, and its key pinned after the first delivery.
 */
import type { DnsResolver } from '../dns.js';

function notFound(type: string): (name: string) => Promise<never> {
  return (name) => Promise.reject(Object.assign(new Error(`${type} ${name}: ENOTFOUND (the demo has no DNS)`), { code: 'ENOTFOUND' }));
}

export const OFFLINE_RESOLVER: DnsResolver = {
  resolveMx: notFound('MX'),
  resolve4: notFound('A'),
  resolve6: notFound('AAAA'),
  resolveTxt: notFound('TXT'),
};
