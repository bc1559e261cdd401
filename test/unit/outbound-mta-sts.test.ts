import { describe, expect, it } from 'vitest';
import { ExpiringTable, type ExpiringChange } from '../../src/outbound/expiring-table.js';
import { mxMatches, MtaStsCache, MtaStsError, type MtaStsOutcome, type MtaStsPolicy } from '../../src/outbound/mta-sts.js';
import { parseMtaStsPolicy, selectStsRecord } from '../../src/outbound/mta-sts-policy.js';
import { dnsError, FakeResolver } from './fake-resolver.js';
import { sharedTableHub } from './shared-table-hub.js';

const DOMAIN = 'd.test';
const TXT_NAME = '_mta-sts.d.test';
const T0 = new Date('2026-11-01T00:00:00.000Z');
const at = (seconds: number): Date => new Date(T0.getTime() + seconds * 1000);

const ENFORCE = 'version: STSv1\r\nmode: enforce\r\nmx: mx1.d.test\r\nmx: *.mx.d.test\r\nmax_age: 86400\r\n';

function parseError(text: string): string {
  try {
    parseMtaStsPolicy(DOMAIN, 'id1', text);
  } catch (error) {
    if (error instanceof MtaStsError) return error.message;
    throw error;
  }
  throw new Error('expected the policy to be rejected');
}

function recordError(answers: string[][]): string {
  try {
    selectStsRecord(DOMAIN, answers);
  } catch (error) {
    if (error instanceof MtaStsError) return error.message;
    throw error;
  }
  throw new Error('expected the record to be rejected');
}

describe('MTA-STS TXT record', () => {
  it('takes the id of the one v=STSv1 record, with optional spaces, a trailing ";" and extension fields', () => {
    expect(selectStsRecord(DOMAIN, [['v=STSv1; id=20160831085700Z;']])).toEqual({ id: '20160831085700Z' });
    expect(selectStsRecord(DOMAIN, [['v=STSv1 ;id = abc ;  ext_1.x=va:lue ']])).toEqual({ id: 'abc' });
    expect(selectStsRecord(DOMAIN, [['v=STSv1; ', 'id=joined'], ['v=spf1 -all'], ['something else']])).toEqual({ id: 'joined' });
  });

  it('finds no record without a v=STSv1 one (another version is not ours)', () => {
    expect(selectStsRecord(DOMAIN, [])).toBeNull();
    expect(selectStsRecord(DOMAIN, [['v=STSv10; id=abc'], ['v=spf1 -all'], ['id=abc; v=STSv1']])).toBeNull();
  });

  it('refuses two v=STSv1 records, even identical ones', () => {
    expect(recordError([['v=STSv1; id=a'], ['v=STSv1; id=b']])).toBe('mta-sts d.test: 2 v=STSv1 records at _mta-sts.d.test (exactly one allowed)');
    expect(recordError([['v=STSv1; id=a'], ['v=STSv1; id=a']])).toMatch(/2 v=STSv1 records/);
  });

  it('refuses a missing, long, non-alphanumeric or repeated id and malformed fields', () => {
    expect(recordError([['v=STSv1']])).toBe('mta-sts d.test: TXT _mta-sts.d.test: missing id');
    expect(recordError([['v=STSv1;']])).toMatch(/missing id/);
    expect(recordError([[`v=STSv1; id=${'a'.repeat(33)}`]])).toMatch(/id must be 1 to 32 letters and digits/);
    expect(selectStsRecord(DOMAIN, [[`v=STSv1; id=${'a'.repeat(32)}`]])).toEqual({ id: 'a'.repeat(32) });
    expect(recordError([['v=STSv1; id=2016-08-31']])).toMatch(/id must be 1 to 32 letters and digits, got "2016-08-31"/);
    expect(recordError([['v=STSv1; id=a; id=b']])).toMatch(/id appears twice/);
    expect(recordError([['v=STSv1; id=a;; x=y']])).toMatch(/expected name=value, got ""/);
    expect(recordError([['v=STSv1; id']])).toMatch(/expected name=value, got " id"/);
    expect(recordError([['v=STSv1; id=a b']])).toMatch(/expected name=value/);
    expect(recordError([['v=STSv1; id=\u00e9']])).toMatch(/expected name=value/);
  });
});

