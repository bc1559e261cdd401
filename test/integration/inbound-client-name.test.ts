/**
 * Postfix behind blackpony judges clients by name as it would on port 25 itself: blackpony looks
 * up each client's PTR name, checks that it resolves back to the address, and passes both with
 * XCLIENT (NAME, REVERSE_NAME). Clients connect from their own loopback addresses; dnsmasq serves
 * the names.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { MAILBOX, startBlackpony, startPostfixBehind, type Blackpony, type PostfixBehind } from './inbound-fixtures.js';

/** A name that resolves back; one whose name points elsewhere; one without a PTR record. */
const NAMED = { address: '127.0.0.7', name: 'client.sender.test' };
const FORGED = { address: '127.0.0.8', name: 'forged.sender.test' };
const NAMELESS = '127.0.0.10';

describeWith([ROOT, POSTFIX, SWAKS, DNSMASQ], 'inbound: Postfix sees the client name blackpony looked up', () => {
  let dns: TestDns;
  let behind: PostfixBehind;
  let pony: Blackpony;

  beforeAll(async () => {
    dns = await startDns({
      a: [
        { host: NAMED.name, address: NAMED.address },
        { host: FORGED.name, address: '127.0.0.9' },
      ],
      ptr: [{ address: FORGED.address, host: FORGED.name }],
    });
    // What many port-25 configurations say: no PTR name at all, then no name that resolves back.
    behind = await startPostfixBehind({ mainCf: { smtpd_client_restrictions: 'reject_unknown_reverse_client_hostname, reject_unknown_client_hostname' } });
    pony = await startBlackpony(behind.listenerPort, { clientNames: dns.resolver() });
  });
  afterAll(async () => {
    await pony?.inbound.close();
    await behind?.postfix.stop();
    await dns?.stop();
  });

  const from = (address: string, quitAfter?: string) =>
    runSwaks({
      server: `127.0.0.1:${pony.port}`,
      from: 'alice@sender.test',
      to: MAILBOX,
      ehlo: 'helo.sender.test',
      extraArgs: ['--local-interface', address],
      ...(quitAfter === undefined ? {} : { quitAfter }),
    });

  it('a client whose name resolves back is accepted, and Postfix records its name', async () => {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    const sent = await from(NAMED.address);
    expect(sent.exitCode, sent.transcript).toBe(0);
    const delivered = (await behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('latin1');
    expect(delivered).toMatch(/^Received: from helo\.sender\.test \(client\.sender\.test \[127\.0\.0\.7\]\)/m);
  });

  it('a client whose PTR name points elsewhere is refused by reject_unknown_client_hostname, as Postfix alone would', async () => {
    const sent = await from(FORGED.address, 'RCPT');
    expect(sent.transcript).toMatch(/<\*\* +450 4\.7\.25 Client host rejected: cannot find your hostname, \[127\.0\.0\.8\]/);
  });

  it('a client without a PTR name is refused by reject_unknown_reverse_client_hostname', async () => {
    const sent = await from(NAMELESS, 'RCPT');
    expect(sent.transcript).toMatch(/<\*\* +450 4\.7\.1 Client host rejected: cannot find your reverse hostname, \[127\.0\.0\.10\]/);
  });

  it('without lookups (client_name_lookup: false) every client is unknown to Postfix, and refused here', async () => {
    const plain = await startBlackpony(behind.listenerPort);
    try {
      const sent = await runSwaks({
        server: `127.0.0.1:${plain.port}`,
        from: 'alice@sender.test',
        to: MAILBOX,
        extraArgs: ['--local-interface', NAMED.address],
        quitAfter: 'RCPT',
      });
      expect(sent.transcript).toMatch(/<\*\* +450 4\.7\.1 Client host rejected: cannot find your reverse hostname, \[127\.0\.0\.7\]/);
    } finally {
      await plain.inbound.close();
    }
  });
});
