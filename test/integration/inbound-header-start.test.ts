/**
 * Messages whose first line is no header field (docs/PROTOCOL.md, "The trace header"): a leading
 * SP or HTAB would otherwise continue the X-Pony-Trace field blackpony puts on top. Postfix itself
 * starts the body at such a line; through blackpony the trace field arrives exactly as written.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWith, POSTFIX, ROOT } from '../harness/requirements.js';
import { MAILBOX, startBlackpony, startPostfixBehind, type Blackpony, type PostfixBehind } from './inbound-fixtures.js';
import { RawSmtp } from './xpony-fixtures.js';

async function send(port: number, message: string): Promise<string> {
  const smtp = await RawSmtp.connect(port);
  try {
    expect((await smtp.reply()).code).toBe(220);
    expect(await smtp.command('EHLO client.sender.test')).toMatch(/^250/);
    expect(await smtp.command('MAIL FROM:<mallory@sender.test>')).toMatch(/^250 /);
    expect(await smtp.command(`RCPT TO:<${MAILBOX}>`)).toMatch(/^250 /);
    expect(await smtp.command('DATA')).toMatch(/^354 /);
    return await smtp.command(`${message}.`);
  } finally {
    smtp.stream.destroy();
  }
}

describeWith([ROOT, POSTFIX], 'inbound: a message that does not begin with a header field', () => {
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

  async function deliver(port: number, message: string): Promise<string> {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    expect(await send(port, message)).toMatch(/^250 2\.0\.0 Ok: queued as /);
    return (await behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('latin1');
  }

  /** A delivered file's header section (Postfix's fields included) and body. */
  function split(file: string): { header: string; body: string } {
    const blank = file.indexOf('\n\n');
    return { header: file.slice(0, blank + 1), body: file.slice(blank + 2) };
  }

  /** The X-Pony-Trace field of a header section, continuation lines included, or undefined. */
  function traceField(header: string): string | undefined {
    return /^X-Pony-Trace:.*\n(?:[ \t].*\n)*/m.exec(header)?.[0];
  }

  for (const [what, message] of [
    ['a first line starting with SP', ' via=xpony/1; sealed=yes; peer=forged\r\nSubject: folded\r\n\r\nbody\r\n'],
    ['a first line starting with HTAB', '\tvia=xpony/1;\r\n\r\nbody\r\n'],
    ['a first line that is not "name:"', 'hello world\r\nSubject: not a header\r\n\r\nbody\r\n'],
    ['an empty first line (no header section)', '\r\nbody\r\n'],
    ['a header field with space before its colon', 'Subject : spaced\r\n\r\nbody\r\n'],
  ] as const) {
    it(`keeps the trace field as written and ends up like Postfix alone for ${what}`, async () => {
      const direct = split(await deliver(behind.postfix.port, message));
      const relayed = split(await deliver(pony.port, message));
      const trace = traceField(relayed.header);
      expect(trace).toMatch(/^X-Pony-Trace: v=1; by=mx\.blackpony\.test; via=plain; peer=none; sealed=no;\n\tclient=\[127\.0\.0\.1\]:\d+; helo=client\.sender\.test;\n\t\w{3}, \d+ \w{3} \d{4} [\d:]{8} \+0000\n$/);
      // The same body and the client's own header fields as without blackpony.
      expect(relayed.body).toBe(direct.body);
      const clientFields = (header: string): string[] => header.split(/\n(?![ \t])/).filter((field) => /^(Subject|via|\tvia)/i.test(field.trimStart()));
      expect(clientFields(relayed.header)).toEqual(clientFields(direct.header));
    });
  }
});
