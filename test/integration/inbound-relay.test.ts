/**
 * blackpony in front of a real Postfix (configured from deploy/postfix/): legacy and XPONY clients
 * are relayed command by command, Postfix's own replies reach the client, and a Postfix that is
 * down costs the client a 4xx, never a lost or doubled message.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fingerprint } from '../../src/crypto/fingerprint.js';
import type { PostfixFailureEvent } from '../../src/inbound/inbound-server.js';
import { connectXpony } from '../../src/xpony/index.js';
import { openInnerSmtp } from './inner-smtp.js';
import { startPostfix, type PostfixInstance } from '../harness/postfix.js';
import { describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { waitFor } from '../harness/wait.js';
import { BLACKPONY_HOST, MAILBOX, startBlackpony, startPostfixBehind, type Blackpony, type PostfixBehind } from './inbound-fixtures.js';
import { clientKeys, RawSmtp } from './xpony-fixtures.js';

/** A message whose bytes must arrive unchanged: a dot line, 8-bit text, an odd header. */
const ORIGINAL = [
  'From: Alice <alice@sender.test>',
  'To: user@d.test',
  'Subject: relay byte for byte',
  'Date: Sun, 22 Nov 2026 00:00:00 +0000',
  'Message-ID: <relay-1@sender.test>',
  'X-Odd:   spaced   value',
  '',
  'first line',
  '.a line that starts with a dot',
  '..two dots',
  'caf\u00e9 8-bit',
  '',
].join('\n');

/** The trace header as a Maildir stores it (LF line ends). */
function traceOf(delivered: string): string {
  const match = /^X-Pony-Trace: .*\n(?:\t.*\n)*/m.exec(delivered);
  if (match === null) throw new Error(`no X-Pony-Trace header in:\n${delivered.slice(0, 2000)}`);
  return match[0];
}

