/**
 * Outbound delivery between real Postfix instances: Postfix A hands its mail to blackpony A,
 * which finds each domain's MX through dnsmasq and delivers through an XPONY tunnel (sealed) to
 * blackpony B in front of Postfix B, or with STARTTLS to a legacy Postfix.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fingerprint } from '../../src/crypto/fingerprint.js';
import { generateKeys, rotateKeys } from '../../src/crypto/keyfile.js';
import { createInboundServer } from '../../src/inbound/inbound-server.js';
import type { XponyHandshakeEvent } from '../../src/xpony/index.js';
import type { DeliveryRecord } from '../../src/outbound/transaction.js';
import { MtaStsCache } from '../../src/outbound/mta-sts.js';
import { NO_PINS, probe } from '../../src/outbound/probe.js';
import { makeTestCa, OPENSSL } from '../harness/certificates.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import type { PostfixInstance, QueuedMessage } from '../harness/postfix.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { loadScaled, waitFor } from '../harness/wait.js';
import { startRelay } from './xpony-fixtures.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { sharedMxPort, startBlackponySite, startLegacySite, type BlackponySite, type LegacySite } from './outbound-fixtures.js';
import { DnsStub } from '../../src/outbound/validated-dns.js';

const A = { domain: 'a.test', address: '127.0.0.1', mailbox: 'alice@a.test' };
const B = { domain: 'b.test', address: '127.0.0.2', mailbox: 'bob@b.test' };
const LEGACY = { domain: 'legacy.test', address: '127.0.0.3', mailbox: 'lee@legacy.test' };
/** Served by B's MX: a domain without a record (pinned on first contact), and one with a dead primary MX. */
const PINNED = 'bob@pinned.test';
const BACKUP = 'bob@backup.test';
const DEAD = 'nobody@dead.test';
const NOWHERE = '127.0.0.4';
/** Legacy domains served by the legacy MX, with MTA-STS policies in enforce mode. */
const STS_TRUSTED = 'sam@ststrust.test';
const STS_BADCERT = 'sam@stscert.test';
const STS_NOMX = 'sam@stsmx.test';
/**
 * MTA-STS enforce domains for which a DNS forger serves a `_pony` record naming B's key (B plays
 * the attacker's blackpony): stsforge.test's MX is forged to B's address too; stsreal.test's is
 * the real (legacy) MX.
 */
const STS_FORGED = 'sam@stsforge.test';
/** danefake.test's MX publishes TLSA; its _pony record and MX address are the forger's (B). */
const DANE_FORGED = 'dan@danefake.test';
const STS_REAL = 'sam@stsreal.test';
/**
 * MTA-STS enforce domains whose MX is B and whose policy file names XPONY keys (`pony-key`):
 * stspony.test names B's key (HTTPS evidence, no _pony record); stsother.test names another key,
 * while a forged _pony record names B's.
 */
const STS_PONY = 'sam@stspony.test';
const STS_OTHER = 'sam@stsother.test';
const stsPonyPolicy = (domain: string, key: Uint8Array): string =>
  `version: STSv1\r\nmode: enforce\r\nmx: mx.${domain}\r\nmax_age: 86400\r\npony-key: ${Buffer.from(key).toString('base64')}\r\n`;
const POLICIES: Record<string, string> = {
  'ststrust.test': 'version: STSv1\r\nmode: enforce\r\nmx: mx.ststrust.test\r\nmax_age: 86400\r\n',
  'stsforge.test': 'version: STSv1\r\nmode: enforce\r\nmx: mx.stsforge.test\r\nmax_age: 86400\r\n',
  'stsreal.test': 'version: STSv1\r\nmode: enforce\r\nmx: mx.stsreal.test\r\nmax_age: 86400\r\n',
  'stscert.test': 'version: STSv1\r\nmode: enforce\r\nmx: *.stscert.test\r\nmax_age: 86400\r\n',
  'stsmx.test': 'version: STSv1\r\nmode: enforce\r\nmx: mx.elsewhere.test\r\nmax_age: 86400\r\n',
};

