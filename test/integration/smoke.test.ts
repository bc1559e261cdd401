import { afterAll, expect, it } from 'vitest';
import { stopAll } from '../harness/cleanup.js';
import { fieldName, splitMessage } from '../harness/message.js';
import { startPostfix } from '../harness/postfix.js';
import { POSTFIX, ROOT, SWAKS, describeWith } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';

const RECIPIENT = 'u@d.test';

describeWith([ROOT, POSTFIX, SWAKS], 'smoke: swaks -> Postfix A -> relayhost Postfix B -> Maildir', () => {
  afterAll(stopAll);

  it('delivers the body byte for byte and adds only trace headers', async () => {
    const b = await startPostfix({ hostname: 'b.test', mailboxes: [RECIPIENT] });
    const a = await startPostfix({ hostname: 'a.test', relayhost: `[127.0.0.1]:${b.port}` });
    const sent = Buffer.from(testMessage(), 'latin1');
    expect(sent.length).toBeGreaterThan(100 * 1024);
    expect(sent.toString('latin1')).toContain('\n.\n');
    expect(sent.toString('latin1')).toContain('   \n');
    expect(sent.toString('latin1')).toContain(`\n${'x'.repeat(998)}\n`);

    const swaks = await runSwaks({ server: `127.0.0.1:${a.port}`, from: 'sender@a.test', to: RECIPIENT, data: sent });
    expect(swaks.exitCode, swaks.transcript).toBe(0);

    const delivered = await b.waitForDelivery(RECIPIENT, 1);
    expect(delivered).toHaveLength(1);
    const original = splitMessage(sent);
    const received = splitMessage(delivered[0]!.bytes);

    expect(received.body.length).toBe(original.body.length);
    expect(firstDifference(received.body, original.body)).toBe(-1);

    // Postfix prepends its trace fields; everything after them is the original header, unchanged.
    const added = received.fields.slice(0, received.fields.length - original.fields.length);
    expect(received.fields.slice(added.length)).toEqual(original.fields);
    expect(added.map(fieldName)).toEqual(['Return-Path', 'X-Original-To', 'Delivered-To', 'Received', 'Received']);
    expect(added.slice(0, 3)).toEqual(['Return-Path: <sender@a.test>', `X-Original-To: ${RECIPIENT}`, `Delivered-To: ${RECIPIENT}`]);
    expect(added[3]).toMatch(/^Received: from a\.test \(localhost \[127\.0\.0\.1\]\)\n\tby b\.test /);
    expect(added[4]).toMatch(/^Received: from [^\n]+\(localhost \[127\.0\.0\.1\]\)\n\tby a\.test /);
  });
});

/** About 100 KiB of 7-bit text with the lines that trip up relays; free of swaks's data tokens. */
function testMessage(): string {
  const header = [
    'From: Sender <sender@a.test>',
    `To: User <${RECIPIENT}>`,
    'Subject: smoke test through two Postfix instances',
    'Date: Sun, 22 Nov 2026 00:00:00 +0000',
    'Message-ID: <smoke-1@a.test>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    'X-Folded: first part',
    '\tsecond part, folded   ',
  ];
  const tricky = [
    '.',
    '..',
    '.leading dot',
    'From the start of a line',
    'trailing spaces   ',
    '',
    '',
    'x'.repeat(998),
    '\ttab first',
    ' space first',
    'trailing tab\t',
  ];
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !"#$&\'()*+,-./:;<=>?@[]^_`{|}~\t';
  let seed = 20261122;
  const random = (limit: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % limit;
  };
  const body: string[] = [];
  let size = 0;
  for (let line = 0; size < 100 * 1024; line++) {
    const text = line % 40 === 0 ? tricky[(line / 40) % tricky.length]! : Array.from({ length: random(240) }, () => alphabet[random(alphabet.length)]).join('');
    body.push(text);
    size += text.length + 1;
  }
  body.push('last line');
  return `${header.join('\n')}\n\n${body.join('\n')}\n`;
}

function firstDifference(a: Buffer, b: Buffer): number {
  for (let index = 0; index < Math.min(a.length, b.length); index++) if (a[index] !== b[index]) return index;
  return a.length === b.length ? -1 : Math.min(a.length, b.length);
}
