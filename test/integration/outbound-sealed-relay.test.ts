/**
 * Sealed mail through a legacy backup MX (issue 20, part 2): the receiving domains have MX 10 =
 * blackpony B in front of Postfix B, and MX 20 = a plain Postfix that relays them on to B (the
 * backup MX at a provider). Postfix A hands its mail to blackpony A. While B's inbound is down, a
 * domain whose record says `p=enforce; relay=sealed` gets its mail sealed through the backup:
 * the backup's queue file and the wire to it hold the envelope, never the subject or the body;
 * once B is back, the backup's retry arrives opened, byte for byte, with `relay=sealed` in B's
 * trace header. Without the tag, or with a forged record adding it for a pinned domain, the mail
 * waits in Postfix A as before, and nothing reaches the backup. A pinned domain whose blackpony
 * announced the relay in the handshake (inbound.sealed_relay) gets it through the backup, sealed
 * to the recipient pinned with the key, whatever `a=` the unsigned record names.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { identityToRecipient, generateX25519Identity } from '../../src/crypto/age/index.js';
import { serializePonyRecord, type PonyPolicy } from '../../src/crypto/pony-record.js';
import type { DeliveryRecord } from '../../src/outbound/transaction.js';
import { runCommand } from '../harness/command.js';
import { startDns, type DnsRecords, type TestDns } from '../harness/dnsmasq.js';
import { startPostfix, type PostfixInstance } from '../harness/postfix.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { waitFor } from '../harness/wait.js';
import { sharedMxPort, startBlackponySite, type BlackponySite } from './outbound-fixtures.js';
import { RawSmtp, startRelay, type Relay } from './xpony-fixtures.js';

const PRIMARY = '127.0.0.2';
const BACKUP = '127.0.0.3';
const SENDER = 'alice@a.test';
/** relay=sealed, p=enforce. */
const RELAYED = 'bob@relay.test';
/** p=enforce without the tag. */
const WAITING = 'bob@norelay.test';
/** Pinned first through the tunnel; then a forged record adds the tag and another a=. */
const PINNED = 'bob@pinrelay.test';
/** relay=sealed, p=enforce; pinned through a tunnel whose handshake announced the relay. */
const ANNOUNCED = 'bob@announce.test';
/** p=testing with relay=sealed: the fallback stays what it was (plaintext to the backup). */
const TESTING = 'bob@testrelay.test';
/** relay=sealed, p=enforce; the backup refuses its messages after DATA (a content filter there, say). */
const REFUSED = 'bob@refuse.test';
const DOMAINS = [RELAYED, WAITING, PINNED, ANNOUNCED, TESTING, REFUSED].map((address) => address.split('@')[1]!);
/** The backup's message_size_limit: above the plaintext of the big message, below its armored form. */
const BACKUP_SIZE_LIMIT = 40_000;

