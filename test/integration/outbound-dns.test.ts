import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { base64 } from '@scure/base';
import { discoverPolicy } from '../../src/outbound/policy.js';
import { openPinStore, type PinStore } from '../../src/outbound/pins.js';
import { resolveNextHops, type RoutingResult } from '../../src/outbound/routing.js';
import { DnsStub, serverAddress } from '../../src/outbound/validated-dns.js';
import { startDns, type DnsRecords, type TestDns } from '../harness/dnsmasq.js';
import { DNSMASQ, describeWith } from '../harness/requirements.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';

const ALICE = 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=';
const BOB = '3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=';
const RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';

const RECORDS: DnsRecords = {
  mx: [
    { domain: 'd.test', host: 'mx2.d.test', preference: 20 },
    { domain: 'd.test', host: 'mx1.d.test', preference: 10 },
    { domain: 'd.test', host: 'noaddr.d.test', preference: 5 },
    { domain: 'nomx.test', host: 'mx1.d.test', preference: 10 },
  ],
  a: [
    { host: 'mx1.d.test', address: '127.0.0.1' },
    { host: 'mx2.d.test', address: '127.0.0.2' },
    { host: 'plain.test', address: '127.0.0.3' },
  ],
  aaaa: [
    { host: 'mx2.d.test', address: '::1' },
    { host: 'v6only.test', address: '::1' },
  ],
  txt: [{ name: '_pony.d.test', value: `v=pony1; n=${ALICE}; a=${RECIPIENT}; p=enforce` }],
};

function hops(result: RoutingResult): { host: string; port: number; addresses: string[] }[] {
  if (result.kind !== 'hops') throw new Error(`expected hops, got ${JSON.stringify(result)}`);
  return result.hops.map(({ host, port, addresses }) => ({ host, port, addresses }));
}

