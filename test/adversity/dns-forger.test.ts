/**
 * Adversity: a DNS forger against each kind of evidence for a domain's key (issue 16's matrix).
 *
 * The world: a real receiving blackpony + Postfix (B) behind each row's MX, or a legacy Postfix
 * with a certificate from the test CA for a domain that never ran blackpony; MTA-STS policy files
 * over HTTPS with that CA; dnsmasq serving the world's DNS, and nsd + a validating unbound serving
 * the DNSSEC-signed zone signed.test. The attacker: a second dnsmasq that answers the senders
 * instead (their outbound.resolver), naming the forger's key in `_pony` records and, in most
 * rows, the forger's address for the MX host; and the forger itself, a blackpony + Postfix with
 * its own keys, where any plaintext or sealed message that reached it would land.
 *
 * Two senders (blackpony + Postfix): one without a validating resolver, one with the validating
 * unbound (the DNSSEC rows). Before the forgery starts, each sender learns what it would have
 * learnt from the real world: the pins, and the MTA-STS policies (cached, as RFC 8461 has them).
 * Then one message per row goes out at once, and each row checks: the forger received nothing
 * (no message, no finished handshake with its key), the sender's pins never gained its key, and
 * the message was delivered byte for byte to the real MX or is deferred in the sender's Postfix
 * queue, with a log line naming the evidence the sender had.
 *
 * Not a row: a full forgery (record and MX address) at first contact for a domain with nothing
 * but an unsigned record and no MTA-STS. Nothing then tells the real key from the forger's: the
 * README's threat model names that limit ("first contact"), and DNSSEC, HTTPS or a pin lifts it.
 */
import { Resolver } from 'node:dns/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveredBodySha256, deliveredId, type TestMessage } from '../../scripts/adversity-messages.js';
import { generateKeys } from '../../src/crypto/keyfile.js';
import type { PonyPolicy } from '../../src/crypto/pony-record.js';
import { includesKey } from '../../src/outbound/policy.js';
import { MtaStsCache } from '../../src/outbound/mta-sts.js';
import type { DeferralReason } from '../../src/outbound/dial.js';
import { ValidatingResolver } from '../../src/outbound/validated-dns.js';
import { connectXpony, type XponyHandshakeEvent } from '../../src/xpony/index.js';
import { EVIDENCE_KEYWORD } from '../../src/xpony/key-evidence.js';
import { SmtpClient } from '../../src/smtp/smtp-client.js';
import { captureLog, type CapturedLog } from '../harness/captured-log.js';
import { makeTestCa, OPENSSL } from '../harness/certificates.js';
import { LDNS_KEYGEN, LDNS_SIGNZONE, NSD, SIGNED_ZONE, startDnssec, UNBOUND, type TestDnssec } from '../harness/dnssec.js';
import { startDns, type DnsRecords, type TestDns } from '../harness/dnsmasq.js';
import { startMtaStsServer, type MtaStsServer } from '../harness/mta-sts-server.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { loadScaled, waitFor } from '../harness/wait.js';
import { ponyRecordFor, sharedMxPort, startBlackponySite, startLegacySite, type BlackponySite, type LegacySite } from '../integration/outbound-fixtures.js';
import { holdDeferred, sendMessage } from './fixtures.js';

const SENDER = { domain: 'a.test', address: '127.0.0.5', mailbox: 'alice@a.test' };
const VALIDATING_SENDER = { domain: 'v.test', address: '127.0.0.6', mailbox: 'val@v.test' };
const REAL = { domain: 'b.test', address: '127.0.0.2' };
const LEGACY = { domain: 'legacy.test', address: '127.0.0.3' };
const FORGER = { domain: 'forger.test', address: '127.0.0.9' };