describeWith([ROOT, POSTFIX, SWAKS], 'inbound relay to a real Postfix', () => {
  let behind: PostfixBehind;
  let pony: Blackpony;

  beforeAll(async () => {
    behind = await startPostfixBehind({ mainCf: { message_size_limit: '200000' } });
    pony = await startBlackpony(behind.listenerPort);
  });
  afterAll(async () => {
    await pony?.inbound.close();
    await behind?.postfix.stop();
  });

  it("delivers a legacy client's message byte for byte below Postfix's Received and one trace header", async () => {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    const result = await runSwaks({
      server: `127.0.0.1:${pony.port}`,
      from: 'alice@sender.test',
      to: MAILBOX,
      ehlo: 'client.sender.test',
      data: Buffer.from(ORIGINAL, 'utf8'),
    });
    expect(result.exitCode, result.transcript).toBe(0);
    expect(result.transcript).toMatch(/<- +250 2\.0\.0 Ok: queued as [0-9A-Za-z]+/);
    const delivered = (await behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes;
    const text = delivered.toString('utf8');
    // Everything from the client arrives unchanged, directly after the trace header.
    expect(delivered.subarray(delivered.length - Buffer.byteLength(ORIGINAL)).toString('utf8')).toBe(ORIGINAL);
    const trace = traceOf(text);
    expect(text.indexOf(trace) + trace.length).toBe(delivered.length - Buffer.byteLength(ORIGINAL));
    expect(trace).toMatch(
      new RegExp(
        `^X-Pony-Trace: v=1; by=${BLACKPONY_HOST}; via=plain; peer=none; sealed=no;\\n\\tclient=\\[127\\.0\\.0\\.1\\]:\\d+; helo=client\\.sender\\.test;\\n\\t\\w{3}, \\d+ \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d \\+0000\\n$`,
      ),
    );
    expect(text.match(/^X-Pony-Trace:/gm)).toHaveLength(1);
    // Postfix saw the real client (XCLIENT): its Received names the client's HELO, not blackpony's.
    expect(text).toMatch(/^Received: from client\.sender\.test \(unknown \[127\.0\.0\.1\]\)/m);
  });

  it("delivers through an XPONY tunnel; the trace says xpony and names the peer's fingerprint", async () => {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    const result = await connectXpony({ host: '127.0.0.1', port: pony.port, localHostName: 'mta.sender.test', keys: clientKeys() });
    expect(result.kind).toBe('tunnel');
    if (result.kind !== 'tunnel') return;
    const inner = await openInnerSmtp(result.tunnel, { localHostName: 'mta.sender.test' });
    // Complete headers: Postfix adds a missing Date or Message-ID for clients on 127.0.0.1.
    const message =
      'From: a@sender.test\r\nDate: Sun, 22 Nov 2026 00:00:00 +0000\r\nMessage-ID: <t-1@sender.test>\r\nSubject: tunnelled\r\n\r\nthrough the tunnel\r\n';
    const info = await inner.send({ from: 'a@sender.test', to: [MAILBOX] }, message);
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
    await inner.quit();
    const text = (await behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('utf8');
    const stored = message.replaceAll('\r\n', '\n');
    expect(text.slice(-stored.length)).toBe(stored);
    const trace = traceOf(text);
    expect(trace).toContain(`via=xpony/2; peer=${fingerprint(clientKeys().noise.publicKey)}; sealed=no;`);
    // XCLIENT ADDR inside a tunnel is the tunnel's TCP peer.
    expect(trace).toContain('client=[127.0.0.1]:');
    expect(trace).toContain('helo=mta.sender.test;');
  });

  it("passes Postfix's own 550 5.1.1 for an unknown recipient, verbatim", async () => {
    const direct = await runSwaks({ server: `127.0.0.1:${behind.postfix.port}`, from: 'a@sender.test', to: 'nobody@d.test', quitAfter: 'RCPT' });
    const viaPony = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: 'a@sender.test', to: 'nobody@d.test', quitAfter: 'RCPT' });
    const rejection = /<\*\* +(550 5\.1\.1 .*)/;
    const expected = rejection.exec(direct.transcript)?.[1];
    expect(expected).toMatch(/^550 5\.1\.1 <nobody@d\.test>: Recipient address rejected: User unknown/);
    expect(rejection.exec(viaPony.transcript)?.[1]).toBe(expected);
  });

  it("advertises Postfix's SIZE and passes Postfix's refusal of an oversized message", async () => {
    const ehlo = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: 'a@sender.test', to: MAILBOX, quitAfter: 'EHLO' });
    expect(ehlo.transcript).toMatch(/<- {2}250-SIZE 200000\r?\n/);
    for (const keyword of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN', 'XPONY 1 2']) expect(ehlo.transcript).toContain(keyword);
    const big = `Subject: big\n\n${'x'.repeat(76).concat('\n').repeat(4000)}`;
    const result = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: 'a@sender.test', to: MAILBOX, data: big });
    expect(result.exitCode).not.toBe(0);
    expect(result.transcript.slice(-400)).toMatch(/<\*\* +552 5\.3\.4 Error: message file too big\r?\n/);
  });

  it('passes MAIL and RCPT parameters through: Postfix acts on NOTIFY and ENVID', async () => {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    const smtp = await RawSmtp.connect(pony.port);
    expect((await smtp.reply()).code).toBe(220);
    smtp.write('EHLO client.sender.test\r\n');
    expect((await smtp.reply()).code).toBe(250);
    expect(await smtp.command('MAIL FROM:<dsn@sender.test> SIZE=300 BODY=8BITMIME RET=HDRS ENVID=env+2Bid-7')).toMatch(/^250 /);
    expect(await smtp.command('RCPT TO:<user@d.test> NOTIFY=SUCCESS ORCPT=rfc822;user@d.test')).toMatch(/^250 /);
    expect(await smtp.command('DATA')).toMatch(/^354 /);
    expect(await smtp.command('Subject: dsn\r\nDate: Sun, 22 Nov 2026 00:00:00 +0000\r\nMessage-ID: <dsn@sender.test>\r\n\r\nnotify me\r\n.')).toMatch(
      /^250 2\.0\.0 Ok: queued as /,
    );
    smtp.write('QUIT\r\n');
    await behind.postfix.waitForDelivery(MAILBOX, before + 1);
    // NOTIFY=SUCCESS reached Postfix: it sends the sender a success notification.
    await waitFor('postfix sends a success DSN', async () =>
      /sender delivery status notification: \w+/.test(await behind.postfix.readLog()) ? true : undefined,
    );
  });

  it('drops the Postfix connection before the final dot when the client disconnects mid-DATA', async () => {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    const smtp = await RawSmtp.connect(pony.port);
    await smtp.reply();
    smtp.write('EHLO client.sender.test\r\n');
    await smtp.reply();
    expect(await smtp.command('MAIL FROM:<cut@sender.test>')).toMatch(/^250 /);
    expect(await smtp.command('RCPT TO:<user@d.test>')).toMatch(/^250 /);
    expect(await smtp.command('DATA')).toMatch(/^354 /);
    smtp.write('Subject: cut short\r\n\r\nthe first half\r\n');
    await waitFor('the first half written to the socket', () => (smtp.stream.writableLength === 0 ? true : undefined));
    smtp.stream.destroy();
    await waitFor(
      'postfix logs the lost connection',
      async () => (/lost connection after DATA \(\d+ bytes\) from unknown\[127\.0\.0\.1\]/.test(await behind.postfix.readLog()) ? true : undefined),
      {
        diagnostics: () => behind.postfix.readLog(),
      },
    );
    await behind.postfix.waitForSessionsEnded();
    expect(await behind.postfix.maildirMessages(MAILBOX)).toHaveLength(before);
    expect((await behind.postfix.queue()).filter((m) => m.sender === 'cut@sender.test')).toHaveLength(0);
  });
});