describeWith([DNSMASQ], 'outbound routing and discovery against dnsmasq', () => {
  let dns: TestDns;
  let dir: string;
  let pins: PinStore;

  beforeAll(async () => {
    dns = await startDns(RECORDS);
    dir = await makeTempDir('outbound-dns');
    pins = await openPinStore(dir);
  });
  afterAll(async () => {
    await dns?.stop();
    if (dir !== undefined) await removeTempDir(dir);
  });

  it('orders MX hosts by preference, skips one without addresses, and returns A and AAAA', async () => {
    const result = await resolveNextHops('d.test', { resolver: dns.resolver(), mxPort: 2525 });
    expect(result.kind === 'hops' && result.via).toBe('mx');
    expect(hops(result)).toEqual([
      { host: 'mx1.d.test', port: 2525, addresses: ['127.0.0.1'] },
      { host: 'mx2.d.test', port: 2525, addresses: ['127.0.0.2', '::1'] },
    ]);
  });

  it("falls back to the domain's own A or AAAA records without MX (implicit MX)", async () => {
    const plain = await resolveNextHops('plain.test', { resolver: dns.resolver() });
    expect(plain.kind === 'hops' && plain.via).toBe('implicit-mx');
    expect(hops(plain)).toEqual([{ host: 'plain.test', port: 25, addresses: ['127.0.0.3'] }]);
    expect(hops(await resolveNextHops('v6only.test', { resolver: dns.resolver() }))).toEqual([{ host: 'v6only.test', port: 25, addresses: ['::1'] }]);
  });

  it('fails permanently for a name dnsmasq does not know (NXDOMAIN)', async () => {
    const result = await resolveNextHops('nowhere.test', { resolver: dns.resolver() });
    expect(result.kind).toBe('permanent');
    expect(result.kind !== 'hops' && result.reason).toMatch(/ENOTFOUND/);
  });

  it('a [HOST]:PORT route resolves the host only', async () => {
    expect(hops(await resolveNextHops('elsewhere.test', { resolver: dns.resolver(), routes: { '*': '[mx2.d.test]:2600' } }))).toEqual([
      { host: 'mx2.d.test', port: 2600, addresses: ['127.0.0.2', '::1'] },
    ]);
  });

  it('fails temporarily when the DNS server does not answer', async () => {
    const { Resolver } = await import('node:dns/promises');
    const dead = new Resolver({ timeout: 200, tries: 1 });
    dead.setServers(['127.0.0.1:9']); // discard port: nothing answers
    const result = await resolveNextHops('d.test', { resolver: dead });
    expect(result.kind).toBe('temporary');
  });

  it('fetches and parses the _pony record; a changed record changes the policy', async () => {
    const enforce = await discoverPolicy('d.test', { resolver: dns.resolver(), pins });
    expect(enforce).toMatchObject({ mode: 'enforce', source: 'record', ageRecipient: RECIPIENT });
    expect(enforce.mode !== 'defer' && enforce.acceptableKeys !== 'any' && enforce.acceptableKeys.map((k) => base64.encode(k))).toEqual([ALICE]);
    expect(await discoverPolicy('plain.test', { resolver: dns.resolver(), pins })).toMatchObject({ mode: 'opportunistic', source: 'none' });

    await dns.restart({ ...RECORDS, txt: [{ name: '_pony.d.test', value: `v=pony1; n=${BOB}; a=${RECIPIENT}; p=testing` }] });
    const testing = await discoverPolicy('d.test', { resolver: dns.resolver(), pins });
    expect(testing).toMatchObject({ mode: 'testing', source: 'record' });
    expect(testing.mode !== 'defer' && testing.acceptableKeys !== 'any' && testing.acceptableKeys.map((k) => base64.encode(k))).toEqual([BOB]);

    await dns.restart({ ...RECORDS, txt: [{ name: '_pony.d.test', value: `v=pony1; n=${BOB}; a=not-a-recipient` }] });
    expect(await discoverPolicy('d.test', { resolver: dns.resolver(), pins })).toMatchObject({
      mode: 'opportunistic',
      reason: expect.stringMatching(/^invalid _pony record/) as string,
    });

    await pins.pin('d.test', base64.decode(BOB), 30);
    await dns.restart({ ...RECORDS, txt: [] });
    const pinned = await discoverPolicy('d.test', { resolver: dns.resolver(), pins });
    expect(pinned).toMatchObject({ mode: 'enforce', source: 'pin', reason: expect.stringMatching(/^no _pony record/) as string });
  });

  it("keeps a _pony record for its TTL (asked of the resolver's first server directly); with TTL 0 asks for every message", async () => {
    const txt = [{ name: '_pony.ttl.test', value: `v=pony1; n=${ALICE}; a=${RECIPIENT}; p=enforce` }];
    const server = await startDns({ ttl: 300, txt });
    try {
      const options = { resolver: server.resolver(), pins, directDns: new DnsStub(serverAddress(`127.0.0.1:${server.port}`)) };
      for (let i = 0; i < 3; i++) expect(await discoverPolicy('ttl.test', options)).toMatchObject({ mode: 'enforce', source: 'record' });
      expect(server.queries('TXT', '_pony.ttl.test')).toBe(1);

      await server.restart({ txt });
      const fresh = { ...options, directDns: new DnsStub(serverAddress(`127.0.0.1:${server.port}`)) };
      for (let i = 0; i < 2; i++) expect(await discoverPolicy('ttl.test', fresh)).toMatchObject({ mode: 'enforce', source: 'record' });
      expect(server.queries('TXT', '_pony.ttl.test')).toBe(2);
    } finally {
      await server.stop();
    }
  });

  it('a direct server that never answers: the record still comes, through node:dns and its servers, as before; the next lookups do not wait for it', async () => {
    const silent = createSocket('udp4');
    let asked = 0;
    silent.on('message', () => asked++);
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const directDns = new DnsStub({ host: '127.0.0.1', port: silent.address().port }, 200);
      await dns.restart({ ...RECORDS, txt: [{ name: '_pony.fallback.test', value: `v=pony1; n=${ALICE}; a=${RECIPIENT}; p=enforce` }] });
      expect(await discoverPolicy('fallback.test', { resolver: dns.resolver(), pins, directDns })).toMatchObject({
        mode: 'enforce',
        source: 'record',
        ageRecipient: RECIPIENT,
      });
      expect(dns.queries('TXT', '_pony.fallback.test')).toBe(1);
      // Asked twice (a lost datagram is asked again), then passed over for a while.
      expect(asked).toBe(2);
      expect(await discoverPolicy('fallback.test', { resolver: dns.resolver(), pins, directDns })).toMatchObject({ mode: 'enforce', source: 'record' });
      expect(asked).toBe(2);
      expect(dns.queries('TXT', '_pony.fallback.test')).toBe(2);
    } finally {
      silent.close();
    }
  });
});
