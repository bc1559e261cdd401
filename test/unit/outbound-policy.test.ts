import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { base64 } from '@scure/base';
import {
  discoverPolicy,
  isAcceptableKey,
  keysVouched,
  pinAfterSuccess,
  PolicyError,
  withHttpsKeys,
  type DeliveryPolicy,
  type PolicyDecision,
  type PolicyOptions,
} from '../../src/outbound/policy.js';
import { openPinStore, type PinStore } from '../../src/outbound/pins.js';
import { ExpiringTable } from '../../src/outbound/expiring-table.js';
import { RecordCache } from '../../src/outbound/record-cache.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { dnsError, FakeResolver } from './fake-resolver.js';
import { ValidatedDnsError, type ValidatingResolver } from '../../src/outbound/validated-dns.js';
import type { PonyRecord } from '../../src/crypto/pony-record.js';

// RFC 7748 section 6.1 public keys, and the recipient from age's README.
const ALICE = base64.decode('hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=');
const BOB = base64.decode('3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=');
const CAROL = new Uint8Array(32).fill(7);
const RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
const T0 = new Date('2026-11-01T00:00:00.000Z');
const DAY = 86_400_000;
const at = (days: number): Date => new Date(T0.getTime() + days * DAY);
const DOMAIN = 'd.test';
const NAME = `_pony.${DOMAIN}`;

function record(keys: Uint8Array[], tags = ''): string {
  return `v=pony1; n=${keys.map((k) => base64.encode(k)).join(',')}; a=${RECIPIENT}${tags}`;
}

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await removeTempDir(dir);
});

async function setup(txt?: string[][] | Error): Promise<{ dns: FakeResolver; pins: PinStore; dir: string; options: PolicyOptions }> {
  const dir = await makeTempDir('policy');
  dirs.push(dir);
  const dns = new FakeResolver();
  dns.mx.set(DOMAIN, [{ exchange: `mx.${DOMAIN}`, priority: 10 }]);
  if (txt !== undefined) dns.txt.set(NAME, txt);
  const pins = await openPinStore(dir);
  return { dns, pins, dir, options: { resolver: dns, pins, now: at(1) } };
}

function delivery(decision: PolicyDecision): DeliveryPolicy {
  if (decision.mode === 'defer') throw new Error(`expected a delivery policy, got defer: ${decision.reason}`);
  return decision;
}

function keysOf(decision: PolicyDecision): string[] | 'any' {
  const keys = delivery(decision).acceptableKeys;
  return keys === 'any' ? 'any' : keys.map((k) => base64.encode(k));
}

describe('discoverPolicy: the record', () => {
  it("p=enforce: enforce with the record's keys and age recipient", async () => {
    const { options } = await setup([[record([ALICE, BOB], '; p=enforce')]]);
    const decision = delivery(await discoverPolicy(DOMAIN, options));
    expect(decision).toMatchObject({ mode: 'enforce', source: 'record', ageRecipient: RECIPIENT, pinMaxAgeDays: 30 });
    expect(keysOf(decision)).toEqual([base64.encode(ALICE), base64.encode(BOB)]);
  });

  it("p=testing (and no p): testing with the record's keys", async () => {
    for (const tags of ['; p=testing', '']) {
      const { options } = await setup([[record([ALICE], tags)]]);
      const decision = await discoverPolicy(DOMAIN, options);
      expect(decision).toMatchObject({ mode: 'testing', source: 'record' });
      expect(keysOf(decision)).toEqual([base64.encode(ALICE)]);
    }
  });

  it('a record split into several TXT strings, among other TXT records', async () => {
    const text = record([ALICE], '; p=enforce');
    const { options } = await setup([['v=spf1 -all'], [text.slice(0, 30), text.slice(30)]]);
    expect(await discoverPolicy(DOMAIN, options)).toMatchObject({ mode: 'enforce', source: 'record' });
  });

  it('no record (NXDOMAIN or no v=pony1 TXT): opportunistic, any key', async () => {
    for (const txt of [undefined, [['v=spf1 -all']], [['v=pony2; n=x']]]) {
      const { options } = await setup(txt);
      const decision = await discoverPolicy(DOMAIN, options);
      expect(decision).toMatchObject({ mode: 'opportunistic', source: 'none', acceptableKeys: 'any', reason: 'no _pony record' });
    }
  });

  it('max-age sets how long proven keys stay pinned; max-age=0 means do not pin', async () => {
    const week = await setup([[record([ALICE], '; p=enforce; max-age=604800')]]);
    expect(delivery(await discoverPolicy(DOMAIN, week.options)).pinMaxAgeDays).toBe(7);
    const never = await setup([[record([ALICE], '; p=enforce; max-age=0')]]);
    const policy = delivery(await discoverPolicy(DOMAIN, never.options));
    expect(policy.pinMaxAgeDays).toBe(0);
    await pinAfterSuccess(never.pins, DOMAIN, policy, ALICE, at(1));
    expect(await never.pins.get(DOMAIN, at(1))).toBeNull();
  });
});

