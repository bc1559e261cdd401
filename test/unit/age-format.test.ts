/**
 * The age header codec: what we encode parses back to the same stanzas and the same bytes, body
 * wrapping follows the spec at the 48-byte line boundary, and the scrypt-alone rule holds.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from '../../src/crypto/primitives.js';
import { AgeError, createSealer, generateX25519Identity, generateHybridIdentity, identityToRecipient } from '../../src/crypto/age/index.js';
import { encodeHeader, encodeHeaderNoMac, parseHeader, type Stanza } from '../../src/crypto/age/format.js';

describe('age header codec', () => {
  it('round-trips stanzas with bodies around the 48-byte line boundary', () => {
    const stanzas: Stanza[] = [0, 1, 47, 48, 49, 96, 200].map((n, i) => ({ type: `t${i}`, args: i % 2 ? ['a', 'b=c'] : [], body: randomBytes(n) }));
    const headerNoMac = encodeHeaderNoMac(stanzas);
    const mac = randomBytes(32);
    const payload = Buffer.from('payload bytes');
    const { header, rest } = parseHeader(Buffer.concat([encodeHeader(headerNoMac, mac), payload]));
    expect(header.stanzas).toEqual(stanzas);
    expect(header.mac).toEqual(mac);
    expect(Buffer.from(header.headerNoMac).equals(Buffer.from(headerNoMac))).toBe(true);
    expect(Buffer.from(rest).equals(payload)).toBe(true);
  });

  it('ends a body that fills its last line with an empty line, as the spec requires', () => {
    const text = Buffer.from(encodeHeaderNoMac([{ type: 'X', args: [], body: new Uint8Array(48) }])).toString();
    expect(text).toBe(`age-encryption.org/v1\n-> X\n${'A'.repeat(64)}\n\n---`);
  });

  it('refuses an scrypt stanza next to another stanza', () => {
    const header = encodeHeaderNoMac([
      { type: 'scrypt', args: ['c2FsdA', '10'], body: new Uint8Array(32) },
      { type: 'X25519', args: ['c2hhcmU'], body: new Uint8Array(32) },
    ]);
    expect(() => parseHeader(encodeHeader(header, new Uint8Array(32)))).toThrow(AgeError);
    expect(() => parseHeader(encodeHeader(header, new Uint8Array(32)))).toThrow(/scrypt stanza must be the only stanza/);
  });

  it('names the line and the reason in its errors', () => {
    expect(() => parseHeader(Buffer.from('age-encryption.org/v1\n-> X25519 abc\n!!!\n'))).toThrow(/line 3: expected canonical unpadded base64/);
    expect(() => parseHeader(Buffer.from('age-encryption.org/v2\n'))).toThrow(/line 1: unsupported version/);
    expect(() => parseHeader(Buffer.from('age-encryption.org/v1\r\n'))).toThrow(/line 1: .*0x0d/);
  });

  it("says where a sealer's payload begins: after the header and the 16-octet payload nonce, for any recipients", async () => {
    for (const identities of [[await generateX25519Identity()], [await generateHybridIdentity(), await generateX25519Identity()]]) {
      const pieces: Uint8Array[] = [];
      const sealer = createSealer(await Promise.all(identities.map(identityToRecipient)), (piece) => pieces.push(piece));
      sealer.push(Buffer.from('hello'));
      sealer.end();
      const { rest } = parseHeader(Buffer.concat(pieces));
      expect(Buffer.concat(pieces).length - sealer.headerLength).toBe(rest.length - 16);
      // The header goes out whole, as the first piece.
      expect(pieces[0]!.length).toBe(sealer.headerLength);
    }
  });
});
