/**
 * MTA-STS discovery against real parts: dnsmasq serves the `_mta-sts` TXT records and the
 * `mta-sts.<domain>` addresses, and a Node HTTPS server on 127.0.0.1 serves policy files with
 * certificates from a throwaway CA made by openssl. Each domain below is one way a policy server
 * (or an attacker in front of it) can misbehave.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MAX_POLICY_BYTES } from '../../src/outbound/mta-sts-fetch.js';
import { MtaStsCache, type MtaStsOptions, type MtaStsOutcome } from '../../src/outbound/mta-sts.js';
import { makeTestCa, OPENSSL, selfSignedCertificate } from '../harness/certificates.js';
import { startDns, type DnsRecords, type TestDns } from '../harness/dnsmasq.js';
import { DNSMASQ, describeWith } from '../harness/requirements.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { loadScaled } from '../harness/wait.js';

/** Domains whose policy server presents the CA-signed certificate for its own name. */
const SERVED = ['good', 'redirect', 'wrongtype', 'nocontenttype', 'oversize', 'chunked', 'slow', 'dribble', 'malformed', 'notfound', 'rotate', 'twotxt'].map(
  (name) => `${name}.test`,
);
/** Presents a self-signed certificate for its own name. */
const SELF_SIGNED = 'selfsigned.test';
/** Presents a CA-signed certificate, but for mta-sts.elsewhere.test. */
const OTHER_NAME = 'othername.test';
/** Announces a policy, but mta-sts.noaddress.test has no address. */
const NO_ADDRESS = 'noaddress.test';

const policyText = (mode: string, mx = 'mx1.good.test'): string => `version: STSv1\r\nmode: ${mode}\r\nmx: ${mx}\r\nmax_age: 86400\r\n`;

function records(rotate: { id: string } | null): DnsRecords {
  const domains = [...SERVED.filter((d) => d !== 'rotate.test' && d !== 'twotxt.test'), SELF_SIGNED, OTHER_NAME, NO_ADDRESS];
  return {
    a: [...SERVED, SELF_SIGNED, OTHER_NAME].map((domain) => ({ host: `mta-sts.${domain}`, address: '127.0.0.1' })),
    txt: [
      ...domains.map((domain) => ({ name: `_mta-sts.${domain}`, value: 'v=STSv1; id=20261122T0000' })),
      { name: '_mta-sts.twotxt.test', value: 'v=STSv1; id=first' },
      { name: '_mta-sts.twotxt.test', value: 'v=STSv1; id=second' },
      ...(rotate === null ? [] : [{ name: '_mta-sts.rotate.test', value: `v=STSv1; id=${rotate.id}` }]),
    ],
  };
}