describe('discoverPolicy: pins (trust on first use)', () => {
  it('pinned, record missing: enforce with the pinned keys, so a stripped XPONY defers', async () => {
    const { options, pins } = await setup();
    await pins.pin(DOMAIN, ALICE, 30, T0);
    const decision = delivery(await discoverPolicy(DOMAIN, options));
    expect(decision).toMatchObject({ mode: 'enforce', source: 'pin' });
    expect(keysOf(decision)).toEqual([base64.encode(ALICE)]);
    expect(isAcceptableKey(decision, ALICE)).toBe(true);
    expect(isAcceptableKey(decision, CAROL)).toBe(false); // a swapped key defers
  });

  it('pinned, record announces another key: the pinned key still decides (a forged record can neither replace nor add a key)', async () => {
    const { options, pins } = await setup([[record([BOB], '; p=enforce')]]);
    await pins.pin(DOMAIN, ALICE, 30, T0);
    const decision = delivery(await discoverPolicy(DOMAIN, options));
    expect(decision).toMatchObject({ mode: 'enforce', source: 'pin' });
    expect(decision.ageRecipient).toBeUndefined(); // the record's a= is no evidence either
    expect(keysOf(decision)).toEqual([base64.encode(ALICE)]);
    expect(isAcceptableKey(decision, ALICE)).toBe(true);
    expect(isAcceptableKey(decision, BOB)).toBe(false); // the record's word alone
    expect(isAcceptableKey(decision, CAROL, [ALICE])).toBe(false); // endorsed, but not in the record
    await expect(pinAfterSuccess(pins, DOMAIN, decision, BOB, at(1))).rejects.toThrow(PolicyError);
  });

  it('pinned, record announces another key: a rollover through the record and an endorsement by the pinned key', async () => {
    const { options, pins } = await setup([[record([BOB], '; p=enforce')]]);
    await pins.pin(DOMAIN, ALICE, 30, T0);
    const decision = delivery(await discoverPolicy(DOMAIN, options));
    expect(isAcceptableKey(decision, BOB, [ALICE])).toBe(true);
    await pinAfterSuccess(pins, DOMAIN, decision, BOB, at(1), [ALICE]);
    expect((await pins.get(DOMAIN, at(2)))?.keys.map((k) => base64.encode(k.key))).toEqual([base64.encode(ALICE), base64.encode(BOB)]);
    // the old key ages out max-age after it was last seen
    expect((await pins.get(DOMAIN, at(30)))?.keys.map((k) => base64.encode(k.key))).toEqual([base64.encode(BOB)]);
  });

  it('pinned, no record: a new key endorsed by a pinned key is accepted and pinned beside it (handshake rollover)', async () => {
    const { options, pins } = await setup();
    await pins.pin(DOMAIN, ALICE, 30, T0);
    const decision = delivery(await discoverPolicy(DOMAIN, options));
    expect(isAcceptableKey(decision, BOB, [ALICE])).toBe(true);
    expect(isAcceptableKey(decision, BOB, [CAROL])).toBe(false); // vouched for by a key nobody pinned
    expect(isAcceptableKey(decision, BOB, [])).toBe(false);
    await expect(pinAfterSuccess(pins, DOMAIN, decision, BOB, at(1), [CAROL])).rejects.toThrow(PolicyError);
    await pinAfterSuccess(pins, DOMAIN, decision, BOB, at(1), [ALICE]);
    expect((await pins.get(DOMAIN, at(2)))?.keys.map((k) => base64.encode(k.key))).toEqual([base64.encode(ALICE), base64.encode(BOB)]);
    // The next delivery requires either key; the old one leaves the pin on its own.
    expect(keysOf(await discoverPolicy(DOMAIN, { ...options, now: at(2) }))).toEqual([base64.encode(ALICE), base64.encode(BOB)]);
    expect(keysOf(await discoverPolicy(DOMAIN, { ...options, now: at(30.5) }))).toEqual([base64.encode(BOB)]);
  });

  it("a record's keys are not extended by endorsements: a domain with a record rolls over through it", async () => {
    for (const txt of [[[record([ALICE], '; p=enforce')]], [[record([ALICE], '; p=testing')]]]) {
      const { options, pins } = await setup(txt);
      await pins.pin(DOMAIN, ALICE, 30, T0);
      const decision = delivery(await discoverPolicy(DOMAIN, options));
      expect(isAcceptableKey(decision, BOB, [ALICE])).toBe(false);
      await expect(pinAfterSuccess(pins, DOMAIN, decision, BOB, at(1), [ALICE])).rejects.toThrow(PolicyError);
    }
  });

  it('pinned, p=testing record naming another key: enforce with the pinned key (no downgrade, no substitution by a forged record)', async () => {
    const { options, pins } = await setup([[record([ALICE], '; p=testing')]]);
    await pins.pin(DOMAIN, CAROL, 30, T0);
    const decision = await discoverPolicy(DOMAIN, options);
    expect(decision).toMatchObject({ mode: 'enforce', source: 'pin' });
    expect(decision.mode !== 'defer' && decision.reason).toMatch(/pinned domain: enforce/);
    expect(keysOf(decision)).toEqual([base64.encode(CAROL)]);
  });

  it("keys from the MTA-STS policy file (HTTPS) replace a record's keys, and join a pin's", async () => {
    const { options, pins } = await setup([[record([BOB], '; p=testing')]]);
    const byRecord = delivery(await discoverPolicy(DOMAIN, options));
    const byHttps = withHttpsKeys(byRecord, [ALICE]);
    expect(byHttps).toMatchObject({ mode: 'testing', source: 'https' });
    expect(byHttps.ageRecipient).toBeUndefined();
    expect(isAcceptableKey(byHttps, ALICE)).toBe(true);
    expect(isAcceptableKey(byHttps, BOB)).toBe(false); // the record's word alone
    expect(withHttpsKeys(delivery(await discoverPolicy('other.test', options)), [ALICE])).toMatchObject({ mode: 'testing', source: 'https' });
    await pins.pin(DOMAIN, CAROL, 30, T0);
    const pinned = withHttpsKeys(delivery(await discoverPolicy(DOMAIN, options)), [ALICE]);
    expect(pinned).toMatchObject({ mode: 'enforce', source: 'pin' });
    expect(keysOf(pinned)).toEqual([base64.encode(CAROL), base64.encode(ALICE)]);
    expect(withHttpsKeys(pinned, [])).toBe(pinned);
  });

  it('a DNSSEC-validated record raised by a local policy stays evidence (source dnssec), and a pin or HTTPS keys are evidence too', async () => {
    const { options } = await setup();
    const validating = { resolveTxt: async () => ({ records: [[record([BOB], '; p=testing')]], authenticated: true }) } as unknown as ValidatingResolver;
    const decision = delivery(await discoverPolicy(DOMAIN, { ...options, validating, localPolicies: { [DOMAIN]: 'enforce' } }));
    expect(decision).toMatchObject({ mode: 'enforce', source: 'dnssec' });
    expect(keysVouched(decision)).toBe(true);
    expect(keysVouched({ ...decision, source: 'record' })).toBe(false);
    expect(keysVouched({ ...decision, source: 'local' })).toBe(false);
    expect(keysVouched(withHttpsKeys({ ...decision, source: 'record' }, [ALICE]))).toBe(true);
  });

  it("relay=sealed is used only as strongly vouched as the keys: a first contact's or a validated record's, never a pinned domain's unsigned one, never beside HTTPS keys", async () => {
    const tags = '; p=enforce; max-age=86400; relay=sealed';
    const { options, pins } = await setup([[record([ALICE], tags)]]);
    const cache = new RecordCache();
    const firstContact = delivery(await discoverPolicy(DOMAIN, { ...options, recordCache: cache }));
    expect(firstContact).toMatchObject({ mode: 'enforce', source: 'record', ageRecipient: RECIPIENT, sealedRelay: true });
    // A remembered record keeps it, as it keeps its keys and a=.
    const failing = new FakeResolver();
    failing.txt.set(NAME, dnsError('ESERVFAIL'));
    expect(await discoverPolicy(DOMAIN, { ...options, resolver: failing, recordCache: cache })).toMatchObject({ source: 'cached-record', sealedRelay: true });
    // Without the tag (or relay=none): nothing.
    const { options: plain } = await setup([[record([ALICE], '; p=enforce; relay=none')]]);
    expect(delivery(await discoverPolicy(DOMAIN, plain)).sealedRelay).toBeUndefined();
    // Keys over HTTPS: the record's a= is not used, so neither is its relay=sealed.
    const byHttps = withHttpsKeys(firstContact, [BOB]);
    expect(byHttps.sealedRelay).toBeUndefined();
    expect(byHttps.ageRecipient).toBeUndefined();
    // Pinned: an unsigned record (a forger's, maybe, adding the tag or changing a=) turns nothing on.
    await pins.pin(DOMAIN, ALICE, 30, T0);
    const pinned = delivery(await discoverPolicy(DOMAIN, options));
    expect(pinned).toMatchObject({ mode: 'enforce', source: 'pin' });
    expect(pinned.sealedRelay).toBeUndefined();
    expect(pinned.ageRecipient).toBeUndefined();
    // Pinned, and the record validated (DNSSEC): its tag and a= are evidence.
    const validating = { resolveTxt: async () => ({ records: [[record([ALICE], tags)]], authenticated: true }) } as unknown as ValidatingResolver;
    expect(await discoverPolicy(DOMAIN, { ...options, validating })).toMatchObject({
      mode: 'enforce',
      source: 'pin',
      ageRecipient: RECIPIENT,
      sealedRelay: true,
    });
  });

  it("a pinned domain's unsigned relay=sealed counts where its pinned key announced the relay, sealed to the recipient pinned with it", async () => {
    // The record names a forger's a= beside the tag; the pin remembers what the handshake said.
    const forged = `v=pony1; n=${base64.encode(ALICE)}; a=age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj; p=enforce; relay=sealed`;
    const { options, pins } = await setup([[forged]]);
    await pins.pin(DOMAIN, ALICE, 30, T0);
    expect(delivery(await discoverPolicy(DOMAIN, options)).sealedRelay).toBeUndefined();
    // The pinned key's server announced the relay: the tag counts, with the pinned recipient.
    await pinAfterSuccess(pins, DOMAIN, delivery(await discoverPolicy(DOMAIN, options)), ALICE, at(1), [], RECIPIENT);
    const announced = delivery(await discoverPolicy(DOMAIN, options));
    expect(announced).toMatchObject({ mode: 'enforce', source: 'pin', sealedRelay: true, ageRecipient: RECIPIENT });
    expect(announced.reason).toContain('relay=sealed, as the pinned key announced');
    // The record without the tag: nothing, whatever the pin says (either side can withhold it).
    const { options: untagged, pins: pins2 } = await setup([[record([ALICE], '; p=enforce')]]);
    await pins2.pin(DOMAIN, ALICE, 30, T0, RECIPIENT);
    expect(delivery(await discoverPolicy(DOMAIN, untagged)).sealedRelay).toBeUndefined();
    // A rollover: the most recently seen key decides, here one whose handshake announced nothing.
    await pins.pin(DOMAIN, BOB, 30, at(2));
    expect(delivery(await discoverPolicy(DOMAIN, { ...options, now: at(2) })).sealedRelay).toBeUndefined();
  });

  it('opportunistic success pins the key; the next lookup without record requires it', async () => {
    const { options, pins } = await setup();
    const first = delivery(await discoverPolicy(DOMAIN, options));
    expect(first.mode).toBe('opportunistic');
    await pinAfterSuccess(pins, DOMAIN, first, CAROL, at(1));
    const second = await discoverPolicy(DOMAIN, { ...options, now: at(2) });
    expect(second).toMatchObject({ mode: 'enforce', source: 'pin' });
    expect(keysOf(second)).toEqual([base64.encode(CAROL)]);
  });

  it('an expired pin no longer applies', async () => {
    const { options, pins } = await setup();
    await pins.pin(DOMAIN, ALICE, 1, T0);
    expect(await discoverPolicy(DOMAIN, { ...options, now: at(2) })).toMatchObject({ mode: 'opportunistic' });
  });

  it('pinAfterSuccess refuses a key the policy did not accept', async () => {
    const { options, pins } = await setup([[record([ALICE], '; p=enforce')]]);
    const decision = delivery(await discoverPolicy(DOMAIN, options));
    await expect(pinAfterSuccess(pins, DOMAIN, decision, CAROL, at(1))).rejects.toThrow(PolicyError);
    expect(await pins.get(DOMAIN, at(1))).toBeNull();
  });

  it('a corrupt pin file defers, even with a valid record, and does not become "no pin"', async () => {
    for (const txt of [undefined, [[record([ALICE], '; p=enforce')]]]) {
      const { options, pins, dir } = await setup(txt);
      await pins.pin(DOMAIN, ALICE, 30, T0);
      await writeFile(join(dir, 'pins', `${DOMAIN}.json`), 'not json');
      const decision = await discoverPolicy(DOMAIN, options);
      expect(decision.mode).toBe('defer');
      expect(decision.reason).toMatch(/not valid JSON.*pins forget d\.test/);
    }
  });
});

