import { afterAll, beforeAll, expect, it } from 'vitest';
import { ValidatingResolver, ValidatedDnsError } from '../../src/outbound/validated-dns.js';
import { LDNS_KEYGEN, LDNS_SIGNZONE, NSD, startDnssec, UNBOUND, type TestDnssec } from '../harness/dnssec.js';
import { describeWith } from '../harness/requirements.js';

const ALICE = 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=';
const BOB = '3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=';
const TLSA = '_25._tcp.mx.alice IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';

describeWith([NSD, UNBOUND, LDNS_KEYGEN, LDNS_SIGNZONE], 'DNSSEC: a validating resolver on loopback (nsd + unbound, zone signed with ldns)', () => {
  let dns: TestDnssec;
  let validating: ValidatingResolver;
  let authoritative: ValidatingResolver;

  beforeAll(async () => {
    dns = await startDnssec({
      signed: [`_pony.alice IN TXT "v=pony1; n=${ALICE}; p=enforce"`, 'alice IN MX 10 mx.alice', 'mx.alice IN A 127.0.0.1', TLSA],
      forged: [`_pony.mallory IN TXT "v=pony1; n=${BOB}; p=enforce"`],
      plain: [`_pony.carol IN TXT "v=pony1; n=${BOB}; p=enforce"`],
    });
    validating = new ValidatingResolver(dns.resolver, 5_000);
    authoritative = new ValidatingResolver(dns.authoritative, 5_000);
  }, 60_000);
  afterAll(async () => dns?.stop());

  it('reports a signed answer with the AD bit', async () => {
    const answer = await validating.resolveTxt('_pony.alice.signed.test');
    expect(answer).toEqual({ records: [[`v=pony1; n=${ALICE}; p=enforce`]], authenticated: true });
  });

  it('reports an answer from an unsigned zone without the AD bit', async () => {
    const answer = await validating.resolveTxt('_pony.carol.plain.test');
    expect(answer).toEqual({ records: [[`v=pony1; n=${BOB}; p=enforce`]], authenticated: false });
  });

  it('fails a forged (unsigned) answer inside a signed zone, which the authoritative server does serve', async () => {
    expect((await authoritative.resolveTxt('_pony.mallory.signed.test')).records).toEqual([[`v=pony1; n=${BOB}; p=enforce`]]);
    await expect(validating.resolveTxt('_pony.mallory.signed.test')).rejects.toThrow(ValidatedDnsError);
    await expect(validating.resolveTxt('_pony.mallory.signed.test')).rejects.toThrow(/SERVFAIL/);
  });

  it('reports a proven denial as no record, with AD', async () => {
    const answer = await validating.query('_pony.nobody.signed.test', 16);
    expect(answer).toMatchObject({ kind: 'nxdomain', authenticated: true });
  });

  it('sees validated TLSA records for an MX host, and none where there are none', async () => {
    expect(await validating.hasValidatedTlsa('mx.alice.signed.test')).toBe(true);
    expect(await validating.hasValidatedTlsa('ns.signed.test')).toBe(false);
    expect(await authoritative.hasValidatedTlsa('mx.alice.signed.test')).toBe(false);
  });
});