describeWith([DNSMASQ, OPENSSL], 'outbound: MTA-STS policy discovery over real DNS and HTTPS', () => {
  let dir: string;
  let dns: TestDns;
  let server: Server;
  let port: number;
  let ca: string;
  /** Host headers of the requests the policy server answered, in order. */
  const requests: string[] = [];
  let rotatePolicy = policyText('testing');
  const dribbles = new Set<NodeJS.Timeout>();

  beforeAll(async () => {
    dir = await makeTempDir('mta-sts');
    const testCa = await makeTestCa(dir);
    ca = testCa.pem;
    const served = await testCa.issue(
      'served',
      SERVED.map((d) => `mta-sts.${d}`),
    );
    const elsewhere = await testCa.issue('elsewhere', ['mta-sts.elsewhere.test']);
    const selfSigned = await selfSignedCertificate(dir, 'self', `mta-sts.${SELF_SIGNED}`);
    const contexts = new Map<string, SecureContext>([
      [`mta-sts.${SELF_SIGNED}`, createSecureContext({ key: selfSigned.key, cert: selfSigned.cert })],
      [`mta-sts.${OTHER_NAME}`, createSecureContext({ key: elsewhere.key, cert: elsewhere.cert })],
    ]);
    server = createServer({ key: served.key, cert: served.cert, SNICallback: (name, done) => done(null, contexts.get(name)) }, (request, response) => {
      const domain = (request.headers.host ?? '').replace(/^mta-sts\.|:\d+$/g, '');
      requests.push(domain);
      if (request.url !== '/.well-known/mta-sts.txt') {
        response.writeHead(404).end();
        return;
      }
      const plain = { 'content-type': 'text/plain; charset=utf-8' };
      const padded = `${policyText('enforce')}${'x-padding: yes\r\n'.repeat(MAX_POLICY_BYTES / 16)}`;
      switch (domain) {
        case 'redirect.test':
          response.writeHead(301, { location: 'https://mta-sts.good.test/.well-known/mta-sts.txt' }).end();
          return;
        case 'wrongtype.test':
          response.writeHead(200, { 'content-type': 'text/html' }).end(policyText('enforce'));
          return;
        case 'nocontenttype.test':
          response.writeHead(200).end(policyText('enforce'));
          return;
        case 'oversize.test':
          response.writeHead(200, { ...plain, 'content-length': Buffer.byteLength(padded) }).end(padded);
          return;
        case 'chunked.test':
          response.writeHead(200, plain);
          for (let offset = 0; offset < padded.length; offset += 4096) response.write(padded.slice(offset, offset + 4096));
          response.end();
          return;
        case 'slow.test':
          return; // never answers
        case 'dribble.test': {
          response.writeHead(200, plain);
          response.write('version: STSv1\r\n');
          const timer = setInterval(() => response.write('x-more: yes\r\n'), 100);
          dribbles.add(timer);
          response.on('close', () => clearInterval(timer));
          return;
        }
        case 'malformed.test':
          response.writeHead(200, plain).end('version: STSv1\nmode: enforce\nmx mx1.good.test\nmax_age: 86400\n');
          return;
        case 'notfound.test':
          response.writeHead(404, plain).end('not here\n');
          return;
        case 'rotate.test':
          response.writeHead(200, plain).end(rotatePolicy);
          return;
        default:
          response.writeHead(200, plain).end(policyText('enforce'));
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    port = (server.address() as AddressInfo).port;
    dns = await startDns(records({ id: 'one' }));
  });

  afterAll(async () => {
    for (const timer of dribbles) clearInterval(timer);
    server?.closeAllConnections();
    await new Promise((resolve) => (server === undefined ? resolve(undefined) : server.close(resolve)));
    await dns?.stop();
    if (dir !== undefined) await removeTempDir(dir);
  });

  function cache(options: Partial<MtaStsOptions> = {}): MtaStsCache {
    return new MtaStsCache({ resolver: dns.resolver(), trustedCa: [ca], httpsPort: port, timeoutMs: loadScaled(3_000), ...options });
  }

  /** The reason of a `temporary` outcome, failing the test for any other. */
  function temporaryReason(outcome: MtaStsOutcome): string {
    if (outcome.kind !== 'temporary') throw new Error(`expected temporary, got ${JSON.stringify(outcome)}`);
    return outcome.reason;
  }

  it('fetches a policy over HTTPS from a CA-signed server found through the test DNS', async () => {
    const outcome = await cache().policyFor('good.test');
    expect(outcome).toEqual({
      kind: 'policy',
      source: 'fetched',
      policy: { id: '20261122T0000', mode: 'enforce', mx: ['mx1.good.test'], maxAgeSeconds: 86400, ponyKeys: [] },
      reason: 'mta-sts good.test: fetched policy id 20261122T0000',
    });
    expect(requests).toContain('good.test');
  });

  it('refuses a server whose CA is not trusted', async () => {
    expect(temporaryReason(await cache({ trustedCa: [] }).policyFor('good.test'))).toMatch(
      /unable to verify the first certificate|UNABLE_TO_VERIFY_LEAF_SIGNATURE/,
    );
  });

  it('refuses a self-signed certificate for the right name', async () => {
    expect(temporaryReason(await cache().policyFor(SELF_SIGNED))).toMatch(/self-signed certificate|DEPTH_ZERO_SELF_SIGNED_CERT/);
  });

  it('refuses a trusted certificate for another name', async () => {
    expect(temporaryReason(await cache().policyFor(OTHER_NAME))).toMatch(
      /mta-sts\.othername\.test.*is not in the cert's altnames: DNS:mta-sts\.elsewhere\.test/,
    );
  });

  it('does not follow a redirect, even to a valid policy', async () => {
    const before = requests.filter((host) => host === 'good.test').length;
    expect(temporaryReason(await cache().policyFor('redirect.test'))).toBe(
      'mta-sts redirect.test: https://mta-sts.redirect.test:' + port + '/.well-known/mta-sts.txt: redirect (HTTP 301) not followed',
    );
    expect(requests.filter((host) => host === 'good.test')).toHaveLength(before);
  });

  it('refuses any status but 200, and any Content-Type but text/plain', async () => {
    expect(temporaryReason(await cache().policyFor('notfound.test'))).toMatch(/HTTP 404 \(expected 200\)$/);
    expect(temporaryReason(await cache().policyFor('wrongtype.test'))).toMatch(/Content-Type "text\/html" \(expected text\/plain\)$/);
    expect(temporaryReason(await cache().policyFor('nocontenttype.test'))).toMatch(/no Content-Type \(expected text\/plain\)$/);
  });

  it('refuses a body over 64 KiB, announced or streamed', async () => {
    expect(temporaryReason(await cache().policyFor('oversize.test'))).toMatch(/body of \d+ bytes announced \(limit 65536\)$/);
    expect(temporaryReason(await cache().policyFor('chunked.test'))).toMatch(/body larger than 65536 bytes$/);
  });

  it('gives up on a server that never answers, or dribbles its body, after the timeout for the whole fetch', async () => {
    for (const domain of ['slow.test', 'dribble.test']) {
      const started = performance.now();
      expect(temporaryReason(await cache({ timeoutMs: 700 }).policyFor(domain))).toMatch(/no complete answer within 700 ms$/);
      expect(performance.now() - started).toBeLessThan(loadScaled(2_500));
    }
  });

  it('names the malformed line of a policy file', async () => {
    expect(temporaryReason(await cache().policyFor('malformed.test'))).toBe(
      'mta-sts malformed.test: policy line 3: expected "key: value", got "mx mx1.good.test"',
    );
  });

  it('resolves mta-sts.<domain> through the injected resolver only', async () => {
    expect(temporaryReason(await cache().policyFor(NO_ADDRESS))).toMatch(
      /no address for mta-sts\.noaddress\.test \(A mta-sts\.noaddress\.test: ENOTFOUND; AAAA mta-sts\.noaddress\.test: ENOTFOUND\)/,
    );
  });

  it('has no policy with two v=STSv1 records, and fetches nothing', async () => {
    expect(await cache().policyFor('twotxt.test')).toEqual({
      kind: 'none',
      reason: 'mta-sts twotxt.test: 2 v=STSv1 records at _mta-sts.twotxt.test (exactly one allowed)',
    });
    expect(requests).not.toContain('twotxt.test');
  });

  it('refetches when the id changes and keeps the cached policy when the TXT record is stripped', async () => {
    const sts = cache();
    const fetches = (): number => requests.filter((host) => host === 'rotate.test').length;
    expect(await sts.policyFor('rotate.test')).toMatchObject({ kind: 'policy', source: 'fetched', policy: { id: 'one', mode: 'testing' } });
    expect(await sts.policyFor('rotate.test')).toMatchObject({ kind: 'policy', source: 'cached', policy: { id: 'one', mode: 'testing' } });
    expect(fetches()).toBe(1);

    rotatePolicy = policyText('enforce', '*.rotate.test');
    await dns.restart(records({ id: 'two' }));
    expect(await sts.policyFor('rotate.test')).toMatchObject({
      kind: 'policy',
      source: 'fetched',
      policy: { id: 'two', mode: 'enforce', mx: ['*.rotate.test'] },
    });
    expect(fetches()).toBe(2);

    await dns.restart(records(null));
    const stripped = await sts.policyFor('rotate.test');
    expect(stripped).toMatchObject({ kind: 'policy', source: 'cached', policy: { id: 'two', mode: 'enforce' } });
    expect(stripped.reason).toMatch(/TXT _mta-sts\.rotate\.test: ENOTFOUND; the cached policy applies until/);
    expect(fetches()).toBe(2);
    expect(await cache().policyFor('rotate.test')).toMatchObject({ kind: 'none' });
  });
});