function message(id: string, to: string, body = ''): string {
  return [
    `From: Alice <${SENDER}>`,
    `To: ${to}`,
    `Subject: secret subject ${id}`,
    'Date: Sat, 05 Dec 2026 00:00:00 +0000',
    `Message-ID: <${id}@a.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    `secret body of ${id}: Grüße aus Zürich`,
    '.leading dot',
    body,
    '',
  ].join('\r\n');
}

describeWith([POSTFIX, ROOT, DNSMASQ, SWAKS], 'outbound: sealed relay through a legacy backup MX', () => {
  let dns: TestDns;
  let a: BlackponySite;
  let b: BlackponySite;
  let backup: PostfixInstance;
  /** Between the senders and the backup: what went over the wire. */
  let wire: Relay;
  let mxPort: number;
  let records: (overrides?: Partial<Record<string, string>>) => DnsRecords;

  const recordFor = (policy: PonyPolicy, sealedRelay: boolean, ageRecipient = identityToRecipient(b.keys.ageX25519Identity)): string =>
    serializePonyRecord({ noiseKeys: [b.keys.noise.publicKey], ageRecipient, policy, maxAge: 86_400, ...(sealedRelay ? { sealedRelay } : {}) });

  beforeAll(async () => {
    mxPort = await sharedMxPort([PRIMARY, BACKUP, '127.0.0.5']);
    dns = await startDns({});
    const resolver = () => dns.resolver();
    b = await startBlackponySite({ domain: 'b.test', address: PRIMARY, mxPort, resolver, mailboxes: [RELAYED, WAITING, PINNED, ANNOUNCED, TESTING, REFUSED] });
    a = await startBlackponySite({ domain: 'a.test', address: '127.0.0.5', mxPort, resolver, mailboxes: [SENDER] });
    backup = await startPostfix({
      hostname: 'backup.provider.test',
      mainCf: {
        relay_domains: DOMAINS.join(' '),
        transport_maps: `inline:{ ${DOMAINS.map((domain) => `{${domain}=smtp:[${PRIMARY}]:${mxPort}}`).join(', ')} }`,
        message_size_limit: String(BACKUP_SIZE_LIMIT),
        smtpd_end_of_data_restrictions: `check_recipient_access inline:{ {${REFUSED}=REJECT not taking this one} }`,
      },
    });
    wire = await startRelay(backup.port, {}, { listen: { host: BACKUP, port: mxPort } });
    const texts: Record<string, string> = {
      'relay.test': recordFor('enforce', true),
      'norelay.test': recordFor('enforce', false),
      'pinrelay.test': recordFor('enforce', false),
      'announce.test': recordFor('enforce', true),
      'testrelay.test': recordFor('testing', true),
      'refuse.test': recordFor('enforce', true),
    };
    records = (overrides = {}) => ({
      mx: DOMAINS.flatMap((domain) => [
        { domain, host: 'mx.b.test', preference: 10 },
        { domain, host: 'backup.provider.test', preference: 20 },
      ]),
      a: [
        { host: 'mx.b.test', address: PRIMARY },
        { host: 'backup.provider.test', address: BACKUP },
      ],
      txt: DOMAINS.map((domain) => ({ name: `_pony.${domain}`, value: overrides[domain] ?? texts[domain]! })),
    });
    await dns.restart(records());
  });

  afterAll(async () => {
    await wire?.close();
    for (const site of [a, b]) {
      await site?.inbound.close();
      await site?.outbound.server.close();
    }
    await dns?.stop();
  });

  async function send(id: string, to: string, body?: string): Promise<string> {
    const data = message(id, to, body);
    const sent = await runSwaks({ server: `127.0.0.1:${a.postfix.port}`, from: SENDER, to, data });
    expect(sent.exitCode, sent.transcript).toBe(0);
    return data;
  }

  function deliveryRecord(domain: string, predicate: (record: DeliveryRecord) => boolean): Promise<DeliveryRecord> {
    return waitFor(`a delivery record for ${domain}`, async () => a.outbound.deliveries.find((d) => d.domain === domain && predicate(d)), {
      diagnostics: async () => `records: ${JSON.stringify(a.outbound.deliveries.filter((d) => d.domain === domain))}`,
    });
  }

  /** Everything the senders wrote to the backup so far. */
  const toBackup = (): string => wire.connections.map((c) => Buffer.concat(c.toServer).toString('latin1')).join('\n');

  async function backupQueueFor(address: string): Promise<string[]> {
    return (await backup.queue()).filter((m) => m.recipients.some((r) => r.address === address)).map((m) => m.queueId);
  }

  it('enforce with relay=sealed, primary down: sealed at the backup (envelope only), then opened at the primary byte for byte', async () => {
    await b.stopInbound();
    const injected = await send('relay-1', RELAYED, 'x'.repeat(70).concat('\r\n').repeat(40));
    const record = await deliveryRecord('relay.test', (d) => d.outcome === 'delivered');
    expect(record).toMatchObject({ mode: 'plain', sealed: true, sealedRelay: true, sealedTo: 'x25519' });
    expect(record.peer).toContain('backup.provider.test');

    // In the backup's queue (the primary is down): its queue file holds the envelope and the sealed form only.
    const [queueId] = await backup
      .waitForQueue('holds relay-1', (q) => q.some((m) => m.recipients.some((r) => r.address === RELAYED)))
      .then(() => backupQueueFor(RELAYED));
    const queueFile = await runCommand('/usr/sbin/postcat', ['-c', backup.configDir, '-q', queueId!]);
    expect(queueFile.exitCode, queueFile.stderr).toBe(0);
    expect(queueFile.stdout).toContain('X-Pony-Sealed: 1');
    expect(queueFile.stdout).toContain('-----BEGIN AGE ENCRYPTED FILE-----');
    expect(queueFile.stdout).toContain(RELAYED);
    for (const secret of ['secret subject', 'secret body', 'relay-1@a.test', 'Grüße', 'Gr\u00c3\u00bc']) expect(queueFile.stdout).not.toContain(secret);
    // On the wire to the backup: the envelope in clear, the content sealed.
    const wireText = toBackup();
    expect(wireText).toContain(`RCPT TO:<${RELAYED}>`);
    expect(wireText).toContain('X-Pony-Sealed: 1');
    for (const secret of ['secret subject', 'secret body', 'relay-1@a.test', 'Gr\u00c3\u00bc']) expect(wireText).not.toContain(secret);
    // SIZE told to the backup is the armored form's, larger than the message.
    const size = Number(/MAIL FROM:<alice@a\.test> SIZE=(\d+)/.exec(wireText)?.[1]);
    expect(size).toBeGreaterThan(Buffer.byteLength(injected) * 1.3);
    expect(wireText).not.toMatch(/MAIL FROM:<alice@a\.test>[^\r\n]*BODY=8BITMIME/);
    expect(await b.postfix.maildirMessages(RELAYED)).toHaveLength(0);
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);

    // The primary is back: the backup relays it on, and B's blackpony opens it on the way into Postfix B.
    await b.startInbound();
    await backup.flush();
    const [delivered] = await b.postfix.waitForDelivery(RELAYED, 1);
    const text = delivered!.bytes.toString('utf8');
    // Byte for byte: what was injected into Postfix A ends the stored message (Maildir keeps LF line ends).
    expect(text.endsWith(injected.replace(/\r\n/g, '\n'))).toBe(true);
    expect(text).toMatch(/^X-Pony-Trace: v=1; by=mx\.b\.test; via=plain; peer=none; sealed=yes; relay=sealed;$/m);
    // Top to bottom: B's trace header, the backup's Received: (kept from before the marker), Postfix A's, the message.
    const trace = text.indexOf('X-Pony-Trace:');
    const backupReceived = text.search(/^Received: from [^\n]*\n\tby backup\.provider\.test/m);
    const senderReceived = text.search(/^Received: [^\n]*\n?[^\n]*by mx\.a\.test/m);
    expect(trace).toBeGreaterThanOrEqual(0);
    expect(backupReceived).toBeGreaterThan(trace);
    expect(senderReceived).toBeGreaterThan(backupReceived);
    expect(text).not.toContain('X-Pony-Sealed');
    await backup.waitForQueue('empty', (q) => q.length === 0);
  });

  it('enforce with relay=sealed: a message whose armored form exceeds the backup SIZE waits in Postfix A (4xx), never bounces', async () => {
    await b.stopInbound();
    try {
      // About 30 KB: under the backup's limit in clear, over it armored (4/3 and line ends).
      await send('big-1', RELAYED, `${'y'.repeat(998)}\r\n`.repeat(30));
      const record = await deliveryRecord('relay.test', (d) => d.outcome === 'deferred');
      expect(record.reply).toMatch(/^451 /);
      expect(record.reply).toMatch(/MAIL answered 552/);
      await a.postfix.waitForQueue('holds big-1', (q) => q.some((m) => m.recipients.some((r) => r.address === RELAYED)));
      expect(await backupQueueFor(RELAYED)).toHaveLength(0);
    } finally {
      await b.startInbound();
    }
    await a.postfix.flush();
    await b.postfix.waitForDelivery(RELAYED, 2);
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
  });

  it('enforce with relay=sealed: a backup that refuses the sealed message after DATA (5xx) defers it in Postfix A, never bounces', async () => {
    await b.stopInbound();
    try {
      await send('refused-1', REFUSED);
      const record = await deliveryRecord('refuse.test', (d) => d.outcome === 'deferred');
      expect(record.reply).toMatch(
        /^451 4\.4\.0 backup\.provider\.test\[127\.0\.0\.3\]:\d+ \(plain, sealed relay\) refused the sealed message \(5\d\d .*not taking this one/,
      );
      expect(record.sealedRelay).toBe(true);
      await a.postfix.waitForQueue('holds refused-1', (q) => q.some((m) => m.recipients.some((r) => r.address === REFUSED)));
      expect(await backupQueueFor(REFUSED)).toHaveLength(0);
    } finally {
      await b.startInbound();
    }
    await a.postfix.flush();
    await b.postfix.waitForDelivery(REFUSED, 1);
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
  });

  it('enforce without the tag: deferred as before, nothing at the backup', async () => {
    await b.stopInbound();
    try {
      await send('wait-1', WAITING);
      const record = await deliveryRecord('norelay.test', (d) => d.outcome === 'deferred');
      expect(record.deferral).toBe('downgrade');
      await a.postfix.waitForQueue('holds wait-1', (q) => q.some((m) => m.recipients.some((r) => r.address === WAITING)));
      expect(toBackup()).not.toContain(WAITING);
      expect(await backupQueueFor(WAITING)).toHaveLength(0);
    } finally {
      await b.startInbound();
    }
    await a.postfix.flush();
    const [delivered] = await b.postfix.waitForDelivery(WAITING, 1);
    expect(delivered!.bytes.toString('latin1')).toMatch(/^X-Pony-Trace: [^\n]*via=xpony\/2; [^\n]*sealed=yes;$/m);
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
  });

  it('a pinned domain: a forged record that adds relay=sealed and changes a= does not send its mail to the backup', async () => {
    await send('pin-1', PINNED);
    await b.postfix.waitForDelivery(PINNED, 1);
    // Postfix B may store the message before blackpony A has heard B's 250 (and pinned): wait for A's record.
    expect(await deliveryRecord('pinrelay.test', (d) => d.outcome === 'delivered')).toMatchObject({ mode: 'xpony' });
    await waitFor('pinrelay.test pinned', async () => ((await a.outbound.pins.get('pinrelay.test'))?.keys.length === 1 ? true : undefined));
    const forger = identityToRecipient(generateX25519Identity());
    await dns.restart(records({ 'pinrelay.test': recordFor('enforce', true, forger) }));
    await b.stopInbound();
    try {
      await send('pin-2', PINNED);
      const record = await deliveryRecord('pinrelay.test', (d) => d.outcome === 'deferred');
      expect(record.deferral).toBe('downgrade');
      await a.postfix.waitForQueue('holds pin-2', (q) => q.some((m) => m.recipients.some((r) => r.address === PINNED)));
      expect(toBackup()).not.toContain(PINNED);
      expect(await backupQueueFor(PINNED)).toHaveLength(0);
    } finally {
      await b.startInbound();
      await dns.restart(records());
    }
    await a.postfix.flush();
    await b.postfix.waitForDelivery(PINNED, 2);
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
  });

  it("a pinned domain whose blackpony announced the relay: sealed through the backup to the pinned recipient, not a forged record's a=", async () => {
    await b.stopInbound();
    await b.startInbound(undefined, undefined, { announceSealedRelay: true });
    try {
      await send('announced-1', ANNOUNCED);
      await b.postfix.waitForDelivery(ANNOUNCED, 1);
      expect(await deliveryRecord('announce.test', (d) => d.outcome === 'delivered')).toMatchObject({ mode: 'xpony' });
      // B's handshake announced the relay: the pin keeps the recipient a sealed relay seals to, B's
      // hybrid one (the tunnel itself, hybrid, sealed the message to the X25519 one).
      const pinnedTo = await waitFor('announce.test pinned with the relay', async () => (await a.outbound.pins.get('announce.test'))?.keys[0]?.sealedRelayTo);
      expect(pinnedTo).toBe(b.keys.ageHybridRecipient);
      // Now an unsigned record naming a forger's a= (the tag kept), and B's MX down.
      await dns.restart(records({ 'announce.test': recordFor('enforce', true, identityToRecipient(generateX25519Identity())) }));
      await b.stopInbound();
      await send('announced-2', ANNOUNCED);
      const record = await deliveryRecord('announce.test', (d) => d.sealedRelay === true);
      expect(record).toMatchObject({ outcome: 'delivered', mode: 'plain', sealed: true, sealedTo: 'hybrid' });
      await backup.waitForQueue('holds announced-2', (q) => q.some((m) => m.recipients.some((r) => r.address === ANNOUNCED)));
      const wireText = toBackup();
      expect(wireText).toContain(`RCPT TO:<${ANNOUNCED}>`);
      for (const secret of ['secret subject announced-2', 'secret body of announced-2']) expect(wireText).not.toContain(secret);
      await a.postfix.waitForQueue('empty', (q) => q.length === 0);
    } finally {
      await b.startInbound();
      await dns.restart(records());
    }
    // B opens it with its own identity: it was sealed to the pinned recipient, not the forger's.
    await backup.flush();
    const [, delivered] = await b.postfix.waitForDelivery(ANNOUNCED, 2);
    const text = delivered!.bytes.toString('utf8');
    expect(text).toContain('secret body of announced-2');
    expect(text).toMatch(/^X-Pony-Trace: v=1; by=mx\.b\.test; via=plain; peer=none; sealed=yes; relay=sealed;$/m);
    await backup.waitForQueue('empty', (q) => q.length === 0);
  });

  it("with inbound.sealed_relay the primary's Postfix needs no headroom: its blackpony offers the sealed size, Postfix judges the opened message", async () => {
    /** Offered in EHLO by B's inbound side. */
    const offeredSize = async (): Promise<number> => {
      const socket = connect({ host: PRIMARY, port: mxPort });
      await once(socket, 'connect');
      const smtp = new RawSmtp(socket);
      await smtp.reply();
      smtp.write('EHLO size.test\r\n');
      const ehlo = await smtp.reply();
      await smtp.command('QUIT');
      return Number(ehlo.lines.map((line) => /^SIZE (\d+)$/.exec(line)?.[1]).find((size) => size !== undefined));
    };
    const limit = 30_000;
    const before = (await b.postfix.postconf(['-h', 'message_size_limit'])).trim();
    await b.postfix.postconf(['-e', `message_size_limit=${limit}`]);
    await b.postfix.restart();
    // announce.test: pinned by the test before, with the relay B announced (and its hybrid recipient).
    const earlier = (await b.postfix.maildirMessages(ANNOUNCED)).length;
    await b.stopInbound();
    try {
      // About 25 KB: under Postfix B's limit, over it sealed and armored (about 34 KB at the backup).
      const injected = await send('headroom-1', ANNOUNCED, 'y'.repeat(70).concat('\r\n').repeat(350));
      await waitFor('headroom-1 at the backup', async () => ((await backupQueueFor(ANNOUNCED)).length === 1 ? true : undefined));
      await b.startInbound(undefined, undefined, { announceSealedRelay: true });
      expect(await offeredSize()).toBeGreaterThan(limit * 1.3);
      await backup.flush();
      const delivered = (await b.postfix.waitForDelivery(ANNOUNCED, earlier + 1)).at(-1);
      expect(delivered!.bytes.toString('utf8').endsWith(injected.replace(/\r\n/g, '\n'))).toBe(true);
      await backup.waitForQueue('empty', (q) => q.length === 0);
      // A plain message over the limit is still refused by Postfix B, after DATA now instead of at MAIL.
      const plain = await runSwaks({
        server: `${PRIMARY}:${mxPort}`,
        from: SENDER,
        to: ANNOUNCED,
        data: message('too-big', ANNOUNCED, 'z'.repeat(70).concat('\r\n').repeat(450)),
      });
      expect(plain.exitCode).not.toBe(0);
      expect(plain.transcript).toMatch(/<\*\* +552[ -]5\.3\.4 [^\n]*too big/);
      expect(await b.postfix.maildirMessages(ANNOUNCED)).toHaveLength(earlier + 1);
      // Without the setting, the SIZE offered is Postfix's own.
      await b.stopInbound();
      await b.startInbound();
      expect(await offeredSize()).toBe(limit);
    } finally {
      await b.postfix.postconf(['-e', `message_size_limit=${before}`]);
      await b.postfix.restart();
      await b.stopInbound();
      await b.startInbound();
    }
  });

  it('p=testing with relay=sealed: the fallback is what it was, the message in clear to the backup', async () => {
    await b.stopInbound();
    try {
      await send('testing-1', TESTING);
      const record = await deliveryRecord('testrelay.test', (d) => d.outcome === 'delivered');
      expect(record).toMatchObject({ mode: 'plain', sealed: false, testingFailure: true });
      expect(record.sealedRelay).toBeUndefined();
      await waitFor('testing-1 at the backup', async () => ((await backupQueueFor(TESTING)).length === 1 ? true : undefined));
      expect(toBackup()).toContain('secret subject testing-1');
    } finally {
      await b.startInbound();
    }
    await backup.flush();
    const [delivered] = await b.postfix.waitForDelivery(TESTING, 1);
    expect(delivered!.bytes.toString('latin1')).toMatch(/^X-Pony-Trace: [^\n]*via=plain; peer=none; sealed=no;$/m);
  });
});
