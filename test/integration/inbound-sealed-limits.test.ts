/**
 * Sealed messages from the attacker's side (issue 14): a plaintext client sending a sealed
 * message whose age header holds many post-quantum stanzas must not make blackpony run ML-KEM
 * decapsulations for them, and key reloads must not grow the identities each message is tried
 * against. The work is counted where it happens (X-Wing decapsulation), with a real Postfix behind.
 */
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { generateHybridIdentity, identityToRecipient, type Recipient } from '../../src/crypto/age/index.js';
import { XWingDecapsulationKey } from '../../src/crypto/age/xwing.js';
import { generateKeys, type Keys } from '../../src/crypto/keyfile.js';
import { KEPT_KEY_FILES } from '../../src/inbound/age-identities.js';
import { MAX_SEALED_STANZAS } from '../../src/protocol/limits.js';
import { createWrapStream } from '../../src/protocol/sealed-message.js';
import { describeWith, POSTFIX, ROOT } from '../harness/requirements.js';
import { MAILBOX, startBlackpony, startPostfixBehind, type Blackpony, type PostfixBehind } from './inbound-fixtures.js';
import { RawSmtp, serverKeys } from './xpony-fixtures.js';

const ORIGINAL = Buffer.from('From: a@sender.test\r\nTo: user@d.test\r\nSubject: limits\r\n\r\nbody\r\n', 'latin1');

async function sealTo(recipients: readonly (string | Recipient)[]): Promise<Buffer> {
  return buffer(Readable.from([ORIGINAL]).pipe(createWrapStream(recipients)) as NodeJS.ReadableStream & AsyncIterable<Buffer>);
}

/** One plaintext SMTP transaction; resolves with the reply to the final dot. */
async function send(port: number, message: Buffer): Promise<string> {
  const smtp = await RawSmtp.connect(port);
  try {
    expect((await smtp.reply()).code).toBe(220);
    expect(await smtp.command('EHLO attacker.test')).toMatch(/^250/);
    expect(await smtp.command('MAIL FROM:<mallory@attacker.test>')).toMatch(/^250 /);
    expect(await smtp.command(`RCPT TO:<${MAILBOX}>`)).toMatch(/^250 /);
    expect(await smtp.command('DATA')).toMatch(/^354 /);
    return await smtp.command(`${message.toString('latin1')}.`);
  } finally {
    smtp.stream.destroy();
  }
}

/** A stanza of a type no blackpony has an identity for, as a greasing sender might add. */
const GREASE: Recipient = {
  toString: () => 'grease',
  wrapFileKey: () => [{ type: 'grease-x', args: ['abc'], body: new Uint8Array(32) }],
};

describeWith([ROOT, POSTFIX], 'inbound: the work a sealed message can cause', () => {
  let behind: PostfixBehind;
  let pony: Blackpony;
  const stranger = identityToRecipient(generateHybridIdentity());
  const decapsulations = vi.spyOn(XWingDecapsulationKey.prototype, 'decapsulate');

  beforeAll(async () => {
    behind = await startPostfixBehind();
    pony = await startBlackpony(behind.listenerPort);
  });
  afterEach(() => decapsulations.mockClear());
  afterAll(async () => {
    decapsulations.mockRestore();
    await pony?.inbound.close();
    await behind?.postfix.stop();
  });

  it('refuses a plaintext client\'s message with 128 post-quantum stanzas as damaged, without one ML-KEM decapsulation', async () => {
    const attack = await sealTo(Array<string>(128).fill(stranger));
    expect(await send(pony.port, attack)).toMatch(new RegExp(`^554 5\\.6\\.0 sealed message damaged: .*more than ${MAX_SEALED_STANZAS} stanzas`));
    expect(decapsulations).not.toHaveBeenCalled();
    // Repeated at once, still none, and the server keeps answering.
    const replies = await Promise.all([1, 2, 3, 4].map(() => send(pony.port, attack)));
    for (const reply of replies) expect(reply).toMatch(/^554 5\.6\.0 /);
    expect(decapsulations).not.toHaveBeenCalled();
  });

  it('tries a stanza only with an identity of its type: stanzas of an unknown type cost no decapsulation', async () => {
    expect(await send(pony.port, await sealTo(Array<Recipient>(MAX_SEALED_STANZAS).fill(GREASE)))).toBe("451 4.7.5 sealed message not addressed to this host's keys");
    expect(decapsulations).not.toHaveBeenCalled();
    // At the limit, post-quantum stanzas for another host: one try each with the one hybrid identity.
    expect(await send(pony.port, await sealTo(Array<string>(MAX_SEALED_STANZAS).fill(stranger)))).toBe("451 4.7.5 sealed message not addressed to this host's keys");
    expect(decapsulations).toHaveBeenCalledTimes(MAX_SEALED_STANZAS);
  });

  it('still opens a legitimate sealed message, next to a stanza of an unknown type, with one decapsulation', async () => {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    expect(await send(pony.port, await sealTo([GREASE, serverKeys().ageHybridRecipient]))).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const delivered = (await behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('latin1');
    expect(delivered).toContain('sealed=yes;');
    expect(delivered).toContain('\nSubject: limits\n');
    expect(delivered.endsWith('\n\nbody\n')).toBe(true);
    expect(decapsulations).toHaveBeenCalledTimes(1);
  });

  it('keeps the identities of the current and the last few key files through a reload loop, no more', async () => {
    const loaded: Keys[] = [];
    for (let i = 0; i < 20; i++) {
      const keys = generateKeys();
      pony.inbound.setKeys(keys);
      pony.inbound.setKeys(keys); // reloading the same file adds nothing
      loaded.push(keys);
    }
    expect(await send(pony.port, await sealTo([stranger]))).toBe("451 4.7.5 sealed message not addressed to this host's keys");
    expect(decapsulations).toHaveBeenCalledTimes(KEPT_KEY_FILES);
    const oldestKept = loaded.at(-KEPT_KEY_FILES)!;
    const dropped = loaded.at(-KEPT_KEY_FILES - 1)!;
    expect(await send(pony.port, await sealTo([oldestKept.ageHybridRecipient]))).toMatch(/^250 2\.0\.0 /);
    expect(await send(pony.port, await sealTo([dropped.ageHybridRecipient]))).toBe("451 4.7.5 sealed message not addressed to this host's keys");
  });
});