describe('MTA-STS policy file', () => {
  it('parses CRLF and LF lines, several mx, unknown keys, and surrounding spaces', () => {
    expect(parseMtaStsPolicy(DOMAIN, 'id1', ENFORCE)).toEqual({
      id: 'id1',
      mode: 'enforce',
      mx: ['mx1.d.test', '*.mx.d.test'],
      maxAgeSeconds: 86400,
      ponyKeys: [],
    });
    const lf = 'version: STSv1\nmode:testing\nmx:   MX.Example.ORG.  \nfuture_key: any value at all\nmax_age: 31557600';
    expect(parseMtaStsPolicy(DOMAIN, 'id2', lf)).toEqual({ id: 'id2', mode: 'testing', mx: ['mx.example.org'], maxAgeSeconds: 31557600, ponyKeys: [] });
  });

  it("reads pony-key fields (the domain's XPONY keys), leaving out malformed ones and any past the limit", () => {
    const keys = Array.from({ length: 6 }, (_, i) => new Uint8Array(32).fill(i + 1));
    const b64 = (key: Uint8Array): string => Buffer.from(key).toString('base64');
    const text = [
      'version: STSv1',
      'mode: enforce',
      'mx: mx1.d.test',
      'max_age: 86400',
      `pony-key: ${b64(keys[0]!)}`,
      'pony-key: not base64 at all',
      `pony-key: ${Buffer.from(new Uint8Array(31)).toString('base64')}`,
      ...keys.slice(1).map((key) => `pony-key: ${b64(key)}`),
    ].join('\r\n');
    const policy = parseMtaStsPolicy(DOMAIN, 'id3', text);
    expect(policy.ponyKeys).toEqual(keys.slice(0, 4));
    expect(policy.mode).toBe('enforce');
  });

  it('accepts mode none without mx', () => {
    expect(parseMtaStsPolicy(DOMAIN, 'x', 'version: STSv1\nmode: none\nmax_age: 0\n')).toEqual({
      id: 'x',
      mode: 'none',
      mx: [],
      maxAgeSeconds: 0,
      ponyKeys: [],
    });
  });

  it('names the line of a malformed one', () => {
    expect(parseError('version: STSv1\nmode: enforce\nthis is not a field\n')).toBe(
      'mta-sts d.test: policy line 3: expected "key: value", got "this is not a field"',
    );
    expect(parseError('version: STSv1\r\nmode : enforce\r\n')).toMatch(/policy line 2: expected "key: value"/);
    expect(parseError(`${ENFORCE}<html><body>hello</body></html>\n`)).toMatch(/policy line 6: expected "key: value", got "<html>/);
    expect(parseError(`version: STSv1\nmode: enforce\nmode: testing\nmx: a.d.test\nmax_age: 1\n`)).toBe('mta-sts d.test: policy line 3: mode appears twice');
    expect(parseError(`${ENFORCE}mx: *.*.d.test\n`)).toMatch(/policy line 6: mx must be a host name or \*\.<host name>, got "\*\.\*\.d\.test"/);
    for (const bad of ['*d.test', 'mx..d.test', 'mx_1.d.test', '-mx.d.test', 'mx.d.test:25', '']) {
      expect(parseError(`${ENFORCE}mx: ${bad}\n`), bad).toMatch(/policy line 6: mx must be/);
    }
  });

  it('requires version STSv1, a known mode, max_age in range, and mx unless mode none', () => {
    expect(parseError('mode: enforce\nmx: a.d.test\nmax_age: 1\n')).toBe('mta-sts d.test: policy: missing version');
    expect(parseError('version: STSv2\nmode: enforce\nmx: a.d.test\nmax_age: 1\n')).toMatch(/unsupported version "STSv2"/);
    expect(parseError('version: stsv1\nmode: enforce\nmx: a.d.test\nmax_age: 1\n')).toMatch(/unsupported version/);
    expect(parseError('version: STSv1\nmx: a.d.test\nmax_age: 1\n')).toMatch(/missing mode/);
    expect(parseError('version: STSv1\nmode: Enforce\nmx: a.d.test\nmax_age: 1\n')).toMatch(/mode must be enforce, testing or none, got "Enforce"/);
    expect(parseError('version: STSv1\nmode: enforce\nmx: a.d.test\n')).toMatch(/missing max_age/);
    for (const age of ['31557601', '-1', '1.5', '0x10', '12345678901', '1e6']) {
      expect(parseError(`version: STSv1\nmode: enforce\nmx: a.d.test\nmax_age: ${age}\n`), age).toMatch(/max_age must be 0 to 31557600 seconds/);
    }
    expect(parseError('version: STSv1\nmode: enforce\nmax_age: 1\n')).toBe('mta-sts d.test: policy: mode enforce needs at least one mx');
    expect(parseError('')).toMatch(/missing version/);
  });
});

describe('mxMatches', () => {
  const policy = { mx: ['mx1.d.test', '*.mx.d.test'] };

  it('matches a listed host, ignoring case and a trailing dot', () => {
    expect(mxMatches(policy, 'mx1.d.test')).toBe(true);
    expect(mxMatches(policy, 'MX1.D.Test.')).toBe(true);
    expect(mxMatches(policy, 'mx2.d.test')).toBe(false);
    expect(mxMatches(policy, 'd.test')).toBe(false);
  });

  it('lets a wildcard stand for exactly one leftmost label', () => {
    expect(mxMatches(policy, 'a.mx.d.test')).toBe(true);
    expect(mxMatches(policy, 'A.MX.D.TEST.')).toBe(true);
    expect(mxMatches(policy, 'mx.d.test')).toBe(false);
    expect(mxMatches(policy, '.mx.d.test')).toBe(false);
    expect(mxMatches(policy, 'a.b.mx.d.test')).toBe(false);
    expect(mxMatches(policy, 'evilmx.d.test')).toBe(false);
    expect(mxMatches(policy, 'a.mx.d.test.attacker.test')).toBe(false);
    expect(mxMatches({ mx: ['mx1.d.test'] }, 'x.mx1.d.test')).toBe(false);
  });
});

/** A cache over a fake resolver and a fake HTTPS fetch that counts its calls. */
function setup(options: { maxEntries?: number; remembered?: ExpiringTable<MtaStsPolicy> } = {}) {
  const dns = new FakeResolver();
  const served = new Map<string, string | Error>();
  const fetched: string[] = [];
  const cache = new MtaStsCache({
    resolver: dns,
    ...(options.maxEntries === undefined ? {} : { remembered: new ExpiringTable<MtaStsPolicy>(options.maxEntries) }),
    ...(options.remembered === undefined ? {} : { remembered: options.remembered }),
    fetchText: (domain) => {
      fetched.push(domain);
      const text = served.get(domain);
      if (text === undefined) return Promise.reject(new MtaStsError(domain, 'HTTP 404 (expected 200)'));
      return text instanceof Error ? Promise.reject(text) : Promise.resolve(text);
    },
  });
  return { dns, served, fetched, cache };
}

function policyOf(outcome: MtaStsOutcome): MtaStsPolicy & { source: string } {
  if (outcome.kind !== 'policy') throw new Error(`expected a policy, got ${JSON.stringify(outcome)}`);
  return { ...outcome.policy, source: outcome.source };
}

describe('MtaStsCache', () => {
  it('fetches a policy for a new id, then uses the cache while the id is unchanged', async () => {
    const { dns, served, fetched, cache } = setup();
    dns.txt.set(TXT_NAME, [['v=STSv1; id=one']]);
    served.set(DOMAIN, ENFORCE);
    expect(policyOf(await cache.policyFor(DOMAIN, T0))).toMatchObject({ id: 'one', mode: 'enforce', source: 'fetched' });
    expect(policyOf(await cache.policyFor('D.Test.', at(3600)))).toMatchObject({ id: 'one', source: 'cached' });
    expect(fetched).toEqual([DOMAIN]);
  });

  it('fetches again when the id changes, and replaces the cached policy', async () => {
    const { dns, served, fetched, cache } = setup();
    dns.txt.set(TXT_NAME, [['v=STSv1; id=one']]);
    served.set(DOMAIN, ENFORCE.replace('enforce', 'testing'));
    expect(policyOf(await cache.policyFor(DOMAIN, T0)).mode).toBe('testing');
    dns.txt.set(TXT_NAME, [['v=STSv1; id=two']]);
    served.set(DOMAIN, ENFORCE);
    expect(policyOf(await cache.policyFor(DOMAIN, at(60)))).toMatchObject({ id: 'two', mode: 'enforce', source: 'fetched' });
    expect(fetched).toEqual([DOMAIN, DOMAIN]);
  });

  it('keeps a cached policy when the TXT record is stripped, fails, or is doubled, until max_age', async () => {
    const { dns, served, fetched, cache } = setup();
    dns.txt.set(TXT_NAME, [['v=STSv1; id=one']]);
    served.set(DOMAIN, ENFORCE);
    await cache.policyFor(DOMAIN, T0);
    dns.txt.delete(TXT_NAME);
    const stripped = await cache.policyFor(DOMAIN, at(100));
    expect(policyOf(stripped)).toMatchObject({ id: 'one', mode: 'enforce', source: 'cached' });
    expect(stripped.reason).toMatch(/ENOTFOUND; the cached policy applies until 2026-11-02T00:00:00.000Z/);
    dns.txt.set(TXT_NAME, dnsError('ESERVFAIL'));
    expect(policyOf(await cache.policyFor(DOMAIN, at(200))).source).toBe('cached');
    dns.txt.set(TXT_NAME, [['v=STSv1; id=x'], ['v=STSv1; id=y']]);
    expect(policyOf(await cache.policyFor(DOMAIN, at(300))).source).toBe('cached');
    dns.txt.delete(TXT_NAME);
    expect(await cache.policyFor(DOMAIN, at(86400))).toEqual({ kind: 'none', reason: 'mta-sts d.test: TXT _mta-sts.d.test: ENOTFOUND' });
    expect(fetched).toEqual([DOMAIN]);
  });

  it('a policy one worker fetched holds in another sharing the table, once the TXT record is stripped and the fetch blocked', async () => {
    const hub = sharedTableHub<ExpiringChange<MtaStsPolicy>>();
    const shared = async (): Promise<ExpiringTable<MtaStsPolicy>> => {
      const table = new ExpiringTable<MtaStsPolicy>(10);
      await table.share(hub.member());
      return table;
    };
    const first = setup({ remembered: await shared() });
    first.dns.txt.set(TXT_NAME, [['v=STSv1; id=one']]);
    first.served.set(DOMAIN, ENFORCE);
    expect(policyOf(await first.cache.policyFor(DOMAIN, T0)).source).toBe('fetched');
    await hub.settled();
    // The other worker's DNS and HTTPS are the forger's: no TXT record, no policy file.
    const other = setup({ remembered: await shared() });
    expect(policyOf(await other.cache.policyFor(DOMAIN, at(100)))).toMatchObject({ id: 'one', mode: 'enforce', source: 'cached' });
    expect(other.fetched).toEqual([]);
  });

  it('keeps a cached policy when the fetch for a new id fails or the new file is malformed', async () => {
    const { dns, served, cache } = setup();
    dns.txt.set(TXT_NAME, [['v=STSv1; id=one']]);
    served.set(DOMAIN, ENFORCE);
    await cache.policyFor(DOMAIN, T0);
    dns.txt.set(TXT_NAME, [['v=STSv1; id=two']]);
    served.set(DOMAIN, new MtaStsError(DOMAIN, 'no complete answer within 10000 ms'));
    const blocked = await cache.policyFor(DOMAIN, at(10));
    expect(policyOf(blocked)).toMatchObject({ id: 'one', source: 'cached' });
    expect(blocked.reason).toMatch(/no complete answer/);
    served.set(DOMAIN, 'version: STSv1\nmode: none\nmax_age: garbage\n');
    expect(policyOf(await cache.policyFor(DOMAIN, at(20)))).toMatchObject({ id: 'one', source: 'cached' });
  });

  it('is temporary when a new policy cannot be fetched or parsed and nothing is cached, and retries next time', async () => {
    const { dns, served, fetched, cache } = setup();
    dns.txt.set(TXT_NAME, [['v=STSv1; id=one']]);
    expect(await cache.policyFor(DOMAIN, T0)).toEqual({ kind: 'temporary', reason: 'mta-sts d.test: HTTP 404 (expected 200)' });
    served.set(DOMAIN, 'mode: enforce\n');
    expect(await cache.policyFor(DOMAIN, at(1))).toEqual({ kind: 'temporary', reason: 'mta-sts d.test: policy: missing version' });
    served.set(DOMAIN, ENFORCE);
    expect(policyOf(await cache.policyFor(DOMAIN, at(2))).source).toBe('fetched');
    expect(fetched).toHaveLength(3);
  });

  it('is temporary when the TXT lookup fails and nothing is cached; none without a record or with an invalid one', async () => {
    const { dns, fetched, cache } = setup();
    dns.txt.set(TXT_NAME, dnsError('ETIMEOUT'));
    expect(await cache.policyFor(DOMAIN, T0)).toEqual({ kind: 'temporary', reason: 'mta-sts d.test: TXT _mta-sts.d.test: ETIMEOUT' });
    dns.txt.set(TXT_NAME, [['v=spf1 -all']]);
    expect(await cache.policyFor(DOMAIN, T0)).toEqual({ kind: 'none', reason: 'mta-sts d.test: no v=STSv1 record at _mta-sts.d.test' });
    dns.txt.set(TXT_NAME, [['v=STSv1; id=a'], ['v=STSv1; id=b']]);
    expect(await cache.policyFor(DOMAIN, T0)).toMatchObject({ kind: 'none', reason: expect.stringMatching(/2 v=STSv1 records/) });
    dns.txt.set(TXT_NAME, [['v=STSv1; id=not-alnum']]);
    expect((await cache.policyFor(DOMAIN, T0)).kind).toBe('none');
    expect(fetched).toEqual([]);
  });

  it('a fetched mode none policy withdraws a cached enforce policy and is remembered itself', async () => {
    const { dns, served, fetched, cache } = setup();
    dns.txt.set(TXT_NAME, [['v=STSv1; id=one']]);
    served.set(DOMAIN, ENFORCE);
    await cache.policyFor(DOMAIN, T0);
    dns.txt.set(TXT_NAME, [['v=STSv1; id=two']]);
    served.set(DOMAIN, 'version: STSv1\nmode: none\nmax_age: 86400\n');
    expect((await cache.policyFor(DOMAIN, at(10))).kind).toBe('none');
    dns.txt.delete(TXT_NAME);
    expect(await cache.policyFor(DOMAIN, at(20))).toMatchObject({ kind: 'none', reason: expect.stringMatching(/cached policy applies.*\(mode none\)$/) });
    expect(fetched).toHaveLength(2);
  });

  it('does not keep a policy with max_age 0, and expires one max_age after its fetch', async () => {
    const { dns, served, fetched, cache } = setup();
    dns.txt.set(TXT_NAME, [['v=STSv1; id=one']]);
    served.set(DOMAIN, ENFORCE.replace('86400', '0'));
    await cache.policyFor(DOMAIN, T0);
    expect(policyOf(await cache.policyFor(DOMAIN, T0)).source).toBe('fetched');
    served.set(DOMAIN, ENFORCE.replace('86400', '60'));
    await cache.policyFor(DOMAIN, T0);
    expect(policyOf(await cache.policyFor(DOMAIN, at(59))).source).toBe('cached');
    expect(policyOf(await cache.policyFor(DOMAIN, at(60))).source).toBe('fetched');
    expect(fetched).toHaveLength(4);
  });

  it('evicts the policy fetched longest ago beyond maxEntries', async () => {
    const { dns, served, fetched, cache } = setup({ maxEntries: 2 });
    for (const domain of ['a.test', 'b.test', 'c.test']) {
      dns.txt.set(`_mta-sts.${domain}`, [['v=STSv1; id=one']]);
      served.set(domain, ENFORCE);
      await cache.policyFor(domain, T0);
    }
    for (const domain of ['b.test', 'c.test', 'a.test']) await cache.policyFor(domain, at(1));
    expect(fetched).toEqual(['a.test', 'b.test', 'c.test', 'a.test']);
  });

  it('shares one discovery between concurrent deliveries to a domain', async () => {
    const { dns, served, fetched, cache } = setup();
    dns.txt.set(TXT_NAME, [['v=STSv1; id=one']]);
    served.set(DOMAIN, ENFORCE);
    const outcomes = await Promise.all([cache.policyFor(DOMAIN, T0), cache.policyFor('d.test.', T0), cache.policyFor(DOMAIN, T0)]);
    expect(outcomes.map((o) => o.kind)).toEqual(['policy', 'policy', 'policy']);
    expect(fetched).toEqual([DOMAIN]);
  });

  it('answers none for something that is not a domain name, without a lookup', async () => {
    const { dns, cache } = setup();
    expect(await cache.policyFor('d.test/../x', T0)).toEqual({ kind: 'none', reason: 'mta-sts "d.test/../x": not a domain name' });
    expect(dns.queries).toEqual([]);
  });
});