interface Row {
  domain: string;
  /** What the sender knows of the real key before the forgery. none: the domain never ran blackpony. */
  evidence: 'pin' | 'https' | 'dnssec' | 'unsigned record' | 'none';
  /** The domain's MTA-STS policy (cached by the sender), if any; https rows list the real key in it (`pony-key`). */
  mtaSts: 'enforce' | 'testing' | null;
  /** The real `_pony` record's policy; null: none (the domain never ran blackpony). */
  record: PonyPolicy | null;
  /**
   * What the forger serves the sender: a `_pony` record naming its own key (p=enforce); +mx: and
   * its own address for the MX host; +validating: and that record to the validating resolver too
   * (unsigned inside the signed zone).
   */
  forger: 'record' | 'record+mx' | 'record+mx+validating';
  expected: { delivered: 'xpony' | 'starttls' } | { deferred: DeferralReason };
  /** The evidence the sender's log line names (`policy`: mode and source); absent where no policy could be made. */
  policy?: string;
  /** The warning that stronger evidence set the forged record's key aside, naming that evidence; absent: the forged record is not seen as one (DNSSEC) or is all there is. */
  warning?: RegExp;
}

const BY_PIN = /^policy: \S+: the _pony record \(unsigned DNS\) names 1 key\(s\) that the pin does not vouch for/;
const BY_HTTPS = /^policy: \S+: the _pony record \(unsigned DNS\) names 1 key\(s\) that the MTA-STS policy \(HTTPS\) does not vouch for/;
const BY_MTA_STS = /^policy: \S+: the _pony record \(unsigned DNS\) names 1 key\(s\) that the MTA-STS enforce policy does not vouch for: no tunnel/;

const ROWS: Row[] = [
  {
    domain: 'pin.test',
    evidence: 'pin',
    mtaSts: null,
    record: 'enforce',
    forger: 'record+mx',
    expected: { deferred: 'key-mismatch' },
    policy: 'enforce (pin)',
    warning: BY_PIN,
  },
  {
    domain: 'pin-kept.test',
    evidence: 'pin',
    mtaSts: null,
    record: 'enforce',
    forger: 'record',
    expected: { delivered: 'xpony' },
    policy: 'enforce (pin)',
    warning: BY_PIN,
  },
  // The issue's second variant: p=testing with the real key pinned, MTA-STS enforce.
  {
    domain: 'pin-sts.test',
    evidence: 'pin',
    mtaSts: 'enforce',
    record: 'testing',
    forger: 'record+mx',
    expected: { deferred: 'key-mismatch' },
    policy: 'enforce (pin)',
    warning: BY_PIN,
  },
  {
    domain: 'https-sts.test',
    evidence: 'https',
    mtaSts: 'enforce',
    record: 'enforce',
    forger: 'record+mx',
    expected: { deferred: 'key-mismatch' },
    policy: 'enforce (https)',
    warning: BY_HTTPS,
  },
  // Keys over HTTPS hold under an MTA-STS policy in testing mode too.
  {
    domain: 'https-testing.test',
    evidence: 'https',
    mtaSts: 'testing',
    record: 'enforce',
    forger: 'record+mx',
    expected: { deferred: 'key-mismatch' },
    policy: 'enforce (https)',
    warning: BY_HTTPS,
  },
  {
    domain: 'https-kept.test',
    evidence: 'https',
    mtaSts: 'enforce',
    record: 'enforce',
    forger: 'record',
    expected: { delivered: 'xpony' },
    policy: 'enforce (https)',
    warning: BY_HTTPS,
  },
  {
    domain: `dnssec.${SIGNED_ZONE}`,
    evidence: 'dnssec',
    mtaSts: null,
    record: 'enforce',
    forger: 'record+mx',
    expected: { deferred: 'key-mismatch' },
    policy: 'enforce (dnssec)',
  },
  {
    domain: `dnssec-sts.${SIGNED_ZONE}`,
    evidence: 'dnssec',
    mtaSts: 'enforce',
    record: 'enforce',
    forger: 'record+mx',
    expected: { deferred: 'key-mismatch' },
    policy: 'enforce (dnssec)',
  },
  {
    domain: `dnssec-kept.${SIGNED_ZONE}`,
    evidence: 'dnssec',
    mtaSts: null,
    record: 'enforce',
    forger: 'record',
    expected: { delivered: 'xpony' },
    policy: 'enforce (dnssec)',
  },
  // The forged record fails validation: a failed lookup, which waits as the transport lookup does.
  { domain: `bogus.${SIGNED_ZONE}`, evidence: 'dnssec', mtaSts: null, record: 'enforce', forger: 'record+mx+validating', expected: { deferred: 'dns' } },
  // The issue's first and third variants: an unsigned record (p=enforce; p=testing, no pin) beside MTA-STS enforce.
  {
    domain: 'record-sts.test',
    evidence: 'unsigned record',
    mtaSts: 'enforce',
    record: 'enforce',
    forger: 'record+mx',
    expected: { deferred: 'mta-sts' },
    policy: 'enforce (record)',
    warning: BY_MTA_STS,
  },
  {
    domain: 'testing-sts.test',
    evidence: 'unsigned record',
    mtaSts: 'enforce',
    record: 'testing',
    forger: 'record+mx',
    expected: { deferred: 'mta-sts' },
    policy: 'enforce (record)',
    warning: BY_MTA_STS,
  },
  {
    domain: 'record-sts-kept.test',
    evidence: 'unsigned record',
    mtaSts: 'enforce',
    record: 'enforce',
    forger: 'record',
    expected: { delivered: 'starttls' },
    policy: 'enforce (record)',
    warning: BY_MTA_STS,
  },
  // Nothing but the unsigned record: the forged one is believed, so the real MX's key is refused; the forger's MX is not asked.
  {
    domain: 'record-kept.test',
    evidence: 'unsigned record',
    mtaSts: null,
    record: 'enforce',
    forger: 'record',
    expected: { deferred: 'key-mismatch' },
    policy: 'enforce (record)',
  },
  // The issue's fourth variant: a domain with MTA-STS enforce that never ran blackpony.
  {
    domain: 'sts-only.test',
    evidence: 'none',
    mtaSts: 'enforce',
    record: null,
    forger: 'record+mx',
    expected: { deferred: 'mta-sts' },
    policy: 'enforce (record)',
    warning: BY_MTA_STS,
  },
  {
    domain: 'sts-only-kept.test',
    evidence: 'none',
    mtaSts: 'enforce',
    record: null,
    forger: 'record',
    expected: { delivered: 'starttls' },
    policy: 'enforce (record)',
    warning: BY_MTA_STS,
  },
];

