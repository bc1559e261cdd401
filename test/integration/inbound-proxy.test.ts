/**
 * The PROXY protocol as the client-identity mode (deploy/postfix/master.cf, PROXY variant): each
 * Postfix connection starts with a PROXY v1 line naming the real client, so Postfix judges that
 * client (no open relay) and sees the client's own HELO name.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { BLACKPONY_HOST, MAILBOX, startBlackpony, startPostfixBehind, type Blackpony, type PostfixBehind } from './inbound-fixtures.js';

describeWith([ROOT, POSTFIX, SWAKS], 'inbound relay with the PROXY protocol to a real Postfix', () => {
  let behind: PostfixBehind;
  let pony: Blackpony;

  beforeAll(async () => {
    // reject_unauth_destination: a permanent 554 (Postfix's default, defer_unauth_destination, says 454).
    behind = await startPostfixBehind({
      clientIdentity: 'proxy',
      mynetworks: '127.0.0.1/32',
      mainCf: { smtpd_relay_restrictions: 'permit_mynetworks, reject_unauth_destination', message_size_limit: '300000' },
    });
    pony = await startBlackpony(behind.listenerPort, { clientIdentity: 'proxy' });
  });
  afterAll(async () => {
    await pony?.inbound.close();
    await behind?.postfix.stop();
  });

  it("learns Postfix's SIZE before the first client (its probe also starts with a PROXY line)", async () => {
    const ehlo = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: 'a@sender.test', to: MAILBOX, quitAfter: 'EHLO' });
    expect(ehlo.transcript).toMatch(/<- {2}250-SIZE 300000\r?\n/);
  });

  it("denies relaying for a client on 127.0.0.2 with Postfix's own 554 5.7.1", async () => {
    const result = await runSwaks({
      server: `127.0.0.1:${pony.port}`,
      from: 'a@outside.test',
      to: 'victim@foreign.test',
      quitAfter: 'RCPT',
      extraArgs: ['--local-interface', '127.0.0.2'],
    });
    expect(result.transcript).toMatch(/<\*\* +554 5\.7\.1 <victim@foreign\.test>: Relay access denied/);
    await behind.postfix.waitForLog(/NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.2\]/);
  });

  it('allows the same from 127.0.0.1, which is in mynetworks', async () => {
    const result = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: 'a@inside.test', to: 'friend@foreign.test', quitAfter: 'RCPT' });
    expect(result.transcript).toMatch(/RCPT TO:<friend@foreign\.test>\r?\n<- +250 2\.1\.5 Ok/);
  });

  it("delivers with the client's own HELO name and address in Postfix's Received, and the trace header", async () => {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    const result = await runSwaks({
      server: `127.0.0.1:${pony.port}`,
      from: 'a@sender.test',
      to: MAILBOX,
      ehlo: 'proxied.sender.test',
      body: 'by proxy',
      extraArgs: ['--local-interface', '127.0.0.2'],
    });
    expect(result.exitCode, result.transcript).toBe(0);
    const text = (await behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('utf8');
    expect(text).toMatch(/^Received: from proxied\.sender\.test \(unknown \[127\.0\.0\.2\]\)/m);
    expect(text).toMatch(
      new RegExp(
        `^X-Pony-Trace: v=1; by=${BLACKPONY_HOST}; via=plain; peer=none; sealed=no;\\n\\tclient=\\[127\\.0\\.0\\.2\\]:\\d+; helo=proxied\\.sender\\.test;`,
        'm',
      ),
    );
  });
});
