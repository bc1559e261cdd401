import { Resolver } from 'node:dns/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { base64 } from '@scure/base';
import { planDelivery, type DialOptions } from '../../src/outbound/dial.js';
import { discoverPolicy, type PolicyDecision, type PolicyOptions } from '../../src/outbound/policy.js';
import { openPinStore, type PinStore } from '../../src/outbound/pins.js';
import { decideTransport } from '../../src/outbound/transport-lookup.js';
import { DnsStub, ValidatingResolver, ValidatedDnsError } from '../../src/outbound/validated-dns.js';
import { LDNS_KEYGEN, LDNS_SIGNZONE, NSD, startDnssec, UNBOUND, type TestDnssec } from '../harness/dnssec.js';
import { runCommand } from '../harness/command.js';
import { freePort } from '../harness/ports.js';
import { describeWith, POSTFIX } from '../harness/requirements.js';
import { startDaemon } from '../adversity/daemon.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { loadScaled } from '../harness/wait.js';

const ALICE = 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=';
const BOB = '3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=';
const CAROL = 'Q2Fyb2wncyBrZXkgaXMgdGhpcnR5LXR3byBieXRlcyE=';
const OWN = 'b3duIGtleSBvZiB0aGlzIGhvc3QsIDMyIGJ5dGVzISE=';
const TLSA = 'TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
/** More than the 1232 octets asked for over UDP: the reply comes truncated, and is asked again over TCP. */
const LONG = Array.from({ length: 12 }, (_, i) => `"${String(i).padStart(2, '0')}${'x'.repeat(198)}"`).join(' ');
const record = (key: string): string => `TXT "v=pony1; n=${key}; a=${RECIPIENT}; p=enforce"`;