function message(id: string, to: string): string {
  return [
    `From: Alice <${A.mailbox}>`,
    `To: ${to}`,
    `Subject: outbound ${id}`,
    'Date: Sun, 22 Nov 2026 00:00:00 +0000',
    `Message-ID: <${id}@a.test>`,
    '',
    `body of ${id}`,
    '.leading dot',
    '',
  ].join('\r\n');
}

describeWith([POSTFIX, ROOT, DNSMASQ, SWAKS, OPENSSL], 'outbound: Postfix -> blackpony -> XPONY or legacy MX', () => {
  let dns: TestDns;
  let a: BlackponySite;
  /** A sender whose Postfix speaks SMTP to blackpony instead of LMTP. */
  let aSmtp: BlackponySite;
  let b: BlackponySite;
  let legacy: LegacySite;
  let mxPort: number;
  let dir: string;
  let mtaSts: MtaStsCache;
  let caPem: string;

  beforeAll(async () => {
    mxPort = await sharedMxPort([B.address, LEGACY.address, '127.0.0.4']);
    // B's record is published once its keys exist: start DNS empty, then restart with records.
    dns = await startDns({});
    const resolver = () => dns.resolver();
    dir = await makeTempDir('outbound-delivery');
    const ca = await makeTestCa(dir);
    // The legacy MX's certificate names it and mx.ststrust.test, not mx.stscert.test.
    const certificate = await ca.issue('legacy', [`mx.${LEGACY.domain}`, 'mx.ststrust.test', 'mx.stsreal.test']);
    caPem = ca.pem;
    mtaSts = new MtaStsCache({ resolver: resolver(), fetchText: async (domain) => POLICIES[domain] ?? '' });
    b = await startBlackponySite({ ...B, mxPort, resolver, mailboxes: [B.mailbox, PINNED, BACKUP, STS_FORGED, STS_REAL, STS_PONY, STS_OTHER, DANE_FORGED] });
    POLICIES['stspony.test'] = stsPonyPolicy('stspony.test', b.keys.noise.publicKey);
    POLICIES['stsother.test'] = stsPonyPolicy('stsother.test', generateKeys().noise.publicKey);
    a = await startBlackponySite({
      ...A,
      address: '127.0.0.5',
      mxPort,
      resolver,
      mailboxes: [A.mailbox],
      mtaSts,
      trustedCa: [ca.pem],
      directDns: new DnsStub({ host: '127.0.0.1', port: dns.port }, 2_000),
    });
    aSmtp = await startBlackponySite({ ...A, address: '127.0.0.6', mxPort, resolver, mailboxes: [A.mailbox], lmtp: false });
    legacy = await startLegacySite({
      ...LEGACY,
      mxPort,
      mailboxes: [LEGACY.mailbox, STS_TRUSTED, STS_BADCERT, STS_NOMX, STS_FORGED, STS_REAL],
      tls: certificate,
    });
    await dns.restart({
      mx: [
        { domain: B.domain, host: `mx.${B.domain}`, preference: 10 },
        { domain: LEGACY.domain, host: `mx.${LEGACY.domain}`, preference: 10 },
        { domain: 'pinned.test', host: `mx.${B.domain}`, preference: 10 },
        { domain: 'backup.test', host: 'mx1.backup.test', preference: 10 },
        { domain: 'backup.test', host: `mx.${B.domain}`, preference: 20 },
        { domain: 'dead.test', host: 'mx.dead.test', preference: 10 },
        { domain: 'danefake.test', host: 'mx.danefake.test', preference: 10 },
        ...['ststrust', 'stscert', 'stsmx', 'stsforge', 'stsreal', 'stspony', 'stsother'].map((name) => ({
          domain: `${name}.test`,
          host: `mx.${name}.test`,
          preference: 10,
        })),
      ],
      a: [
        { host: `mx.${B.domain}`, address: B.address },
        { host: `mx.${LEGACY.domain}`, address: LEGACY.address },
        { host: 'mx1.backup.test', address: NOWHERE },
        { host: 'mx.dead.test', address: NOWHERE },
        ...['ststrust', 'stscert', 'stsmx', 'stsreal'].map((name) => ({ host: `mx.${name}.test`, address: LEGACY.address })),
        { host: 'mx.stsforge.test', address: B.address },
        { host: 'mx.stspony.test', address: B.address },
        { host: 'mx.stsother.test', address: B.address },
        { host: 'mx.danefake.test', address: B.address },
      ],
      tlsa: [{ host: 'mx.danefake.test', hex: `030101${'ab'.repeat(32)}` }],
      txt: [
        { name: `_pony.${B.domain}`, value: b.record('enforce') },
        ...Object.keys(POLICIES).map((domain) => ({ name: `_mta-sts.${domain}`, value: 'v=STSv1; id=1' })),
        { name: '_pony.stsforge.test', value: b.record('enforce') },
        { name: '_pony.stsreal.test', value: b.record('enforce') },
        { name: '_pony.stsother.test', value: b.record('enforce') },
        { name: '_pony.danefake.test', value: b.record('enforce') },
      ],
    });
  });

  afterAll(async () => {
    for (const site of [a, aSmtp, b]) {
      await site?.inbound.close();
      await site?.outbound.server.close();
    }
    await dns?.stop();
    if (dir !== undefined) await removeTempDir(dir);
  });

  it('delivers A -> B through a tunnel, sealed, and B shows it in the trace header', async () => {
    const sent = await runSwaks({ server: `127.0.0.1:${a.postfix.port}`, from: A.mailbox, to: B.mailbox, data: message('enc-1', B.mailbox) });
    expect(sent.exitCode, sent.transcript).toBe(0);
    const [delivered] = await b.postfix.waitForDelivery(B.mailbox, 1);
    const text = delivered!.bytes.toString('latin1');
    expect(text).toContain('Message-ID: <enc-1@a.test>');
    expect(text).toMatch(/X-Pony-Trace: .*via=xpony/);
    expect(text).toMatch(/sealed=yes/);
    expect(text).toContain('\n.leading dot\n');
    // Postfix B may store the message before blackpony A has heard B's 250: wait for A's record.
    const record = await recordFor(B.domain, (d) => d.outcome === 'delivered');
    expect(record).toMatchObject({ mode: 'xpony', sealed: true, recipients: 1 });
    expect(record.queueId).toMatch(/^[0-9A-Za-z]{6,}$/);
    // Pinned after success (trust on first use).
    expect((await a.outbound.pins.get(B.domain))?.keys).toHaveLength(1);
  });

  it('delivers A -> legacy with STARTTLS, unsealed', async () => {
    const sent = await runSwaks({ server: `127.0.0.1:${a.postfix.port}`, from: A.mailbox, to: LEGACY.mailbox, data: message('legacy-1', LEGACY.mailbox) });
    expect(sent.exitCode, sent.transcript).toBe(0);
    const [delivered] = await legacy.postfix.waitForDelivery(LEGACY.mailbox, 1);
    const text = delivered!.bytes.toString('latin1');
    expect(text).toContain('Message-ID: <legacy-1@a.test>');
    expect(text).not.toContain('X-Pony-Sealed');
    // Postfix's Received line on the legacy side says TLS was used.
    expect(text).toMatch(/with ESMTPS id/);
    expect(await recordFor(LEGACY.domain, (d) => d.outcome === 'delivered')).toMatchObject({ mode: 'starttls', sealed: false });
  });

  /** Puts a man in the middle on B's MX address; B's inbound moves behind it. Returns the undo. */
  /**
   * `sawInClear`: whether the attacker could read `text`: on the wire (strip-xpony), or at all,
   * once the sender finished a handshake with the attacker's key (swap-key).
   * `handshakes`: the outcome of each XPONY handshake the attacker's own server took part in.
   */
  async function middleman(
    kind: 'strip-xpony' | 'swap-key',
  ): Promise<{ sawInClear: (text: string) => boolean; handshakes: () => string[]; undo: () => Promise<void> }> {
    await b.stopInbound();
    const hidden = await b.startInbound({ host: '127.0.0.1', port: 0 });
    if (kind === 'strip-xpony') {
      const relay = await startRelay(
        hidden,
        { fromServer: (data) => Buffer.from(data.toString('latin1').replace(/250-([^\r\n]*)\r\n250 XPONY [^\r\n]*\r\n/, '250 $1\r\n'), 'latin1') },
        { listen: { host: B.address, port: mxPort } },
      );
      return {
        sawInClear: (text) => relay.connections.some((c) => Buffer.concat(c.toServer).toString('latin1').includes(text)),
        handshakes: () => [],
        undo: async () => {
          await relay.close();
          await b.stopInbound();
          await b.startInbound();
        },
      };
    }
    // The attacker's own blackpony, with its own keys, passing everything on to B's Postfix.
    const attacker = createInboundServer({
      keys: generateKeys(),
      hostName: `mx.${B.domain}`,
      postfix: { host: '127.0.0.1', port: b.listenerPort, timeoutMs: loadScaled(10_000) },
    });
    const outcomes: string[] = [];
    attacker.server.on('xpony-handshake', (event: XponyHandshakeEvent) => outcomes.push(event.outcome));
    await attacker.listen(mxPort, B.address);
    return {
      sawInClear: () => outcomes.includes('tunnel'),
      handshakes: () => [...outcomes],
      undo: async () => {
        await attacker.close();
        await b.stopInbound();
        await b.startInbound();
      },
    };
  }

  async function send(id: string, to: string | string[], postfix: PostfixInstance = a.postfix): Promise<void> {
    const recipients = typeof to === 'string' ? [to] : to;
    const sent = await runSwaks({ server: `127.0.0.1:${postfix.port}`, from: A.mailbox, to: recipients, data: message(id, recipients.join(', ')) });
    expect(sent.exitCode, sent.transcript).toBe(0);
  }

  async function count(postfix: PostfixInstance, mailbox: string, id: string): Promise<number> {
    return (await postfix.maildirMessages(mailbox)).filter((m) => m.bytes.includes(`<${id}@a.test>`)).length;
  }

  function recordFor(domain: string, predicate: (record: DeliveryRecord) => boolean): Promise<DeliveryRecord> {
    return waitFor(`a delivery record for ${domain}`, async () => a.outbound.deliveries.find((d) => d.domain === domain && predicate(d)), {
      diagnostics: async () =>
        `records: ${JSON.stringify(a.outbound.deliveries.filter((d) => d.domain === domain))}\n${(await a.postfix.readLog()).split('\n').slice(-15).join('\n')}`,
    });
  }

  it('enforce: when the MX stops offering XPONY the mail is deferred, kept in Postfix, and delivered once XPONY is back', async () => {
    const mitm = await middleman('strip-xpony');
    try {
      await send('strip-1', B.mailbox);
      const deferred = await recordFor(B.domain, (d) => d.outcome === 'deferred');
      expect(deferred.deferral).toBe('downgrade');
      // Alone: Postfix may still be removing the previous test's message when strip-1 is deferred.
      await a.postfix.waitForQueue('holds strip-1 alone', (q) => q.length === 1 && q[0]!.recipients.some((r) => r.address === B.mailbox));
      expect(mitm.sawInClear('strip-1')).toBe(false);
      expect(mitm.sawInClear('MAIL FROM')).toBe(false);
      expect(await count(b.postfix, B.mailbox, 'strip-1')).toBe(0);
    } finally {
      // A failure above must not leave the man in the middle in place for the tests after it.
      await mitm.undo();
    }
    await a.postfix.flush();
    await waitFor('strip-1 delivered', async () => ((await count(b.postfix, B.mailbox, 'strip-1')) === 1 ? true : undefined));
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
    expect(await count(b.postfix, B.mailbox, 'strip-1')).toBe(1);
  });

  it('a pinned domain behind a man in the middle who swaps keys is deferred, nothing reaches the mailbox', async () => {
    await send('pin-1', PINNED);
    await waitFor('pin-1 delivered', async () => ((await count(b.postfix, PINNED, 'pin-1')) === 1 ? true : undefined));
    await recordFor('pinned.test', (d) => d.outcome === 'delivered');
    expect((await a.outbound.pins.get('pinned.test'))?.keys).toHaveLength(1);

    const mitm = await middleman('swap-key');
    try {
      await send('pin-2', PINNED);
      const deferred = await recordFor('pinned.test', (d) => d.outcome === 'deferred');
      expect(deferred.deferral).toBe('key-mismatch');
      expect(deferred.policy).toMatch(/enforce \(pin\)/);
      // The sender met the attacker's key and cancelled before sending anything through it.
      expect(mitm.handshakes()).not.toHaveLength(0);
      expect(mitm.sawInClear('pin-2')).toBe(false);
      await a.postfix.waitForQueue('holds pin-2', (q) => q.length === 1);
      expect(await count(b.postfix, PINNED, 'pin-2')).toBe(0);
    } finally {
      await mitm.undo();
    }
    await a.postfix.flush();
    await waitFor('pin-2 delivered', async () => ((await count(b.postfix, PINNED, 'pin-2')) === 1 ? true : undefined));
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
  });

  it('a pinned domain whose MX rotated its key: delivered when the pinned key endorses the new one, deferred when nothing does', async () => {
    // The previous test pinned B's key for pinned.test, which has no record (so the pin decides).
    expect((await a.outbound.pins.get('pinned.test'))?.keys.map((k) => k.key)).toEqual([b.keys.noise.publicKey]);
    const rotated = rotateKeys(b.keys);
    const since = (domain: string, first: number, outcome: string) =>
      recordFor(domain, (d) => a.outbound.deliveries.indexOf(d) >= first && d.outcome === outcome);
    try {
      await b.stopInbound();
      await b.startInbound(undefined, rotated);
      let first = a.outbound.deliveries.length;
      await send('rotate-1', PINNED);
      await waitFor('rotate-1 delivered', async () => ((await count(b.postfix, PINNED, 'rotate-1')) === 1 ? true : undefined));
      const delivered = await since('pinned.test', first, 'delivered');
      expect(delivered).toMatchObject({ mode: 'xpony', sealed: true, fingerprint: fingerprint(rotated.noise.publicKey) });
      expect(delivered.policy).toMatch(/enforce \(pin\)/);
      expect((await a.outbound.pins.get('pinned.test'))?.keys.map((k) => k.key)).toEqual([b.keys.noise.publicKey, rotated.noise.publicKey]);

      // Another new key that no pinned key vouches for (a lost key file, or an attacker's key).
      await b.stopInbound();
      await b.startInbound(undefined, generateKeys());
      first = a.outbound.deliveries.length;
      await send('rotate-2', PINNED);
      expect((await since('pinned.test', first, 'deferred')).deferral).toBe('key-mismatch');
      await a.postfix.waitForQueue('holds rotate-2', (q) => q.length === 1);
      expect(await count(b.postfix, PINNED, 'rotate-2')).toBe(0);
    } finally {
      await b.stopInbound();
      await b.startInbound();
    }
    await a.postfix.flush();
    await waitFor('rotate-2 delivered', async () => ((await count(b.postfix, PINNED, 'rotate-2')) === 1 ? true : undefined));
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
  });

  it('one message to three domains, one unreachable: the other two get it once, only the third stays queued', async () => {
    await send('three-1', [B.mailbox, LEGACY.mailbox, DEAD]);
    await waitFor('three-1 at B and legacy', async () =>
      (await count(b.postfix, B.mailbox, 'three-1')) === 1 && (await count(legacy.postfix, LEGACY.mailbox, 'three-1')) === 1 ? true : undefined,
    );
    const queue = await a.postfix.waitForQueue('holds three-1 for dead.test', (q) => q.length === 1 && q[0]!.recipients.length === 1);
    expect(queue[0]!.recipients.map((r) => r.address)).toEqual([DEAD]);
    // Retries of the third domain do not deliver the message again to the first two.
    await a.postfix.flush();
    await recordFor('dead.test', (d) => d.outcome === 'deferred');
    expect(await count(b.postfix, B.mailbox, 'three-1')).toBe(1);
    expect(await count(legacy.postfix, LEGACY.mailbox, 'three-1')).toBe(1);
  });

  it('when the primary MX is down the backup MX gets the mail', async () => {
    await send('backup-1', BACKUP);
    await waitFor('backup-1 delivered', async () => ((await count(b.postfix, BACKUP, 'backup-1')) === 1 ? true : undefined));
    const record = await recordFor('backup.test', (d) => d.outcome === 'delivered');
    expect(record.peer).toContain(B.address);
    expect(record.attempts?.join(' ')).toContain(NOWHERE);
  });

  it('over SMTP with the deploy snippet (one recipient per transaction), a message to two domains is delivered once to each', async () => {
    await send('smtp-1', [B.mailbox, LEGACY.mailbox], aSmtp.postfix);
    await waitFor(
      'smtp-1 at B and legacy',
      async () => ((await count(b.postfix, B.mailbox, 'smtp-1')) === 1 && (await count(legacy.postfix, LEGACY.mailbox, 'smtp-1')) === 1 ? true : undefined),
      {
        diagnostics: async () => `${JSON.stringify(await aSmtp.postfix.queue())}\n${(await aSmtp.postfix.readLog()).split('\n').slice(-30).join('\n')}`,
      },
    );
    await aSmtp.postfix.waitForQueue('empty', (q) => q.length === 0);
    expect(await count(b.postfix, B.mailbox, 'smtp-1')).toBe(1);
    expect(await count(legacy.postfix, LEGACY.mailbox, 'smtp-1')).toBe(1);
  });

  it('MTA-STS enforce: delivered only over verified TLS to an MX the policy names; otherwise deferred', async () => {
    await send('sts-1', [STS_TRUSTED, STS_BADCERT, STS_NOMX]);
    await waitFor('sts-1 at ststrust.test', async () => ((await count(legacy.postfix, STS_TRUSTED, 'sts-1')) === 1 ? true : undefined));
    expect(await recordFor('ststrust.test', (d) => d.outcome === 'delivered')).toMatchObject({ mode: 'starttls' });
    const badCert = await recordFor('stscert.test', (d) => d.outcome === 'deferred');
    expect(badCert.deferral).toBe('mta-sts');
    expect(badCert.reply).toMatch(/TLS/);
    const noMx = await recordFor('stsmx.test', (d) => d.outcome === 'deferred');
    expect(noMx).toMatchObject({ deferral: 'mta-sts' });
    expect(noMx.reply).toMatch(/no MX host of stsmx\.test matches/);
    const holding = (q: QueuedMessage[]) => q.find((m) => m.recipients.some((r) => r.address === STS_BADCERT));
    const queue = await a.postfix.waitForQueue('holds sts-1 for two domains', (q) => holding(q)?.recipients.length === 2);
    expect(
      holding(queue)!
        .recipients.map((r) => r.address)
        .sort(),
    ).toEqual([STS_BADCERT, STS_NOMX]);
    expect(await count(legacy.postfix, STS_BADCERT, 'sts-1')).toBe(0);
    expect(await count(legacy.postfix, STS_NOMX, 'sts-1')).toBe(0);
  });

  it('a forged _pony record never outranks MTA-STS enforce: no tunnel to the key it names; verified TLS to the policy MX, or the mail waits', async () => {
    await send('sts-forged', [STS_FORGED, STS_REAL]);
    // The real MX, which the policy names and whose certificate verifies: over STARTTLS, not to the forger's key.
    await waitFor('sts-forged at stsreal.test', async () => ((await count(legacy.postfix, STS_REAL, 'sts-forged')) === 1 ? true : undefined));
    expect(await recordFor('stsreal.test', (d) => d.outcome === 'delivered')).toMatchObject({ mode: 'starttls' });
    // The forged MX offers XPONY with the forged record's key and no verifiable TLS: deferred.
    expect(await recordFor('stsforge.test', (d) => d.outcome === 'deferred')).toMatchObject({ deferral: 'mta-sts' });
    await a.postfix.waitForQueue('holds sts-forged for stsforge.test', (q) => q.some((m) => m.recipients.some((r) => r.address === STS_FORGED)));
    expect(await count(b.postfix, STS_FORGED, 'sts-forged')).toBe(0);
    expect(await count(b.postfix, STS_REAL, 'sts-forged')).toBe(0);
    // Nothing the forger named was pinned.
    expect(await a.outbound.pins.get('stsforge.test')).toBeNull();
    expect(await a.outbound.pins.get('stsreal.test')).toBeNull();
  });

  it('keys in the MTA-STS policy file (HTTPS) vouch for a tunnel; a record naming a key the policy file does not is no evidence', async () => {
    await send('sts-pony', [STS_PONY, STS_OTHER]);
    await waitFor('sts-pony at stspony.test', async () => ((await count(b.postfix, STS_PONY, 'sts-pony')) === 1 ? true : undefined));
    expect(await recordFor('stspony.test', (d) => d.outcome === 'delivered')).toMatchObject({ mode: 'xpony', sealed: true });
    expect((await a.outbound.pins.get('stspony.test'))?.keys.map((k) => k.key)).toEqual([b.keys.noise.publicKey]);
    expect(await recordFor('stsother.test', (d) => d.outcome === 'deferred')).toMatchObject({
      deferral: expect.stringMatching(/key-mismatch|mta-sts/) as string,
    });
    expect(await count(b.postfix, STS_OTHER, 'sts-pony')).toBe(0);
    expect(await a.outbound.pins.get('stsother.test')).toBeNull();
  });

  it('a forged _pony record for a domain whose MX publishes TLSA (DANE) does not pull its mail into a tunnel, even unvalidated: deferred, nothing pinned', async () => {
    // The forger (B's blackpony) answers at the MX address; the sender has no validating resolver, only the TLSA records it can see.
    await send('dane-forged', DANE_FORGED);
    const deferred = await recordFor('danefake.test', (d) => d.outcome === 'deferred');
    expect(deferred.deferral).toBe('dns');
    expect(deferred.reply).toMatch(/DANE: mx\.danefake\.test has TLSA records, which blackpony cannot validate/);
    await a.postfix.waitForQueue('holds dane-forged', (q) => q.some((m) => m.recipients.some((r) => r.address === DANE_FORGED)));
    expect(await count(b.postfix, DANE_FORGED, 'dane-forged')).toBe(0);
    expect(await a.outbound.pins.get('danefake.test')).toBeNull();
  });

  it('probe names the evidence for each server key: the MTA-STS policy file (HTTPS) for the key it lists, an unsigned record for a key only the record names', async () => {
    const options = {
      keys: generateKeys(),
      hostName: 'probe.client.test',
      routing: { resolver: dns.resolver(), mxPort },
      policy: { resolver: dns.resolver(), pins: NO_PINS },
      mtaSts,
      trustedCa: [caPem],
      connectTimeoutMs: loadScaled(3_000),
      commandTimeoutMs: loadScaled(10_000),
    };
    const vouched = await probe('stspony.test', options);
    expect(vouched.addresses.map((address) => address.xpony?.evidence)).toEqual([['https']]);
    const recordOnly = await probe('stsother.test', options);
    expect(recordOnly.addresses.map((address) => address.xpony?.evidence)).toEqual([['unsigned-record']]);
    expect(recordOnly.addresses[0]?.xpony?.acceptedByPolicy).toBe(false);
  });
});
