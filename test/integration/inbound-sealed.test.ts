/**
 * Sealed messages through blackpony to a real Postfix: opened on the way, delivered as the
 * original octets; damaged or foreign-key ones get the spec's reply and nothing reaches the
 * Maildir or the queue. One message is sealed by the age CLI, to check interoperability.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateX25519Identity, identityToRecipient } from '../../src/crypto/age/index.js';
import { generateKeys } from '../../src/crypto/keyfile.js';
import { createWrapStream, WRAPPER_HEADER } from '../../src/xpony/sealed-message.js';
import { AGE, describeWith, POSTFIX, ROOT } from '../harness/requirements.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';
import { MAILBOX, postfixBehindBlackpony, sendRaw } from './inbound-fixtures.js';
import { serverKeys } from './xpony-fixtures.js';

/** The original: 8-bit text, lines with lone dots, CRLF line ends as in DATA. */
const ORIGINAL = Buffer.from(
  [
    'From: Alice <alice@sender.test>',
    'To: user@d.test',
    'Subject: sealed all the way',
    'Date: Sun, 22 Nov 2026 00:00:00 +0000',
    'Message-ID: <sealed-1@sender.test>',
    '',
    'first line',
    '.',
    '..two dots',
    'caf\u00e9 8-bit',
    '',
  ].join('\r\n'),
  'utf8',
);
/** As a Maildir stores it. */
const STORED = Buffer.from(ORIGINAL.toString('latin1').replaceAll('\r\n', '\n'), 'latin1');

async function sealTo(recipient: string, octets: Buffer): Promise<Buffer> {
  return buffer(Readable.from([octets]).pipe(createWrapStream([recipient])) as NodeJS.ReadableStream & AsyncIterable<Buffer>);
}

/** One plain SMTP transaction; resolves with the reply to the final dot. Sealed messages need no dot-stuffing. */
async function send(port: number, sender: string, message: Buffer): Promise<string> {
  const octets = message.toString('latin1');
  return sendRaw(port, `${octets}${octets.endsWith('\r\n') ? '' : '\r\n'}`, { from: sender });
}

describeWith([ROOT, POSTFIX], 'inbound: sealed messages to a real Postfix', () => {
  const site = postfixBehindBlackpony();

  async function expectNothingDelivered(before: number, sender: string): Promise<void> {
    await site.behind.postfix.waitForSessionsEnded();
    expect(await site.behind.postfix.maildirMessages(MAILBOX)).toHaveLength(before);
    expect((await site.behind.postfix.queue()).filter((m) => m.sender === sender)).toHaveLength(0);
  }

  it('delivers the original octets of a sealed message sent over a plain session, behind a kept Received: and sealed=yes; relay=sealed', async () => {
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    const received = 'Received: from backup.sender.test by mx2.d.test; Sun, 22 Nov 2026 00:00:01 +0000\r\n';
    const sealed = Buffer.concat([Buffer.from(received, 'latin1'), await sealTo(serverKeys().ageX25519Recipient, ORIGINAL)]);
    expect(await send(site.pony.port, 'alice@sender.test', sealed)).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const delivered = (await site.behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes;
    // Trace header, the Received: added on the way, then exactly the original.
    const tail = Buffer.concat([Buffer.from(received.replace('\r\n', '\n'), 'latin1'), STORED]);
    expect(delivered.subarray(delivered.length - tail.length).equals(tail)).toBe(true);
    const text = delivered.toString('latin1');
    expect(text).toMatch(/^X-Pony-Trace: v=1; by=mx\.blackpony\.test; via=plain; peer=none; sealed=yes; relay=sealed;\n/m);
    expect(text).not.toContain('X-Pony-Sealed');
    expect(text).not.toContain('BEGIN AGE ENCRYPTED FILE');
  });

  it('answers 554 5.6.0 for a sealed message damaged in its last chunk; the chunks before reached Postfix, nothing is delivered', async () => {
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    // Three 64 KiB chunks authenticate and go to Postfix before the altered fourth one.
    const long = Buffer.concat([ORIGINAL, Buffer.from(`${'x'.repeat(76)}\r\n`.repeat(3000), 'latin1')]);
    const sealed = await sealTo(serverKeys().ageX25519Recipient, long);
    const at = sealed.length - 60;
    sealed[at] = sealed[at] === 0x41 ? 0x42 : 0x41;
    expect(await send(site.pony.port, 'damaged@sender.test', sealed)).toMatch(/^554 5\.6\.0 sealed message damaged: /);
    await waitFor(
      'postfix logs the dropped connection',
      async () => {
        const bytes = /lost connection after DATA \((\d+) bytes\)/.exec(await site.behind.postfix.readLog())?.[1];
        return bytes === undefined ? undefined : Number(bytes);
      },
      { diagnostics: () => site.behind.postfix.readLog() },
    ).then((bytes) => expect(bytes).toBeGreaterThanOrEqual(3 * 64 * 1024));
    await expectNothingDelivered(before, 'damaged@sender.test');
  });

  it('answers 554 5.6.0 for a truncated sealed message and delivers nothing', async () => {
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    const sealed = await sealTo(serverKeys().ageX25519Recipient, ORIGINAL);
    expect(await send(site.pony.port, 'truncated@sender.test', sealed.subarray(0, sealed.length - 40))).toMatch(/^554 5\.6\.0 sealed message damaged: /);
    await expectNothingDelivered(before, 'truncated@sender.test');
  });

  it("answers 451 4.7.5 for a message sealed to another host's key and delivers nothing", async () => {
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    const sealed = await sealTo(identityToRecipient(generateX25519Identity()), ORIGINAL);
    expect(await send(site.pony.port, 'foreign@sender.test', sealed)).toBe("451 4.7.5 sealed message not addressed to this host's keys");
    await expectNothingDelivered(before, 'foreign@sender.test');
  });

  it('after a key change, opens messages sealed to the new and to the earlier age recipient', async () => {
    const next = generateKeys();
    site.pony.inbound.setKeys(next);
    for (const [sender, recipient] of [
      ['new-key@sender.test', next.ageX25519Recipient],
      ['old-key@sender.test', serverKeys().ageX25519Recipient],
    ] as const) {
      const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
      expect(await send(site.pony.port, sender, await sealTo(recipient, ORIGINAL))).toMatch(/^250 2\.0\.0 Ok: queued as /);
      const delivered = (await site.behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes;
      expect(delivered.subarray(delivered.length - STORED.length).equals(STORED)).toBe(true);
    }
  });
});

describeWith([ROOT, POSTFIX, AGE], 'inbound: a message sealed by the age CLI', () => {
  const site = postfixBehindBlackpony();
  let dir: string;

  beforeAll(async () => {
    dir = await makeTempDir('sealed-cli');
  });
  afterAll(async () => {
    if (dir !== undefined) await removeTempDir(dir);
  });

  it('opens `age -a -r` output wrapped by hand and delivers the original', async () => {
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    const input = join(dir, 'original.eml');
    await writeFile(input, ORIGINAL);
    const { stdout } = await promisify(execFile)('/usr/bin/age', ['-a', '-r', serverKeys().ageX25519Recipient, input], { encoding: 'latin1' });
    const sealed = Buffer.concat([WRAPPER_HEADER, Buffer.from(stdout.replaceAll('\n', '\r\n'), 'latin1')]);
    expect(await send(site.pony.port, 'cli@sender.test', sealed)).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const delivered = (await site.behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes;
    expect(delivered.subarray(delivered.length - STORED.length).equals(STORED)).toBe(true);
    expect(delivered.toString('latin1')).toContain('sealed=yes;');
  });
});
