/**
 * Real legacy MTAs, Debian's Exim 4.96 and OpenSMTPD 6.8, on both sides of blackpony.
 * As senders into blackpony inbound in front of a real Postfix, each from its own 127.0.0.N: the
 * message is delivered on the first attempt, byte for byte, Postfix judges and logs the real
 * client address, and a relay attempt gets Postfix's own refusal. Exim delivers at once on
 * receipt (`-odi`), which sends `.`, QUIT and its FIN in one segment (inbound-half-close.test.ts).
 * As receivers from blackpony outbound (fed over SMTP): the message arrives byte for byte, though
 * Exim offers CHUNKING and PIPECONNECT.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateKeys } from '../../src/crypto/keyfile.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { EXIM_REQUIREMENT, startExim, type EximInstance } from '../harness/exim.js';
import { OPENSMTPD_REQUIREMENT, startOpensmtpd, type OpensmtpdInstance } from '../harness/opensmtpd.js';
import { describeWith, DNSMASQ, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';
import { expectByteForByte, messageOf, withId } from './legacy-mta-messages.js';
import { MAILBOX, startBlackpony, startPostfixBehind, type Blackpony, type PostfixBehind } from './inbound-fixtures.js';
import { sharedMxPort, startOutbound, type Outbound } from './outbound-fixtures.js';

const EXIM_ADDRESS = '127.0.0.5';
const OPENSMTPD_ADDRESS = '127.0.0.6';
/** How many messages the Exim sender test submits, each delivered at once on its own connection. */
const EXIM_MESSAGES = 8;

