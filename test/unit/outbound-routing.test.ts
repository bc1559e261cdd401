import { describe, expect, it } from 'vitest';
import { parseRoute, resolveNextHops, RouteError, type RoutingResult } from '../../src/outbound/routing.js';
import { dnsError, FakeResolver } from './fake-resolver.js';

function hops(result: RoutingResult): { host: string; port: number; addresses: string[]; preference: number }[] {
  if (result.kind !== 'hops') throw new Error(`expected hops, got ${JSON.stringify(result)}`);
  return result.hops;
}

function hostNames(result: RoutingResult): string[] {
  return hops(result).map((hop) => hop.host);
}

/** A deterministic random source from a list of values. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

function exampleResolver(): FakeResolver {
  const dns = new FakeResolver();
  dns.mx.set('d.test', [
    { exchange: 'mx20.d.test', priority: 20 },
    { exchange: 'mx10a.d.test', priority: 10 },
    { exchange: 'mx10b.d.test', priority: 10 },
    { exchange: 'mx5.d.test', priority: 5 },
  ]);
  for (const host of ['mx20.d.test', 'mx10a.d.test', 'mx10b.d.test', 'mx5.d.test']) dns.a.set(host, ['192.0.2.1']);
  dns.aaaa.set('mx5.d.test', ['2001:db8::5']);
  return dns;
}

describe('resolveNextHops: MX', () => {
  it('orders by preference, lowest first, with IPv4 and IPv6 addresses', async () => {
    const result = await resolveNextHops('d.test', { resolver: exampleResolver(), random: sequence(0) });
    expect(result.kind === 'hops' && result.via).toBe('mx');
    const list = hops(result);
    expect(list.map((h) => h.preference)).toEqual([5, 10, 10, 20]);
    expect(list[0]).toEqual({ host: 'mx5.d.test', port: 25, addresses: ['192.0.2.1', '2001:db8::5'], preference: 5 });
    expect(list[3]!.host).toBe('mx20.d.test');
  });

  it('randomizes hosts of equal preference, and only those', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 64 && seen.size < 2; i++) {
      const names = hostNames(await resolveNextHops('d.test', { resolver: exampleResolver() }));
      expect([names[0], names[3]]).toEqual(['mx5.d.test', 'mx20.d.test']);
      seen.add(names.slice(1, 3).join(' '));
    }
    expect(seen).toEqual(new Set(['mx10a.d.test mx10b.d.test', 'mx10b.d.test mx10a.d.test']));
  });

  it('orders equal preferences by the random source given', async () => {
    const first = hostNames(await resolveNextHops('d.test', { resolver: exampleResolver(), random: sequence(0.1, 0.7, 0.3) }));
    const again = hostNames(await resolveNextHops('d.test', { resolver: exampleResolver(), random: sequence(0.1, 0.7, 0.3) }));
    expect(again).toEqual(first);
  });

  it('uses mxPort for MX hosts', async () => {
    expect(hops(await resolveNextHops('d.test', { resolver: exampleResolver(), mxPort: 2525 })).every((h) => h.port === 2525)).toBe(true);
  });

  it('skips an MX host without addresses, and one whose lookup fails', async () => {
    const dns = exampleResolver();
    dns.a.delete('mx5.d.test');
    dns.aaaa.delete('mx5.d.test'); // NXDOMAIN now
    dns.a.set('mx20.d.test', dnsError('ESERVFAIL'));
    expect(hostNames(await resolveNextHops('d.test', { resolver: dns })).sort()).toEqual(['mx10a.d.test', 'mx10b.d.test']);
  });

  it('keeps a host when one address family fails and the other answers', async () => {
    const dns = exampleResolver();
    dns.a.set('mx5.d.test', dnsError('ETIMEOUT'));
    expect(hops(await resolveNextHops('d.test', { resolver: dns }))[0]).toMatchObject({ host: 'mx5.d.test', addresses: ['2001:db8::5'] });
  });

  it('fails temporarily when no MX host has an address and a lookup failed temporarily', async () => {
    const dns = new FakeResolver();
    dns.mx.set('d.test', [
      { exchange: 'gone.d.test', priority: 10 },
      { exchange: 'slow.d.test', priority: 20 },
    ]);
    dns.a.set('slow.d.test', dnsError('ETIMEOUT'));
    dns.aaaa.set('slow.d.test', dnsError('ETIMEOUT'));
    const result = await resolveNextHops('d.test', { resolver: dns });
    expect(result.kind).toBe('temporary');
    expect(result.kind !== 'hops' && result.reason).toMatch(/ETIMEOUT/);
  });

  it('fails permanently when no MX host exists', async () => {
    const dns = new FakeResolver();
    dns.mx.set('d.test', [{ exchange: 'gone.d.test', priority: 10 }]);
    expect((await resolveNextHops('d.test', { resolver: dns })).kind).toBe('permanent');
  });

  it('lower-cases names and ignores a trailing dot', async () => {
    const result = await resolveNextHops('D.Test.', { resolver: exampleResolver() });
    expect(hops(result)).toHaveLength(4);
  });
});

describe('resolveNextHops: implicit MX, null MX, failures', () => {
  it("falls back to the domain's own addresses when it has no MX (implicit MX, preference 0)", async () => {
    const dns = new FakeResolver();
    dns.a.set('plain.test', ['192.0.2.7']);
    dns.aaaa.set('plain.test', ['2001:db8::7']);
    const result = await resolveNextHops('plain.test', { resolver: dns, mxPort: 2600 });
    expect(result).toEqual({
      kind: 'hops',
      via: 'implicit-mx',
      hops: [{ host: 'plain.test', port: 2600, addresses: ['192.0.2.7', '2001:db8::7'], preference: 0 }],
    });
  });

  it('treats an empty MX answer as no MX', async () => {
    const dns = new FakeResolver();
    dns.mx.set('plain.test', []);
    dns.a.set('plain.test', ['192.0.2.7']);
    expect(hostNames(await resolveNextHops('plain.test', { resolver: dns }))).toEqual(['plain.test']);
  });

  it('fails permanently on a null MX (RFC 7505), without looking up addresses', async () => {
    for (const exchange of ['', '.']) {
      const dns = new FakeResolver();
      dns.mx.set('nomail.test', [{ exchange, priority: 0 }]);
      dns.a.set('nomail.test', ['192.0.2.9']);
      const result = await resolveNextHops('nomail.test', { resolver: dns });
      expect(result.kind).toBe('permanent');
      expect(result.kind !== 'hops' && result.reason).toMatch(/null MX/);
      expect(dns.queries).toEqual(['MX nomail.test']);
    }
  });

  it('ignores a "." MX mixed with real ones', async () => {
    const dns = exampleResolver();
    dns.mx.set('d.test', [
      { exchange: '', priority: 0 },
      { exchange: 'mx5.d.test', priority: 5 },
    ]);
    expect(hostNames(await resolveNextHops('d.test', { resolver: dns }))).toEqual(['mx5.d.test']);
  });

  it('fails permanently for a domain that does not exist (NXDOMAIN)', async () => {
    const result = await resolveNextHops('nowhere.test', { resolver: new FakeResolver() });
    expect(result.kind).toBe('permanent');
    expect(result.kind !== 'hops' && result.reason).toMatch(/does not exist.*ENOTFOUND/);
  });

  it('fails permanently for a domain with neither MX nor address', async () => {
    const dns = new FakeResolver();
    dns.txt.set('textonly.test', [['hello']]);
    expect((await resolveNextHops('textonly.test', { resolver: dns })).kind).toBe('permanent');
  });

  for (const code of ['ESERVFAIL', 'ETIMEOUT', 'ECONNREFUSED', 'EREFUSED']) {
    it(`fails temporarily when the MX lookup fails with ${code}`, async () => {
      const dns = exampleResolver();
      dns.mx.set('d.test', dnsError(code));
      const result = await resolveNextHops('d.test', { resolver: dns });
      expect(result).toEqual({ kind: 'temporary', reason: expect.stringContaining(code) as string });
    });
  }

  it('fails temporarily when the implicit-MX address lookups fail', async () => {
    const dns = new FakeResolver();
    dns.mx.set('plain.test', []);
    dns.a.set('plain.test', dnsError('ESERVFAIL'));
    dns.aaaa.set('plain.test', dnsError('ESERVFAIL'));
    expect((await resolveNextHops('plain.test', { resolver: dns })).kind).toBe('temporary');
  });
});

describe('routes', () => {
  it('parses HOST:PORT, [HOST]:PORT, IP literals and the default port', () => {
    expect(parseRoute('relay.test:587')).toEqual({ host: 'relay.test', port: 587, skipMx: false });
    expect(parseRoute('[Relay.Test.]:2525')).toEqual({ host: 'relay.test', port: 2525, skipMx: true });
    expect(parseRoute('[::1]:2525')).toEqual({ host: '::1', port: 2525, skipMx: true });
    expect(parseRoute('[192.0.2.1]')).toEqual({ host: '192.0.2.1', port: 25, skipMx: true });
    expect(parseRoute('relay.test')).toEqual({ host: 'relay.test', port: 25, skipMx: false });
  });

  for (const bad of ['', '[]:25', 'relay.test:0', 'relay.test:70000', 'relay.test:x', '192.0.2.1:25', '[relay.test:25', 'a:b:c']) {
    it(`refuses ${JSON.stringify(bad)} with a RouteError`, () => {
      expect(() => parseRoute(bad)).toThrow(RouteError);
    });
  }

  it("[HOST]:PORT uses the host's addresses without any MX lookup", async () => {
    const dns = exampleResolver();
    dns.a.set('relay.test', ['192.0.2.50']);
    dns.mx.set('relay.test', [{ exchange: 'mx5.d.test', priority: 5 }]);
    const result = await resolveNextHops('d.test', { resolver: dns, routes: { 'd.test': '[relay.test]:2525' } });
    expect(result).toEqual({ kind: 'hops', via: 'route', hops: [{ host: 'relay.test', port: 2525, addresses: ['192.0.2.50'], preference: 0 }] });
    expect(dns.queries.some((q) => q.startsWith('MX'))).toBe(false);
  });

  it('an IP literal route needs no DNS at all', async () => {
    const dns = new FakeResolver();
    expect(hops(await resolveNextHops('x.test', { resolver: dns, routes: { '*': '[127.0.0.1]:2525' } }))).toEqual([
      { host: '127.0.0.1', port: 2525, addresses: ['127.0.0.1'], preference: 0 },
    ]);
    expect(dns.queries).toEqual([]);
  });

  it("HOST:PORT looks up the host's MX records and uses the route's port", async () => {
    const dns = exampleResolver();
    const result = await resolveNextHops('other.test', { resolver: dns, routes: { 'other.test': 'd.test:2526' } });
    expect(result.kind === 'hops' && result.via).toBe('route');
    expect(hops(result).map((h) => [h.host, h.port])[0]).toEqual(['mx5.d.test', 2526]);
  });

  it('a domain\'s own route wins over "*"; "*" is the smarthost for the rest', async () => {
    const routes = { '*': '[127.0.0.2]:25', 'D.test': '[127.0.0.3]:26' };
    expect(hostNames(await resolveNextHops('d.test', { resolver: new FakeResolver(), routes }))).toEqual(['127.0.0.3']);
    expect(hostNames(await resolveNextHops('else.test', { resolver: new FakeResolver(), routes }))).toEqual(['127.0.0.2']);
  });

  it('a [HOST] route whose host has no address is a typed failure', async () => {
    const result = await resolveNextHops('d.test', { resolver: new FakeResolver(), routes: { '*': '[missing.test]:25' } });
    expect(result.kind).toBe('permanent');
  });

  it('a malformed route throws RouteError when used', async () => {
    await expect(resolveNextHops('d.test', { resolver: new FakeResolver(), routes: { '*': 'bad route' } })).rejects.toThrow(RouteError);
  });
});