/** The reply lines swaks shows for the command starting with `command` ("<-" or "<**" lines, markers removed). */
function replyTo(transcript: string, command: string): string[] {
  const lines = transcript.split(/\r?\n/);
  const at = lines.findIndex((line) => line.startsWith(` -> ${command}`));
  const reply: string[] = [];
  for (const line of lines.slice(at + 1)) {
    const match = /^ *<(?:-|\*\*) +(.*)$/.exec(line);
    if (match === null) break;
    reply.push(match[1]!);
  }
  if (at < 0 || reply.length === 0) throw new Error(`no reply to ${command} in:\n${transcript}`);
  return reply;
}

describeWith([ROOT, POSTFIX, SWAKS], "inbound relay: Postfix's replies word for word", () => {
  let behind: PostfixBehind;
  let pony: Blackpony;

  beforeAll(async () => {
    // A two-line footer makes every Postfix refusal a multi-line reply.
    behind = await startPostfixBehind({ mainCf: { smtpd_reject_footer: 'see https://d.test/why\\nor write to postmaster@d.test' } });
    pony = await startBlackpony(behind.listenerPort);
  });
  afterAll(async () => {
    await pony?.inbound.close();
    await behind?.postfix.stop();
  });

  it("answers MAIL and RCPT with Postfix's own 250 text, not smtp-server's", async () => {
    const result = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: 'a@sender.test', to: MAILBOX, quitAfter: 'RCPT' });
    expect(replyTo(result.transcript, 'MAIL FROM:')).toEqual(['250 2.1.0 Ok']);
    expect(replyTo(result.transcript, 'RCPT TO:')).toEqual(['250 2.1.5 Ok']);
  });

  it('passes a multi-line refusal as the same lines Postfix gives a direct client', async () => {
    const direct = await runSwaks({ server: `127.0.0.1:${behind.listenerPort}`, from: 'a@sender.test', to: 'nobody@d.test', quitAfter: 'RCPT' });
    const viaPony = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: 'a@sender.test', to: 'nobody@d.test', quitAfter: 'RCPT' });
    const expected = replyTo(direct.transcript, 'RCPT TO:');
    expect(expected).toEqual([
      expect.stringMatching(/^550-5\.1\.1 <nobody@d\.test>: Recipient address rejected: User unknown/),
      '550-5.1.1 see https://d.test/why',
      '550 5.1.1 or write to postmaster@d.test',
    ]);
    expect(replyTo(viaPony.transcript, 'RCPT TO:')).toEqual(expected);
  });
});