describeWith([ROOT, POSTFIX, SWAKS], 'legacy MTAs as senders into blackpony inbound in front of Postfix', () => {
  let behind: PostfixBehind;
  let pony: Blackpony;

  beforeAll(async () => {
    // Only blackpony's own address is trusted: Postfix judges each sender by its address.
    behind = await startPostfixBehind({ mynetworks: '127.0.0.1/32', mainCf: { smtpd_relay_restrictions: 'permit_mynetworks, reject_unauth_destination' } });
    pony = await startBlackpony(behind.listenerPort);
  });
  afterAll(async () => {
    await pony?.inbound.close();
    await behind?.postfix.stop();
  });

  /** The one copy of the message in Postfix's Maildir, once the queue is empty. */
  async function deliveredOnce(id: string): Promise<Buffer> {
    await waitFor(`${id} in the Maildir`, async () => (withId(await behind.postfix.maildirMessages(MAILBOX), id).length > 0 ? true : undefined), {
      diagnostics: () => behind.postfix.readLog(),
    });
    await behind.postfix.waitForQueue('an empty queue', (queue) => queue.length === 0);
    const copies = withId(await behind.postfix.maildirMessages(MAILBOX), id);
    expect(copies).toHaveLength(1);
    return copies[0]!.bytes;
  }

  /** Postfix's smtpd logged this queue id for the sender's own address, not blackpony's 127.0.0.1. */
  async function expectRealClient(queueId: string, address: string): Promise<void> {
    await behind.postfix.waitForLog(new RegExp(`${queueId}: client=unknown\\[${address.replaceAll('.', '\\.')}\\]`));
  }

  describeWith([EXIM_REQUIREMENT], 'Exim 4.96', () => {
    let exim: EximInstance;
    beforeAll(async () => {
      exim = await startExim({
        address: EXIM_ADDRESS,
        hostName: 'exim.sender.test',
        role: { kind: 'sender', relayTo: { host: '127.0.0.1', port: pony.port } },
      });
    });
    afterAll(async () => {
      await exim?.stop();
    });

    it(`delivers each of ${EXIM_MESSAGES} messages sent at once on receipt on the first attempt, byte for byte, from the real client address`, async () => {
      for (let n = 1; n <= EXIM_MESSAGES; n++) {
        const id = `exim-${n}`;
        const message = messageOf(id, MAILBOX);
        const submitted = await exim.submit(message, 'alice@sender.test', [MAILBOX]);
        expect(submitted.exitCode, submitted.stdout + submitted.stderr + (await exim.readLog())).toBe(0);
        expectByteForByte(await deliveredOnce(id), message);
      }
      const log = await exim.readLog();
      // No deferral (" == ") and no failure (" ** "): every message went out on its first attempt.
      expect(log).not.toMatch(/ (==|\*\*) /);
      const accepted = [...log.matchAll(/ => user@d\.test R=relay T=relay_smtp H=127\.0\.0\.1 \[127\.0\.0\.1\] .*C="250 2\.0\.0 Ok: queued as (\w+)"/g)];
      expect(accepted, log).toHaveLength(EXIM_MESSAGES);
      await expectRealClient(accepted[0]![1]!, EXIM_ADDRESS);
    });

    it("gets Postfix's relay refusal for a domain Postfix does not serve; nothing is delivered", async () => {
      const submitted = await exim.submit(messageOf('exim-relay', 'someone@elsewhere.test'), 'alice@sender.test', ['someone@elsewhere.test']);
      expect(submitted.exitCode).not.toBeNull();
      const log = await exim.readLog();
      expect(log).toMatch(
        /\*\* someone@elsewhere\.test R=relay T=relay_smtp H=127\.0\.0\.1 \[127\.0\.0\.1\]: SMTP error from remote mail server after RCPT TO:<someone@elsewhere\.test>: 554 5\.7\.1 <someone@elsewhere\.test>: Relay access denied/,
      );
      await behind.postfix.waitForLog(/NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.5\]: 554 5\.7\.1 <someone@elsewhere\.test>: Relay access denied/);
      expect(withId(await behind.postfix.maildirMessages(MAILBOX), 'exim-relay')).toHaveLength(0);
    });
  });

  describeWith([OPENSMTPD_REQUIREMENT], 'OpenSMTPD 6.8', () => {
    let opensmtpd: OpensmtpdInstance;
    beforeAll(async () => {
      opensmtpd = await startOpensmtpd({
        address: OPENSMTPD_ADDRESS,
        hostName: 'opensmtpd.sender.test',
        role: { kind: 'sender', relayTo: { host: '127.0.0.1', port: pony.port } },
      });
    });
    afterAll(async () => {
      await opensmtpd?.stop();
    });

    /** Hands the message to OpenSMTPD's listener; it relays at once. */
    async function submit(message: string, to: string): Promise<void> {
      const result = await runSwaks({
        server: `${OPENSMTPD_ADDRESS}:${opensmtpd.port}`,
        from: 'alice@sender.test',
        to,
        data: message.replaceAll('\n', '\r\n'),
      });
      expect(result.exitCode, result.transcript).toBe(0);
    }

    it('delivers its message on the first attempt, byte for byte, from the real client address', async () => {
      const message = messageOf('opensmtpd-1', MAILBOX);
      await submit(message, MAILBOX);
      expectByteForByte(await deliveredOnce('opensmtpd-1'), message);
      const log = await opensmtpd.readLog();
      expect(log).not.toMatch(/result="(TempFail|PermFail)"/);
      const delivery = /mta delivery .* to=<user@d\.test> .* source="127\.0\.0\.6" .* result="Ok" stat="250 2\.0\.0 Ok: queued as (\w+)"/.exec(log);
      expect(delivery, log).not.toBeNull();
      await expectRealClient(delivery![1]!, OPENSMTPD_ADDRESS);
    });

    it("gets Postfix's relay refusal for a domain Postfix does not serve; nothing is delivered", async () => {
      await submit(messageOf('opensmtpd-relay', 'someone@elsewhere.test'), 'someone@elsewhere.test');
      const log = await waitFor(
        'the relay refusal in the OpenSMTPD log',
        async () => {
          const text = await opensmtpd.readLog();
          return /to=<someone@elsewhere\.test> .*result="PermFail"/.test(text) ? text : undefined;
        },
        { diagnostics: () => opensmtpd.readLog() },
      );
      expect(log).toMatch(/to=<someone@elsewhere\.test> .*result="PermFail" stat="554 5\.7\.1 <someone@elsewhere\.test>: Relay access denied"/);
      await behind.postfix.waitForLog(/NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.6\]: 554 5\.7\.1 <someone@elsewhere\.test>: Relay access denied/);
      expect(withId(await behind.postfix.maildirMessages(MAILBOX), 'opensmtpd-relay')).toHaveLength(0);
    });
  });
});

