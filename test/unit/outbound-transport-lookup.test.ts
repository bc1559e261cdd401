import { afterAll, describe, expect, it } from 'vitest';
import { generateKeys } from '../../src/crypto/keyfile.js';
import { identityToRecipient } from '../../src/crypto/age/index.js';
import { serializePonyRecord } from '../../src/crypto/pony-record.js';
import { openPinStore } from '../../src/outbound/pins.js';
import { TransportLookup, type TransportLookupOptions } from '../../src/outbound/transport-lookup.js';
import type { DnsResolver } from '../../src/dns.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { dnsError, FakeResolver } from './fake-resolver.js';

const ANSWER = 'blackpony:inet:[127.0.0.1]:10587';
const own = generateKeys();
const peer = generateKeys();
const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((dir) => removeTempDir(dir))));

const record = (keys: ReturnType<typeof generateKeys>): string[][] => [
  [serializePonyRecord({ noiseKeys: [keys.noise.publicKey], ageRecipient: identityToRecipient(keys.ageX25519Identity), policy: 'testing' })],
];

async function lookupWith(resolver: DnsResolver, extra: Partial<TransportLookupOptions> = {}): Promise<TransportLookup> {
  const dir = await makeTempDir('transport-lookup');
  dirs.push(dir);
  return new TransportLookup({
    policy: { resolver, pins: await openPinStore(dir) },
    ownKey: () => own.noise.publicKey,
    answer: ANSWER,
    cacheMs: 60_000,
    temporaryCacheMs: 10_000,
    deadlineMs: 1_000,
    ...extra,
  });
}

describe('transport lookup', () => {
  it('asks DNS once per domain while its answer is fresh, and shares one decision between concurrent lookups', async () => {
    const dns = new FakeResolver();
    dns.txt.set('_pony.peer.test', record(peer));
    let now = 0;
    const lookup = await lookupWith(dns, { now: () => now });
    const answers = await Promise.all([lookup.lookup('a@peer.test'), lookup.lookup('b@peer.test'), lookup.lookup('peer.test')]);
    expect(answers.map((a) => a.answer)).toEqual(Array(3).fill({ status: 'OK', value: ANSWER }));
    expect(dns.queries.filter((q) => q === 'TXT _pony.peer.test')).toHaveLength(1);
    now = 60_001;
    await lookup.lookup('peer.test');
    expect(dns.queries.filter((q) => q === 'TXT _pony.peer.test')).toHaveLength(2);
  });

  it('keeps a temporary failure only briefly, then asks again', async () => {
    const dns = new FakeResolver();
    dns.txt.set('_pony.flaky.test', dnsError('ESERVFAIL'));
    let now = 0;
    const lookup = await lookupWith(dns, { now: () => now });
    expect((await lookup.lookup('flaky.test')).answer).toMatchObject({ status: 'TEMP', reason: expect.stringMatching(/ESERVFAIL/) as string });
    dns.txt.set('_pony.flaky.test', record(peer));
    now = 10_001;
    expect((await lookup.lookup('flaky.test')).answer).toEqual({ status: 'OK', value: ANSWER });
  });

  it('answers TEMP when no decision comes within the deadline', async () => {
    const hanging: DnsResolver = { ...new FakeResolver(), resolveTxt: () => new Promise<string[][]>(() => undefined) } as unknown as DnsResolver;
    const lookup = await lookupWith(hanging, { deadlineMs: 20 });
    expect((await lookup.lookup('slow.test')).answer).toEqual({ status: 'TEMP', reason: 'no routing decision within 20 ms' });
  });

  it("leaves a domain whose record names this host's own key to Postfix: it is received here", async () => {
    const dns = new FakeResolver();
    dns.txt.set('_pony.own.test', record(own));
    const lookup = await lookupWith(dns);
    const { answer, decision } = await lookup.lookup('postmaster@own.test');
    expect(answer).toEqual({ status: 'NOTFOUND' });
    expect(decision?.reason).toMatch(/this host's own/);
  });

  it('routes a domain seen offering XPONY to blackpony, and tells about every domain left to Postfix', async () => {
    const considered: string[] = [];
    const lookup = await lookupWith(new FakeResolver(), { seen: (domain) => domain === 'seen.test', onPostfixRoute: (domain) => considered.push(domain) });
    expect((await lookup.lookup('seen.test')).answer).toEqual({ status: 'OK', value: ANSWER });
    expect((await lookup.lookup('other.test')).answer).toEqual({ status: 'NOTFOUND' });
    expect(considered).toEqual(['other.test']);
  });

  it('keeps at most maxEntries answers', async () => {
    const dns = new FakeResolver();
    const lookup = await lookupWith(dns, { maxEntries: 2 });
    for (const domain of ['a.test', 'b.test', 'c.test', 'a.test']) await lookup.lookup(domain);
    expect(dns.queries.filter((q) => q === 'TXT _pony.a.test')).toHaveLength(2);
  });
});