describeWith([NSD, UNBOUND, LDNS_KEYGEN, LDNS_SIGNZONE, POSTFIX], 'DNSSEC: a validating resolver on loopback (nsd + unbound, zone signed with ldns)', () => {
  let dns: TestDnssec;
  let validating: ValidatingResolver;
  let authoritative: ValidatingResolver;
  let pins: PinStore;

  /** A resolver that does not validate (node:dns), asking the same unbound: what blackpony used before. */
  const plainResolver = (): Resolver => {
    const resolver = new Resolver({ timeout: loadScaled(2_000), tries: 1 });
    resolver.setServers([`${dns.resolver.host}:${dns.resolver.port}`]);
    return resolver;
  };
  /** validated: with the validating resolver; direct: without it, but asking the (same, here non-trusted) resolver directly for TLSA. */
  const options = (validated: boolean, direct?: DnsStub): PolicyOptions => ({
    resolver: plainResolver(),
    pins,
    ...(validated ? { validating } : {}),
    ...(direct === undefined ? {} : { directDns: direct }),
  });
  const keysOf = (policy: PolicyDecision): string[] =>
    policy.mode === 'defer' || policy.acceptableKeys === 'any' ? [] : policy.acceptableKeys.map((key) => base64.encode(key));
  const route = async (domain: string, validated: boolean, direct?: DnsStub): Promise<string> =>
    (await decideTransport(domain, { policy: options(validated, direct), ownKey: () => base64.decode(OWN) })).route;

  beforeAll(async () => {
    dns = await startDnssec({
      signed: [
        `_pony.alice IN ${record(ALICE)}`,
        `long IN TXT ${LONG}`,
        'alice IN MX 10 mx.alice',
        'mx.alice IN A 127.0.0.1',
        `_25._tcp.mx.alice IN ${TLSA}`,
        'rolled IN MX 10 mx.alice',
        `_pony.rolled IN ${record(ALICE)}`,
        'dane IN MX 10 mx.dane',
        'dane2 IN MX 10 mx.dane',
        'dane3 IN MX 10 mx.dane',
        'dane4 IN MX 10 mx.dane',
        'mx.dane IN A 127.0.0.1',
        `_25._tcp.mx.dane IN ${TLSA}`,
      ],
      forged: [`_pony.mallory IN ${record(BOB)}`],
      unsigned: [
        { zone: 'plain.test', lines: [`_pony.carol IN ${record(BOB)}`] },
        // dane.signed.test is signed, with DANE for its MX; its _pony name is an insecure delegation.
        { zone: '_pony.dane.signed.test', lines: [`@ IN ${record(CAROL)}`] },
        { zone: '_pony.dane2.signed.test', lines: [`@ IN ${record(BOB)}`] },
        { zone: '_pony.dane3.signed.test', lines: [`@ IN ${record(BOB)}`] },
        { zone: '_pony.dane4.signed.test', lines: [`@ IN ${record(BOB)}`] },
      ],
    });
    validating = new ValidatingResolver(dns.resolver, 5_000);
    authoritative = new ValidatingResolver(dns.authoritative, 5_000);
    pins = await openPinStore(await makeTempDir('dnssec-pins'));
  });
  afterAll(async () => dns?.stop());

  it('reports a signed answer with the AD bit', async () => {
    expect(await validating.resolveTxt('_pony.alice.signed.test')).toEqual({
      records: [[`v=pony1; n=${ALICE}; a=${RECIPIENT}; p=enforce`]],
      authenticated: true,
    });
  });

  it('asks again over TCP when the UDP reply is truncated', async () => {
    const answer = await validating.resolveTxt('long.signed.test');
    expect(answer.authenticated).toBe(true);
    expect(answer.records).toEqual([Array.from({ length: 12 }, (_, i) => `${String(i).padStart(2, '0')}${'x'.repeat(198)}`)]);
  });

  it('reports an answer from an unsigned zone without the AD bit', async () => {
    expect(await validating.resolveTxt('_pony.carol.plain.test')).toEqual({
      records: [[`v=pony1; n=${BOB}; a=${RECIPIENT}; p=enforce`]],
      authenticated: false,
    });
    expect(await validating.resolveTxt('_pony.dane.signed.test')).toEqual({
      records: [[`v=pony1; n=${CAROL}; a=${RECIPIENT}; p=enforce`]],
      authenticated: false,
    });
  });

  it('fails a forged (unsigned) answer inside a signed zone, which the authoritative server does serve', async () => {
    expect((await authoritative.resolveTxt('_pony.mallory.signed.test')).records).toEqual([[`v=pony1; n=${BOB}; a=${RECIPIENT}; p=enforce`]]);
    await expect(validating.resolveTxt('_pony.mallory.signed.test')).rejects.toThrow(ValidatedDnsError);
    await expect(validating.resolveTxt('_pony.mallory.signed.test')).rejects.toThrow(/SERVFAIL/);
  });

  it('reports a proven denial as no record, with AD', async () => {
    expect(await validating.query('_pony.nobody.signed.test', 16)).toMatchObject({ kind: 'nxdomain', authenticated: true });
  });

  it('reads MX hosts and sees validated TLSA records, and none where there are none', async () => {
    expect(await validating.resolveMx('dane.signed.test')).toEqual({ hosts: ['mx.dane.signed.test'], authenticated: true });
    expect(await validating.hasValidatedTlsa('mx.alice.signed.test')).toBe(true);
    expect(await validating.hasValidatedTlsa('ns.signed.test')).toBe(false);
    expect(await authoritative.hasValidatedTlsa('mx.alice.signed.test')).toBe(false);
  });

  it('ranks a validated _pony record as DNSSEC evidence, an unvalidated one as a record', async () => {
    expect(await discoverPolicy('alice.signed.test', options(true))).toMatchObject({ source: 'dnssec', mode: 'enforce' });
    expect(await discoverPolicy('carol.plain.test', options(true))).toMatchObject({ source: 'record' });
    expect(await discoverPolicy('alice.signed.test', options(false))).toMatchObject({ source: 'record' });
  });

  it('lets a validated record roll a pinned key over; an unvalidated one only with the endorsement', async () => {
    await pins.pin('rolled.signed.test', base64.decode(BOB), 30);
    const validated = await discoverPolicy('rolled.signed.test', options(true));
    expect(keysOf(validated).sort()).toEqual([ALICE, BOB].sort());
    expect(validated).toMatchObject({ source: 'pin', mode: 'enforce' });
    expect(keysOf(await discoverPolicy('rolled.signed.test', options(false)))).toEqual([BOB]);
  });

  it("treats a forged answer as a failed lookup: the forger's key is never accepted", async () => {
    const forged = await discoverPolicy('mallory.signed.test', options(true));
    expect(forged).toMatchObject({ recordLookup: 'temporary' });
    expect(keysOf(forged)).not.toContain(BOB);
    expect(await route('mallory.signed.test', true)).toBe('wait');
    await pins.pin('mallory.signed.test', base64.decode(CAROL), 30);
    expect(keysOf(await discoverPolicy('mallory.signed.test', options(true)))).toEqual([CAROL]);
  });

  it('leaves a DANE domain to Postfix despite an unvalidated _pony record, unless a pin vouches for the key', async () => {
    expect(await route('dane.signed.test', false)).toBe('blackpony'); // as before: nothing known of DNSSEC
    expect(await route('dane.signed.test', true)).toBe('postfix');
    expect(await route('alice.signed.test', true)).toBe('blackpony'); // DANE too, but its record validated
    expect(await route('carol.plain.test', true)).toBe('blackpony'); // no DANE: the unsigned record stays as it was
    await pins.pin('dane.signed.test', base64.decode(CAROL), 30);
    expect(await route('dane.signed.test', true)).toBe('blackpony');
  });

  it('does not tunnel mail for a DANE domain to a key only an unvalidated record names (delivery planning)', async () => {
    // Planning needs only the policy and routing options.
    const dial = (): DialOptions =>
      ({
        policy: options(true),
        routing: { resolver: plainResolver(), routes: {} },
        hostName: 'client.test',
        connectTimeoutMs: 2_000,
        commandTimeoutMs: 2_000,
      }) as unknown as DialOptions;
    const planned = await planDelivery('dane2.signed.test', dial());
    expect(planned).toMatchObject({
      kind: 'failed',
      deferral: 'dns',
      reason: expect.stringMatching(/^DANE: mx\.dane\.signed\.test has DNSSEC-validated TLSA/) as string,
    });
    expect(await planDelivery('alice.signed.test', dial())).toMatchObject({ kind: 'plan', plan: { policy: { source: 'dnssec' } } });
  });

  it('without a validating resolver, keeps a domain whose MX has TLSA records with Postfix unless a pin vouches; a failed TLSA lookup waits', async () => {
    const direct = new DnsStub(dns.resolver, 5_000);
    expect(await route('dane4.signed.test', false)).toBe('blackpony'); // no TLSA source at all: as before
    expect(await route('dane4.signed.test', false, direct)).toBe('postfix');
    expect(await route('carol.plain.test', false, direct)).toBe('blackpony'); // no TLSA for its MX
    // Nothing answers on this port: the TLSA question fails, and the domain waits rather than tunnel.
    const silent = new DnsStub({ host: '127.0.0.1', port: await freePort({ udp: true }) }, 1_000);
    expect(await route('dane4.signed.test', false, silent)).toBe('wait');
    const dial = (): DialOptions =>
      ({
        policy: options(false, direct),
        routing: { resolver: plainResolver(), routes: {} },
        hostName: 'client.test',
        connectTimeoutMs: 2_000,
        commandTimeoutMs: 2_000,
      }) as unknown as DialOptions;
    expect(await planDelivery('dane4.signed.test', dial())).toMatchObject({
      kind: 'failed',
      deferral: 'dns',
      reason: expect.stringMatching(/^DANE: mx\.dane\.signed\.test has TLSA records, which blackpony cannot validate/) as string,
    });
    await pins.pin('dane4.signed.test', base64.decode(CAROL), 30);
    expect(await route('dane4.signed.test', false, direct)).toBe('blackpony');
    expect(await planDelivery('dane4.signed.test', dial())).toMatchObject({ kind: 'plan', plan: { policy: { source: 'pin' } } });
  });

  it("blackpony run with outbound.validating_resolver: Postfix's lookup (postmap -q) gets NOTFOUND for the DANE domain, the blackpony service for the validated one", async () => {
    const [outboundPort, lookupPort] = [await freePort(), await freePort()];
    const daemon = await startDaemon({
      hostName: 'mx.sender.test',
      outbound: { port: outboundPort, dnsPort: dns.resolver.port, mxPort: 25, validatingPort: dns.resolver.port, transportLookupPort: lookupPort },
    });
    try {
      const postmap = async (domain: string) => {
        const result = await runCommand('/usr/sbin/postmap', ['-q', domain, `socketmap:inet:127.0.0.1:${lookupPort}:transport`], { terminal: true });
        return { exitCode: result.exitCode, value: result.stdout.trim() };
      };
      expect(await postmap('bob@dane3.signed.test')).toEqual({ exitCode: 1, value: '' });
      expect(await postmap('bob@alice.signed.test')).toEqual({ exitCode: 0, value: `blackpony:inet:[127.0.0.1]:${outboundPort}` });
    } finally {
      await daemon.stop();
    }
  });
});