describeWith([ROOT, DNSMASQ, SWAKS, EXIM_REQUIREMENT, OPENSMTPD_REQUIREMENT], 'legacy MTAs as receivers from blackpony outbound', () => {
  const EXIM_MX = { domain: 'exim.test', host: 'mx.exim.test', address: '127.0.0.8' };
  const OPENSMTPD_MX = { domain: 'opensmtpd.test', host: 'mx.opensmtpd.test', address: '127.0.0.9' };
  let dns: TestDns;
  let exim: EximInstance;
  let opensmtpd: OpensmtpdInstance;
  let outbound: Outbound;

  beforeAll(async () => {
    const mxPort = await sharedMxPort([EXIM_MX.address, OPENSMTPD_MX.address]);
    dns = await startDns({
      mx: [EXIM_MX, OPENSMTPD_MX].map(({ domain, host }) => ({ domain, host, preference: 10 })),
      a: [EXIM_MX, OPENSMTPD_MX].map(({ host, address }) => ({ host, address })),
    });
    exim = await startExim({
      address: EXIM_MX.address,
      port: mxPort,
      hostName: EXIM_MX.host,
      role: { kind: 'receiver', mailboxes: [`user@${EXIM_MX.domain}`] },
    });
    opensmtpd = await startOpensmtpd({
      address: OPENSMTPD_MX.address,
      port: mxPort,
      hostName: OPENSMTPD_MX.host,
      role: { kind: 'receiver', mailboxes: [`user@${OPENSMTPD_MX.domain}`] },
    });
    outbound = await startOutbound({
      domain: 'blackpony.test',
      address: '127.0.0.1',
      mxPort,
      resolver: () => dns.resolver(),
      mailboxes: [],
      lmtp: false,
      keys: generateKeys(),
      hostName: 'mx.blackpony.test',
      stateDir: await makeTempDir('legacy-outbound'),
    });
  });
  afterAll(async () => {
    await outbound?.server.close();
    await exim?.stop();
    await opensmtpd?.stop();
    await dns?.stop();
  });

  /** Sends through blackpony outbound; its 250 comes only once the receiver accepted. */
  async function sendThroughOutbound(message: string, to: string): Promise<void> {
    const result = await runSwaks({ server: `127.0.0.1:${outbound.port}`, from: 'alice@blackpony.test', to, data: message.replaceAll('\n', '\r\n') });
    expect(result.exitCode, result.transcript).toBe(0);
  }

  it('Exim receives the message byte for byte, though it offers CHUNKING and PIPECONNECT', async () => {
    const ehlo = await runSwaks({ server: `${EXIM_MX.address}:${exim.port}`, from: 'a@blackpony.test', to: `user@${EXIM_MX.domain}`, quitAfter: 'EHLO' });
    expect(ehlo.transcript).toMatch(/<- {2}250-CHUNKING/);
    expect(ehlo.transcript).toMatch(/<- {2}250-PIPECONNECT/);
    const message = messageOf('to-exim', `user@${EXIM_MX.domain}`);
    await sendThroughOutbound(message, `user@${EXIM_MX.domain}`);
    const delivered = await waitFor("the message in Exim's Maildir", async () => withId(await exim.maildirMessages(), 'to-exim')[0], {
      diagnostics: () => exim.readLog(),
    });
    expectByteForByte(delivered.bytes, message);
    expect(await exim.readLog()).toMatch(/<= alice@blackpony\.test H=\(mx\.blackpony\.test\) \[127\.0\.0\.1\] P=esmtp/);
    expect(outbound.deliveries.at(-1)).toMatchObject({ domain: EXIM_MX.domain, outcome: 'delivered', sealed: false });
  });

  it('OpenSMTPD receives the message byte for byte', async () => {
    const message = messageOf('to-opensmtpd', `user@${OPENSMTPD_MX.domain}`);
    await sendThroughOutbound(message, `user@${OPENSMTPD_MX.domain}`);
    const delivered = await waitFor("the message in OpenSMTPD's Maildir", async () => withId(await opensmtpd.maildirMessages(), 'to-opensmtpd')[0], {
      diagnostics: () => opensmtpd.readLog(),
    });
    expectByteForByte(delivered.bytes, message);
    expect(outbound.deliveries.at(-1)).toMatchObject({ domain: OPENSMTPD_MX.domain, outcome: 'delivered', sealed: false });
  });
});