describeWith([ROOT, POSTFIX, SWAKS], 'inbound relay when Postfix is down or refuses XCLIENT', () => {
  let behind: PostfixBehind;
  let pony: Blackpony;

  beforeAll(async () => {
    behind = await startPostfixBehind();
    pony = await startBlackpony(behind.listenerPort);
  });
  afterAll(async () => {
    await pony?.inbound.close();
    await behind?.postfix.stop();
  });

  it('answers 4xx at MAIL while Postfix is stopped; a retry after restart arrives exactly once', async () => {
    process.kill(behind.postfix.masterPid!, 'SIGTERM');
    await waitFor('postfix master exits', () => (behind.postfix.masterPid === undefined ? true : undefined));
    const refused = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: 'a@sender.test', to: MAILBOX, body: 'retry me' });
    expect(refused.exitCode).not.toBe(0);
    // The reason (Postfix's address, the errno) is the operator's (daemon-run.test.ts), not the client's.
    expect(refused.transcript).toMatch(/<\*\* +451 4\.4\.1 mail system temporarily unavailable, try again later$/m);
    expect(refused.transcript).not.toMatch(/ECONNREFUSED|postfix 127/);
    expect(refused.transcript).not.toMatch(/<\*\* +5\d\d/);

    await behind.postfix.restart();
    const retried = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: 'a@sender.test', to: MAILBOX, body: 'retry me' });
    expect(retried.exitCode, retried.transcript).toBe(0);
    await behind.postfix.waitForDelivery(MAILBOX, 1);
    await behind.postfix.waitForSessionsEnded();
    expect(await behind.postfix.maildirMessages(MAILBOX)).toHaveLength(1);
    expect(await behind.postfix.queue()).toHaveLength(0);
  });

  it('relays nothing to a listener that does not grant XCLIENT: 451 4.3.0, never a relay as 127.0.0.1', async () => {
    // The harness's own listener has no smtpd_authorized_xclient_hosts.
    const failures: PostfixFailureEvent[] = [];
    const plain = await startBlackpony(behind.postfix.port, { onPostfixFailure: (failure) => failures.push(failure) });
    try {
      const result = await runSwaks({ server: `127.0.0.1:${plain.port}`, from: 'a@sender.test', to: MAILBOX, body: 'no xclient' });
      expect(result.transcript).toMatch(/<\*\* +451 4\.3\.0 mail system temporarily unavailable, try again later$/m);
      expect(failures).toEqual([expect.objectContaining({ kind: 'refused', reason: expect.stringMatching(/^XCLIENT not offered/) as unknown })]);
    } finally {
      await plain.inbound.close();
    }
  });
});

describeWith([ROOT, POSTFIX, SWAKS], 'inbound relay: Postfix judges the real client address (no open relay)', () => {
  let behind: PostfixBehind;
  let pony: Blackpony;
  let postfix: PostfixInstance;

  beforeAll(async () => {
    // reject_unauth_destination: a permanent 554 (Postfix's default, defer_unauth_destination, says 454).
    behind = await startPostfixBehind({ mynetworks: '127.0.0.1/32', mainCf: { smtpd_relay_restrictions: 'permit_mynetworks, reject_unauth_destination' } });
    postfix = behind.postfix;
    pony = await startBlackpony(behind.listenerPort);
  });
  afterAll(async () => {
    await pony?.inbound.close();
    await behind?.postfix.stop();
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
    await postfix.waitForLog(/NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.2\]/);
  });

  it('allows the same from 127.0.0.1, which is in mynetworks', async () => {
    const result = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: 'a@inside.test', to: 'friend@foreign.test', quitAfter: 'RCPT' });
    expect(result.transcript).toMatch(/RCPT TO:<friend@foreign\.test>\r?\n<- +250 /);
  });
});
