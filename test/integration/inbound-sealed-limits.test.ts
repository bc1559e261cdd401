/**
 * Sealed messages from the attacker's side (issue 14): a plaintext client sending a sealed
 * message whose age header holds many post-quantum stanzas must not make blackpony run ML-KEM
 * decapsulations for them, and key reloads must not grow the identities each message is tried
 * against. The work is counted where it happens (X-Wing decapsulation), with a real Postfix behind.
 */
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, afterEach, expect, it, vi } from 'vitest';
import { generateHybridIdentity, identityToRecipient, type Recipient } from '../../src/crypto/age/index.js';
import { XWingDecapsulationKey } from '../../src/crypto/age/xwing.js';
import { generateKeys, type Keys } from '../../src/crypto/keyfile.js';
import { KEPT_KEY_FILES } from '../../src/inbound/age-identities.js';
import { MAX_SEALED_STANZAS } from '../../src/xpony/limits.js';
import { createWrapStream } from '../../src/xpony/sealed-message.js';
import { describeWith, POSTFIX, ROOT } from '../harness/requirements.js';
import { MAILBOX, postfixBehindBlackpony, sendRaw } from './inbound-fixtures.js';
import { serverKeys } from './xpony-fixtures.js';

const ORIGINAL = Buffer.from('From: a@sender.test\r\nTo: user@d.test\r\nSubject: limits\r\n\r\nbody\r\n', 'latin1');

async function sealTo(recipients: readonly (string | Recipient)[]): Promise<Buffer> {
  return buffer(Readable.from([ORIGINAL]).pipe(createWrapStream(recipients)) as NodeJS.ReadableStream & AsyncIterable<Buffer>);
}

/** One plaintext SMTP transaction; resolves with the reply to the final dot. */
async function send(port: number, message: Buffer): Promise<string> {
  return sendRaw(port, message.toString('latin1'), { ehlo: 'attacker.test', from: 'mallory@attacker.test' });
}

/** A stanza of a type no blackpony has an identity for, as a greasing sender might add. */
const GREASE: Recipient = {
  toString: () => 'grease',
  wrapFileKey: () => [{ type: 'grease-x', args: ['abc'], body: new Uint8Array(32) }],
};

describeWith([ROOT, POSTFIX], 'inbound: the work a sealed message can cause', () => {
  const site = postfixBehindBlackpony();
  const stranger = identityToRecipient(generateHybridIdentity());
  const decapsulations = vi.spyOn(XWingDecapsulationKey.prototype, 'decapsulate');

  afterEach(() => decapsulations.mockClear());
  // Registered after the site's: runs before it stops (vitest runs after-hooks in reverse).
  afterAll(() => decapsulations.mockRestore());

  it("refuses a plaintext client's message with 128 post-quantum stanzas as damaged, without one ML-KEM decapsulation", async () => {
    const attack = await sealTo(Array<string>(128).fill(stranger));
    expect(await send(site.pony.port, attack)).toMatch(new RegExp(`^554 5\\.6\\.0 sealed message damaged: .*more than ${MAX_SEALED_STANZAS} stanzas`));
    expect(decapsulations).not.toHaveBeenCalled();
    // Repeated at once, still none, and the server keeps answering.
    const replies = await Promise.all([1, 2, 3, 4].map(() => send(site.pony.port, attack)));
    for (const reply of replies) expect(reply).toMatch(/^554 5\.6\.0 /);
    expect(decapsulations).not.toHaveBeenCalled();
  });

  it('holds the same limits for a sealed message relayed by a backup MX (its Received: in front, its fields behind the marker)', async () => {
    const relayed = (sealed: Buffer): Buffer => {
      const end = sealed.indexOf('\r\n\r\n');
      return Buffer.concat([
        Buffer.from('Received: from mx.sender.test by backup.d.test; Sun, 22 Nov 2026 00:00:01 +0000\r\n', 'latin1'),
        sealed.subarray(0, end),
        Buffer.from('\r\nMessage-Id: <relayed@backup.d.test>', 'latin1'),
        sealed.subarray(end),
      ]);
    };
    expect(await send(site.pony.port, relayed(await sealTo(Array<string>(128).fill(stranger))))).toMatch(
      new RegExp(`^554 5\\.6\\.0 sealed message damaged: .*more than ${MAX_SEALED_STANZAS} stanzas`),
    );
    expect(await send(site.pony.port, relayed(await sealTo(Array<Recipient>(MAX_SEALED_STANZAS).fill(GREASE))))).toBe(
      "451 4.7.5 sealed message not addressed to this host's keys",
    );
    expect(decapsulations).not.toHaveBeenCalled();
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    expect(await send(site.pony.port, relayed(await sealTo([GREASE, serverKeys().ageHybridRecipient])))).toMatch(/^250 2\.0\.0 /);
    const delivered = (await site.behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('latin1');
    expect(delivered).toMatch(/^X-Pony-Trace: [^\n]*via=plain; peer=none; sealed=yes; relay=sealed;\n/m);
    expect(delivered).not.toContain('relayed@backup.d.test');
    expect(decapsulations).toHaveBeenCalledTimes(1);
  });

  it('tries a stanza only with an identity of its type: stanzas of an unknown type cost no decapsulation', async () => {
    expect(await send(site.pony.port, await sealTo(Array<Recipient>(MAX_SEALED_STANZAS).fill(GREASE)))).toBe(
      "451 4.7.5 sealed message not addressed to this host's keys",
    );
    expect(decapsulations).not.toHaveBeenCalled();
    // At the limit, post-quantum stanzas for another host: one try each with the one hybrid identity.
    expect(await send(site.pony.port, await sealTo(Array<string>(MAX_SEALED_STANZAS).fill(stranger)))).toBe(
      "451 4.7.5 sealed message not addressed to this host's keys",
    );
    expect(decapsulations).toHaveBeenCalledTimes(MAX_SEALED_STANZAS);
  });

  it('still opens a legitimate sealed message, next to a stanza of an unknown type, with one decapsulation', async () => {
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    expect(await send(site.pony.port, await sealTo([GREASE, serverKeys().ageHybridRecipient]))).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const delivered = (await site.behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('latin1');
    expect(delivered).toContain('sealed=yes;');
    expect(delivered).toContain('\nSubject: limits\n');
    expect(delivered.endsWith('\n\nbody\n')).toBe(true);
    expect(decapsulations).toHaveBeenCalledTimes(1);
  });

  it('keeps the identities of the current and the last few key files through a reload loop, no more', async () => {
    const loaded: Keys[] = [];
    for (let i = 0; i < 20; i++) {
      const keys = generateKeys();
      site.pony.inbound.setKeys(keys);
      site.pony.inbound.setKeys(keys); // reloading the same file adds nothing
      loaded.push(keys);
    }
    expect(await send(site.pony.port, await sealTo([stranger]))).toBe("451 4.7.5 sealed message not addressed to this host's keys");
    expect(decapsulations).toHaveBeenCalledTimes(KEPT_KEY_FILES);
    const oldestKept = loaded.at(-KEPT_KEY_FILES)!;
    const dropped = loaded.at(-KEPT_KEY_FILES - 1)!;
    expect(await send(site.pony.port, await sealTo([oldestKept.ageHybridRecipient]))).toMatch(/^250 2\.0\.0 /);
    expect(await send(site.pony.port, await sealTo([dropped.ageHybridRecipient]))).toBe("451 4.7.5 sealed message not addressed to this host's keys");
  });
});
