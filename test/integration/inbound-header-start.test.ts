/**
 * Messages whose first line is no header field (docs/PROTOCOL.md, "The trace header"): a leading
 * SP or HTAB would otherwise continue the X-Pony-Trace field blackpony puts on top. Postfix itself
 * starts the body at such a line; through blackpony the trace field arrives exactly as written.
 */
import { expect, it } from 'vitest';
import { describeWith, POSTFIX, ROOT } from '../harness/requirements.js';
import { MAILBOX, postfixBehindBlackpony, sendRaw } from './inbound-fixtures.js';

describeWith([ROOT, POSTFIX], 'inbound: a message that does not begin with a header field', () => {
  const site = postfixBehindBlackpony();

  async function deliver(port: number, message: string): Promise<string> {
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    expect(await sendRaw(port, message)).toMatch(/^250 2\.0\.0 Ok: queued as /);
    return (await site.behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('latin1');
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
      const direct = split(await deliver(site.behind.postfix.port, message));
      const relayed = split(await deliver(site.pony.port, message));
      const trace = traceField(relayed.header);
      expect(trace).toMatch(
        /^X-Pony-Trace: v=1; by=mx\.blackpony\.test; via=plain; peer=none; sealed=no;\n\tclient=\[127\.0\.0\.1\]:\d+; helo=client\.sender\.test;\n\t\w{3}, \d+ \w{3} \d{4} [\d:]{8} \+0000\n$/,
      );
      // The same body and the client's own header fields as without blackpony.
      expect(relayed.body).toBe(direct.body);
      const clientFields = (header: string): string[] => header.split(/\n(?![ \t])/).filter((field) => /^(Subject|via|\tvia)/i.test(field.trimStart()));
      expect(clientFields(relayed.header)).toEqual(clientFields(direct.header));
    });
  }
});
