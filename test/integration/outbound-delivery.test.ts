/**
 * Outbound delivery between real Postfix instances: Postfix A hands its mail to blackpony A,
 * which finds each domain's MX through dnsmasq and delivers through an XPONY tunnel (sealed) to
 * blackpony B in front of Postfix B, or with STARTTLS to a legacy Postfix.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { sharedMxPort, startBlackponySite, startLegacySite, type BlackponySite, type LegacySite } from './outbound-fixtures.js';

const A = { domain: 'a.test', address: '127.0.0.1', mailbox: 'alice@a.test' };
const B = { domain: 'b.test', address: '127.0.0.2', mailbox: 'bob@b.test' };
const LEGACY = { domain: 'legacy.test', address: '127.0.0.3', mailbox: 'lee@legacy.test' };

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

describeWith([POSTFIX, ROOT, DNSMASQ, SWAKS], 'outbound: Postfix -> blackpony -> XPONY or legacy MX', () => {
  let dns: TestDns;
  let a: BlackponySite;
  let b: BlackponySite;
  let legacy: LegacySite;
  let mxPort: number;

  beforeAll(async () => {
    mxPort = await sharedMxPort([B.address, LEGACY.address, '127.0.0.4']);
    // B's record is published once its keys exist: start DNS empty, then restart with records.
    dns = await startDns({});
    const resolver = () => dns.resolver();
    b = await startBlackponySite({ ...B, mxPort, resolver, mailboxes: [B.mailbox] });
    a = await startBlackponySite({ ...A, address: '127.0.0.5', mxPort, resolver, mailboxes: [A.mailbox] });
    legacy = await startLegacySite({ ...LEGACY, mxPort, mailboxes: [LEGACY.mailbox], tls: true });
    await dns.restart({
      mx: [
        { domain: B.domain, host: `mx.${B.domain}`, preference: 10 },
        { domain: LEGACY.domain, host: `mx.${LEGACY.domain}`, preference: 10 },
      ],
      a: [
        { host: `mx.${B.domain}`, address: B.address },
        { host: `mx.${LEGACY.domain}`, address: LEGACY.address },
      ],
      txt: [{ name: `_pony.${B.domain}`, value: b.record('testing') }],
    });
  }, 120_000);

  afterAll(async () => {
    for (const site of [a, b]) {
      await site?.inbound.close();
      await site?.outbound.server.close();
    }
    await dns?.stop();
  });

  it('delivers A -> B through a tunnel, sealed, and B shows it in the trace header', async () => {
    const sent = await runSwaks({ server: `127.0.0.1:${a.postfix.port}`, from: A.mailbox, to: B.mailbox, data: message('enc-1', B.mailbox) });
    expect(sent.exitCode, sent.transcript).toBe(0);
    const [delivered] = await b.postfix.waitForDelivery(B.mailbox, 1, 30_000);
    const text = delivered!.bytes.toString('latin1');
    expect(text).toContain('Message-ID: <enc-1@a.test>');
    expect(text).toMatch(/X-Pony-Trace: .*via=xpony/);
    expect(text).toMatch(/sealed=yes/);
    expect(text).toContain('\n.leading dot\n');
    const record = a.outbound.deliveries.find((d) => d.domain === B.domain)!;
    expect(record).toMatchObject({ outcome: 'delivered', mode: 'xpony', sealed: true, recipients: 1 });
    expect(record.queueId).toMatch(/^[0-9A-Za-z]{6,}$/);
    // Pinned after success (trust on first use).
    expect((await a.outbound.pins.get(B.domain))?.keys).toHaveLength(1);
  }, 60_000);

  it('delivers A -> legacy with STARTTLS, unsealed', async () => {
    const sent = await runSwaks({ server: `127.0.0.1:${a.postfix.port}`, from: A.mailbox, to: LEGACY.mailbox, data: message('legacy-1', LEGACY.mailbox) });
    expect(sent.exitCode, sent.transcript).toBe(0);
    const [delivered] = await legacy.postfix.waitForDelivery(LEGACY.mailbox, 1, 30_000);
    const text = delivered!.bytes.toString('latin1');
    expect(text).toContain('Message-ID: <legacy-1@a.test>');
    expect(text).not.toContain('X-Pony-Sealed');
    // Postfix's Received line on the legacy side says TLS was used.
    expect(text).toMatch(/with ESMTPS id/);
    expect(a.outbound.deliveries.find((d) => d.domain === LEGACY.domain)).toMatchObject({ outcome: 'delivered', mode: 'starttls', sealed: false });
  }, 60_000);
});
