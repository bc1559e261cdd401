/**
 * Interoperability with typage (age-encryption, the TypeScript reference on @noble): what we seal
 * typage opens and vice versa, for X25519 and ML-KEM-768 + X25519 hybrid recipients, binary and
 * armored, across the 64 KiB chunk boundaries.
 */
import { randomBytes } from 'node:crypto';
import {
  Decrypter,
  Encrypter,
  armor,
  generateHybridIdentity as typageHybridIdentity,
  generateX25519Identity as typageX25519Identity,
  identityToRecipient as typageRecipient,
} from 'age-encryption';
import { describe, expect, it } from 'vitest';
import { generateHybridIdentity, generateX25519Identity, identityToRecipient, open, seal } from '../../src/crypto/age/index.js';

const SIZES = [0, 1, 65536, 65537, 200_000];

async function typageOpen(file: Uint8Array, identity: string): Promise<Uint8Array> {
  const decrypter = new Decrypter();
  decrypter.addIdentity(identity);
  return decrypter.decrypt(file);
}

async function typageSeal(plaintext: Uint8Array, recipients: string[]): Promise<Uint8Array> {
  const encrypter = new Encrypter();
  for (const recipient of recipients) encrypter.addRecipient(recipient);
  return encrypter.encrypt(plaintext);
}

const KINDS = [
  { kind: 'X25519', ours: generateX25519Identity, theirs: typageX25519Identity },
  { kind: 'hybrid', ours: generateHybridIdentity, theirs: typageHybridIdentity },
] as const;

describe('age interop with typage', () => {
  for (const { kind, ours, theirs } of KINDS) {
    it(`${kind}: both derive the same recipient from an identity, from either side's generator`, async () => {
      for (const identity of [ours(), await theirs()]) {
        expect(identityToRecipient(identity)).toBe(await typageRecipient(identity));
      }
    });

    it(`${kind}: we seal, typage opens (sizes ${SIZES.join(', ')})`, async () => {
      const identity = ours();
      for (const size of SIZES) {
        const plaintext = randomBytes(size);
        const file = await seal(plaintext, [identityToRecipient(identity)]);
        expect(Buffer.from(await typageOpen(file, identity)).equals(plaintext)).toBe(true);
      }
    });

    it(`${kind}: typage seals, we open (sizes ${SIZES.join(', ')})`, async () => {
      const identity = await theirs();
      for (const size of SIZES) {
        const plaintext = randomBytes(size);
        const file = await typageSeal(plaintext, [await typageRecipient(identity)]);
        expect(Buffer.from(await open(file, [identity])).equals(plaintext)).toBe(true);
      }
    });

    it(`${kind}: armor both ways`, async () => {
      const identity = ours();
      const plaintext = randomBytes(70_000);
      const ourArmor = await seal(plaintext, [identityToRecipient(identity)], { armor: true });
      const text = Buffer.from(ourArmor).toString('latin1');
      expect(text.startsWith('-----BEGIN AGE ENCRYPTED FILE-----\n')).toBe(true);
      expect(Buffer.from(await typageOpen(armor.decode(text), identity)).equals(plaintext)).toBe(true);
      const theirArmor = armor.encode(await typageSeal(plaintext, [identityToRecipient(identity)]));
      expect(Buffer.from(await open(Buffer.from(theirArmor), [identity])).equals(plaintext)).toBe(true);
    });
  }

  it('a file for an X25519 and a hybrid recipient opens with either identity on either side', async () => {
    const x25519 = generateX25519Identity();
    const hybrid = await typageHybridIdentity();
    const plaintext = randomBytes(1000);
    const recipients = [identityToRecipient(x25519), identityToRecipient(hybrid)];
    const ourFile = await seal(plaintext, recipients);
    const theirFile = await typageSeal(plaintext, recipients);
    for (const identity of [x25519, hybrid]) {
      expect(Buffer.from(await typageOpen(ourFile, identity)).equals(plaintext)).toBe(true);
      expect(Buffer.from(await open(theirFile, [identity])).equals(plaintext)).toBe(true);
    }
  });
});