const recipient = (row: Row): string => `rcpt@${row.domain}`;
const mxHost = (row: Row): string => `mx.${row.domain}`;
const realAddress = (row: Row): string => (row.record === null ? LEGACY.address : REAL.address);
const validates = (row: Row): boolean => row.evidence === 'dnssec';
const rowsWhere = (predicate: (row: Row) => boolean): string[] => ROWS.filter(predicate).map(recipient);
/** The TXT record that announces an MTA-STS policy; its id never changes here. */
const STS_ID = 'v=STSv1; id=20261205';

describeWith(
  [POSTFIX, ROOT, DNSMASQ, SWAKS, OPENSSL, NSD, UNBOUND, LDNS_KEYGEN, LDNS_SIGNZONE],
  'adversity: a DNS forger against each kind of evidence for the real key',
  () => {
    let dir: string;
    let world: TestDns;
    let forgerDns: TestDns;
    let dnssec: TestDnssec;
    let policyServer: MtaStsServer;
    let real: BlackponySite;
    let legacy: LegacySite;
    let forger: BlackponySite;
    let sender: BlackponySite;
    let validatingSender: BlackponySite;
    const logs = new Map<BlackponySite, CapturedLog>();
    /** Each row's message, sent once the forger answers the senders. */
    const sent = new Map<string, TestMessage>();
    const forgerHandshakes: XponyHandshakeEvent[] = [];
    const forgerKeys = generateKeys();
    let mxPort: number;

    const senderOf = (row: Row): BlackponySite => (validates(row) ? validatingSender : sender);

    /** The real world's DNS (forged: false) or what the forger answers the senders (true). */
    function records(forged: boolean): DnsRecords {
      const forgedRecord = ponyRecordFor(forgerKeys, 'enforce');
      return {
        mx: ROWS.map((row) => ({ domain: row.domain, host: mxHost(row), preference: 10 })),
        a: [
          ...ROWS.map((row) => ({ host: mxHost(row), address: forged && row.forger !== 'record' ? FORGER.address : realAddress(row) })),
          ...ROWS.filter((row) => row.mtaSts !== null).map((row) => ({ host: `mta-sts.${row.domain}`, address: '127.0.0.1' })),
        ],
        txt: [
          ...ROWS.flatMap((row) =>
            forged
              ? [{ name: `_pony.${row.domain}`, value: forgedRecord }]
              : row.record === null
                ? []
                : [{ name: `_pony.${row.domain}`, value: real.record(row.record) }],
          ),
          ...ROWS.filter((row) => row.mtaSts !== null).map((row) => ({ name: `_mta-sts.${row.domain}`, value: STS_ID })),
        ],
      };
    }

    function policyFile(row: Row): string {
      const key = row.evidence === 'https' ? `pony-key: ${Buffer.from(real.keys.noise.publicKey).toString('base64')}\r\n` : '';
      return `version: STSv1\r\nmode: ${row.mtaSts}\r\nmx: ${mxHost(row)}\r\nmax_age: 86400\r\n${key}`;
    }

    /**
     * signed.test as nsd serves it to the validating resolver: the DNSSEC rows' real records,
     * signed; the forger's, added unsigned. (MTA-STS and the MX lookups go through the plain resolver.)
     */
    function signedZone(): { signed: string[]; forged: string[] } {
      const relative = (row: Row): string => row.domain.slice(0, -(SIGNED_ZONE.length + 1));
      const quoted = (record: string): string => `"${record}"`;
      const rows = ROWS.filter(validates);
      return {
        signed: rows.flatMap((row) => [
          `${relative(row)} IN MX 10 mx.${relative(row)}`,
          `mx.${relative(row)} IN A ${realAddress(row)}`,
          `_pony.${relative(row)} IN TXT ${quoted(real.record(row.record!))}`,
        ]),
        forged: rows
          .filter((row) => row.forger === 'record+mx+validating')
          .map((row) => `_pony.${relative(row)} IN TXT ${quoted(ponyRecordFor(forgerKeys, 'enforce'))}`),
      };
    }

    beforeAll(async () => {
      dir = await makeTempDir('dns-forger');
      mxPort = await sharedMxPort([REAL.address, LEGACY.address, FORGER.address, SENDER.address, VALIDATING_SENDER.address]);
      const ca = await makeTestCa(dir);
      const realMxNames = ROWS.filter((row) => row.record !== null).map(mxHost);
      const legacyMxNames = ROWS.filter((row) => row.record === null).map(mxHost);
      const policies: Record<string, string> = {};
      policyServer = await startMtaStsServer(
        await ca.issue(
          'mta-sts',
          ROWS.filter((row) => row.mtaSts !== null).map((row) => `mta-sts.${row.domain}`),
        ),
        policies,
      );

      [world, forgerDns] = await Promise.all([startDns({}), startDns({})]);
      // The senders' resolver: the world's DNS until the forgery starts, then the forger's.
      const senderDns = new Resolver({ timeout: loadScaled(2_000), tries: 1 });
      senderDns.setServers([`127.0.0.1:${world.port}`]);
      const resolver = () => senderDns;
      const policyCache = () => new MtaStsCache({ resolver: senderDns, trustedCa: [ca.pem], httpsPort: policyServer.port });
      const [senderPolicies, validatingPolicies] = [policyCache(), policyCache()];
      const [senderLog, validatingLog] = [captureLog(), captureLog()];
      const [realTls, legacyTls, forgerTls] = [
        await ca.issue('real', realMxNames),
        await ca.issue('legacy', legacyMxNames),
        await ca.issue('forger', [`mx.${FORGER.domain}`]),
      ];

      // The real receiver first: its keys go into the signed zone and the policy files.
      real = await startBlackponySite({ ...REAL, mxPort, resolver: () => world.resolver(), mailboxes: rowsWhere((row) => row.record !== null), tls: realTls });
      for (const row of ROWS) if (row.mtaSts !== null) policies[row.domain] = policyFile(row);
      [legacy, forger, dnssec, sender] = await Promise.all([
        startLegacySite({ ...LEGACY, mxPort, mailboxes: rowsWhere((row) => row.record === null), tls: legacyTls }),
        // The forger's certificate is from the same CA, but for its own name: valid, just not for the MX it poses as.
        startBlackponySite({ ...FORGER, keys: forgerKeys, mxPort, resolver: () => forgerDns.resolver(), mailboxes: ROWS.map(recipient), tls: forgerTls }),
        startDnssec(signedZone()),
        startBlackponySite({ ...SENDER, mxPort, resolver, mailboxes: [SENDER.mailbox], mtaSts: senderPolicies, trustedCa: [ca.pem], logger: senderLog.logger }),
      ]);
      forger.inbound.server.on('xpony-handshake', (event: XponyHandshakeEvent) => forgerHandshakes.push(event));
      validatingSender = await startBlackponySite({
        ...VALIDATING_SENDER,
        mxPort,
        resolver,
        mailboxes: [VALIDATING_SENDER.mailbox],
        mtaSts: validatingPolicies,
        trustedCa: [ca.pem],
        validating: new ValidatingResolver(dnssec.resolver, 5_000),
        logger: validatingLog.logger,
      });
      logs.set(sender, senderLog);
      logs.set(validatingSender, validatingLog);
      // One delivery attempt per row: deferred mail waits for the test's end, not Postfix's one-second retries.
      await Promise.all([holdDeferred(sender.postfix), holdDeferred(validatingSender.postfix)]);

      // What the senders learnt before the forgery: the pins, and each MTA-STS policy.
      await world.restart(records(false));
      await forgerDns.restart(records(true));
      for (const row of ROWS) {
        if (row.evidence === 'pin') await senderOf(row).outbound.pins.pin(row.domain, real.keys.noise.publicKey, 30);
        if (row.mtaSts !== null) expect((await (validates(row) ? validatingPolicies : senderPolicies).policyFor(row.domain)).kind, row.domain).toBe('policy');
      }
      senderDns.setServers([`127.0.0.1:${forgerDns.port}`]);

      await Promise.all(
        ROWS.map(async (row) => {
          const from = validates(row) ? VALIDATING_SENDER.mailbox : SENDER.mailbox;
          sent.set(row.domain, await sendMessage(senderOf(row).postfix, row.domain.replace(/\W/g, '-'), from, [recipient(row)]));
        }),
      );
    });

    afterAll(async () => {
      for (const site of [sender, validatingSender, real, forger]) {
        await site?.inbound.close();
        await site?.outbound.server.close();
        await site?.postfix.stop();
      }
      await legacy?.postfix.stop();
      await policyServer?.close();
      await dnssec?.stop();
      await world?.stop();
      await forgerDns?.stop();
      if (dir !== undefined) await removeTempDir(dir);
    });

    for (const row of ROWS) {
      const outcome = 'delivered' in row.expected ? `delivered to the real MX over ${row.expected.delivered}` : `deferred (${row.expected.deferred})`;
      it(`${row.domain}: ${row.evidence}, MTA-STS ${row.mtaSts ?? 'none'}, forger serves ${row.forger}: ${outcome}, nothing to the forger`, async () => {
        const from = senderOf(row);
        const message = sent.get(row.domain)!;
        const delivery = await waitFor(`the delivery record for ${row.domain}`, () => from.outbound.deliveries.find((d) => d.domain === row.domain), {
          diagnostics: async () => (await from.postfix.readLog()).split('\n').slice(-20).join('\n'),
        });
        const diagnosis = JSON.stringify(delivery);

        if ('delivered' in row.expected) {
          expect(delivery, diagnosis).toMatchObject({ outcome: 'delivered', mode: row.expected.delivered, sealed: row.expected.delivered === 'xpony' });
          expect(delivery.peer, diagnosis).toContain(realAddress(row));
          const mailbox = row.record === null ? legacy.postfix : real.postfix;
          const [arrived] = await mailbox.waitForDelivery(recipient(row), 1);
          expect(deliveredId(arrived!.bytes)).toBe(message.id);
          expect(deliveredBodySha256(arrived!.bytes)).toBe(message.bodySha256);
          const header = message.text.slice(0, message.text.indexOf('\r\n\r\n')).replace(/\r\n/g, '\n');
          expect(arrived!.bytes.toString('latin1')).toContain(header);
          // The receiver's trace names the evidence the sender had for its key (XPONY-EVIDENCE); over STARTTLS there is none to name.
          const trace = /^X-Pony-Trace: [^\n]*\n\t[^\n]*/m.exec(arrived!.bytes.toString('latin1'))?.[0] ?? '';
          if (row.expected.delivered === 'xpony') expect(trace).toContain(`evidence=${row.evidence};`);
          else expect(trace).not.toContain('evidence=');
        } else {
          expect(delivery, diagnosis).toMatchObject({ outcome: 'deferred', deferral: row.expected.deferred });
          expect(delivery.reply, diagnosis).toMatch(/^4/);
          await from.postfix.waitForQueue(`holds ${recipient(row)}`, (queue) => queue.some((m) => m.recipients.some((r) => r.address === recipient(row))));
        }
        // A warning (deferred) or the delivery's own line names the evidence the sender had.
        const line = logs
          .get(from)!
          .lines(delivery.outcome === 'delivered' ? 'info' : 'warn')
          .find((entry) => entry.domain === row.domain && String(entry.msg).startsWith('delivery '));
        expect(line, diagnosis).toBeDefined();
        if (row.policy !== undefined) expect(line!.policy).toBe(row.policy);
        else expect(String(line!.reply)).toMatch(/_pony lookup failed/);
        const warnings = logs
          .get(from)!
          .lines('warn')
          .filter((entry) => entry.domain === row.domain && String(entry.msg).startsWith('policy:'));
        if (row.warning === undefined) {
          expect(warnings).toEqual([]);
        } else {
          expect(warnings.map((entry) => String(entry.msg))).toEqual([expect.stringMatching(row.warning)]);
          expect(warnings[0]!.evidence).toBe(row.policy!.replace(/^\w+ \((.*)\)$/, '$1'));
        }

        // Nothing for the forger: no message in its Postfix, no pin of its key.
        expect((await forger.postfix.maildirMessages(recipient(row))).length).toBe(0);
        const pinned = (await from.outbound.pins.get(row.domain))?.keys.map((k) => k.key) ?? [];
        expect(includesKey(pinned, forgerKeys.noise.publicKey)).toBe(false);
        if (row.evidence === 'pin') expect(pinned).toEqual([real.keys.noise.publicKey]);
      });
    }

    it('the real receiver refuses an XPONY-EVIDENCE value that is not defined, and offers the keyword only inside the tunnel', async () => {
      const opened = await connectXpony({ host: REAL.address, port: mxPort, localHostName: 'hand.a.test', keys: generateKeys() });
      if (opened.kind !== 'tunnel') throw new Error('the real receiver offered no tunnel');
      expect(opened.ehloLines.slice(1)).not.toContain(EVIDENCE_KEYWORD);
      const client = await SmtpClient.over(opened.tunnel, { host: REAL.address, port: mxPort, timeoutMs: loadScaled(30_000), label: 'real' });
      try {
        expect((await client.command('EHLO hand.a.test')).lines.slice(1)).toContain(EVIDENCE_KEYWORD);
        const reply = await client.command(`MAIL FROM:<${SENDER.mailbox}> ${EVIDENCE_KEYWORD}=forged`);
        expect(reply.code).toBe(501);
        expect(reply.lines[0]).toBe('5.5.4 XPONY-EVIDENCE: expected one of dnssec, https, pin, record, none');
      } finally {
        client.quit();
      }
    });

    it('the forger finished no handshake: no sender accepted its key, so nothing was sealed to it', async () => {
      // Every row has its outcome by now (each test above waited for it).
      expect(ROWS.every((row) => senderOf(row).outbound.deliveries.some((d) => d.domain === row.domain))).toBe(true);
      expect(forgerHandshakes.filter((event) => event.outcome === 'tunnel')).toEqual([]);
      // It was asked, though: the forged MX addresses reached it.
      expect(forgerHandshakes.length).toBeGreaterThan(0);
    });
  },
);