describe('discoverPolicy: invalid records and DNS failures never downgrade', () => {
  const invalid: [string, string[][]][] = [
    ['malformed', [['v=pony1; n=notbase64; a=x']]],
    ['ambiguous', [[record([ALICE], '; p=enforce')], [record([BOB], '; p=enforce')]]],
    ['truncated', [[record([ALICE], '; p=enforce').slice(0, 40)]]],
  ];
  for (const [what, txt] of invalid) {
    it(`${what} record without pin: opportunistic, with the reason logged`, async () => {
      const { options } = await setup(txt);
      const decision = await discoverPolicy(DOMAIN, options);
      expect(decision).toMatchObject({ mode: 'opportunistic', source: 'none' });
      expect(decision.reason).toMatch(/^invalid _pony record \(_pony record: /);
    });

    it(`${what} record with a pin: enforce with the pinned keys`, async () => {
      const { options, pins } = await setup(txt);
      await pins.pin(DOMAIN, CAROL, 30, T0);
      const decision = await discoverPolicy(DOMAIN, options);
      expect(decision).toMatchObject({ mode: 'enforce', source: 'pin' });
      expect(keysOf(decision)).toEqual([base64.encode(CAROL)]);
    });

    it(`${what} record, local policy enforce, no pin: defer`, async () => {
      const { options } = await setup(txt);
      const decision = await discoverPolicy(DOMAIN, { ...options, localPolicies: { [DOMAIN]: 'enforce' } });
      expect(decision.mode).toBe('defer');
      expect(decision.reason).toMatch(/invalid _pony record.*local policy enforce/);
    });
  }

  for (const code of ['ESERVFAIL', 'ETIMEOUT', 'ECONNREFUSED']) {
    it(`DNS failure (${code}) with a pin: enforce with the pinned keys`, async () => {
      const { options, pins } = await setup(dnsError(code));
      await pins.pin(DOMAIN, ALICE, 30, T0);
      const decision = await discoverPolicy(DOMAIN, options);
      expect(decision).toMatchObject({ mode: 'enforce', source: 'pin' });
      expect(decision.reason).toContain(code);
    });
  }

  it('DNS failure without pin: opportunistic, or defer for a local enforce domain', async () => {
    const { options } = await setup(dnsError('ESERVFAIL'));
    expect(await discoverPolicy(DOMAIN, options)).toMatchObject({
      mode: 'opportunistic',
      reason: expect.stringMatching(/_pony lookup failed.*ESERVFAIL/) as string,
    });
    expect((await discoverPolicy(DOMAIN, { ...options, localPolicies: { [DOMAIN]: 'enforce' } })).mode).toBe('defer');
  });

  it('a record fetched within its max-age stands in for a failed, invalid or missing lookup', async () => {
    const { options, dns } = await setup([[record([ALICE], '; p=enforce; max-age=86400')]]);
    const cache = new RecordCache();
    expect(await discoverPolicy(DOMAIN, { ...options, recordCache: cache, now: T0 })).toMatchObject({ mode: 'enforce', source: 'record' });
    for (const txt of [dnsError('ETIMEOUT'), [['v=pony1; garbage']], undefined]) {
      if (txt === undefined) dns.txt.delete(NAME);
      else dns.txt.set(NAME, txt);
      const decision = await discoverPolicy(DOMAIN, { ...options, recordCache: cache, now: new Date(T0.getTime() + 3_600_000) });
      expect(decision).toMatchObject({ mode: 'enforce', source: 'cached-record', ageRecipient: RECIPIENT });
      expect(keysOf(decision)).toEqual([base64.encode(ALICE)]);
    }
    // after max-age the cache is gone
    expect(await discoverPolicy(DOMAIN, { ...options, recordCache: cache, now: at(2) })).toMatchObject({ mode: 'opportunistic' });
  });

  it('a remembered record keeps whether it validated: a validated one stays DNSSEC evidence, an unsigned one stays unsigned', async () => {
    const { options } = await setup();
    const cache = new RecordCache();
    const answer = (authenticated: boolean) =>
      ({ resolveTxt: async () => ({ records: [[record([ALICE], '; p=enforce; max-age=86400')]], authenticated }) }) as unknown as ValidatingResolver;
    const failing = { resolveTxt: async () => Promise.reject(new ValidatedDnsError('dns: SERVFAIL')) } as unknown as ValidatingResolver;
    const later = new Date(T0.getTime() + 3_600_000);
    expect(await discoverPolicy(DOMAIN, { ...options, validating: answer(true), recordCache: cache, now: T0 })).toMatchObject({ source: 'dnssec' });
    expect(await discoverPolicy(DOMAIN, { ...options, validating: failing, recordCache: cache, now: later })).toMatchObject({
      source: 'dnssec',
      recordLookup: 'temporary',
    });
    expect(await discoverPolicy(DOMAIN, { ...options, validating: answer(false), recordCache: cache, now: T0 })).toMatchObject({ source: 'record' });
    expect(await discoverPolicy(DOMAIN, { ...options, validating: failing, recordCache: cache, now: later })).toMatchObject({ source: 'cached-record' });
  });

  it('the record cache is bounded: the oldest entry goes first', () => {
    const cache = new RecordCache(new ExpiringTable(2));
    const parsed = { policy: 'enforce', noiseKeys: [ALICE], ageRecipient: RECIPIENT, maxAge: 600 } as unknown as PonyRecord;
    for (const domain of ['a.test', 'b.test', 'c.test']) cache.remember(domain, parsed, false, T0);
    expect(cache.recall('a.test', T0)).toBeNull();
    expect(cache.recall('c.test', T0)).toMatchObject({ validated: false });
  });

  it('a record without max-age is not remembered', async () => {
    const { options, dns } = await setup([[record([ALICE], '; p=enforce')]]);
    const cache = new RecordCache();
    await discoverPolicy(DOMAIN, { ...options, recordCache: cache });
    dns.txt.set(NAME, dnsError('ETIMEOUT'));
    expect(await discoverPolicy(DOMAIN, { ...options, recordCache: cache })).toMatchObject({ mode: 'opportunistic' });
  });
});

describe('discoverPolicy: local policy', () => {
  it('local enforce without record: enforce, any key (first use), then pinned', async () => {
    const { options, pins } = await setup();
    const decision = delivery(await discoverPolicy(DOMAIN, { ...options, localPolicies: { [DOMAIN]: 'enforce' } }));
    expect(decision).toMatchObject({ mode: 'enforce', source: 'local', acceptableKeys: 'any' });
    await pinAfterSuccess(pins, DOMAIN, decision, CAROL, at(1));
    expect(keysOf(await discoverPolicy(DOMAIN, { ...options, localPolicies: { [DOMAIN]: 'enforce' } }))).toEqual([base64.encode(CAROL)]);
  });

  it("local enforce raises a p=testing record to enforce, keeping the record's keys", async () => {
    const { options } = await setup([[record([ALICE], '; p=testing')]]);
    const decision = await discoverPolicy('D.Test.', { ...options, localPolicies: { [DOMAIN]: 'enforce' } });
    expect(decision).toMatchObject({ mode: 'enforce', source: 'local', ageRecipient: RECIPIENT });
    expect(keysOf(decision)).toEqual([base64.encode(ALICE)]);
  });

  it('local testing never weakens a p=enforce record', async () => {
    const { options } = await setup([[record([ALICE], '; p=enforce')]]);
    expect(await discoverPolicy(DOMAIN, { ...options, localPolicies: { [DOMAIN]: 'testing' } })).toMatchObject({ mode: 'enforce', source: 'record' });
  });

  it('local testing without record: testing, any key; other domains unaffected', async () => {
    const { options } = await setup();
    const localPolicies = { [DOMAIN]: 'testing' as const };
    expect(await discoverPolicy(DOMAIN, { ...options, localPolicies })).toMatchObject({ mode: 'testing', source: 'local', acceptableKeys: 'any' });
    expect(await discoverPolicy('other.test', { ...options, localPolicies })).toMatchObject({ mode: 'opportunistic' });
  });
});
