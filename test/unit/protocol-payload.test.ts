/** Handshake payloads and the prologue (docs/PROTOCOL.md section 7). */
import { describe, expect, it } from 'vitest';
import { randomBytes, randomInt } from 'node:crypto';
import { base64 } from '@scure/base';
import { decodePayload, encodePayload, PayloadError } from '../../src/xpony/payload.js';
import { buildPrologue } from '../../src/xpony/prologue.js';
import { decodeMessage, encodeMessage, Base64Error } from '../../src/xpony/handshake.js';

const field = (type: number, value: string) => Buffer.concat([Buffer.from([type, value.length >> 8, value.length & 0xff]), Buffer.from(value, 'latin1')]);

describe('handshake payload', () => {
  it('round-trips recipients and host name in TLV fields', () => {
    const encoded = encodePayload({ ageRecipients: ['age1abc', 'age1pq1def'], hostName: 'mx.example.test' });
    expect(Buffer.from(encoded)).toEqual(Buffer.concat([field(1, 'age1abc'), field(1, 'age1pq1def'), field(2, 'mx.example.test')]));
    expect(decodePayload(encoded)).toEqual({ ageRecipients: ['age1abc', 'age1pq1def'], hostName: 'mx.example.test' });
    expect(decodePayload(new Uint8Array(0))).toEqual({ ageRecipients: [] });
  });

  it('ignores unknown field types', () => {
    expect(decodePayload(Buffer.concat([field(9, 'future'), field(2, 'h.test')]))).toEqual({ ageRecipients: [], hostName: 'h.test' });
  });

  it('rejects truncated fields, repeats beyond the limit, bad values and oversize payloads', () => {
    const good = field(2, 'h.test');
    for (let cut = 1; cut < good.length; cut++) expect(() => decodePayload(good.subarray(0, cut))).toThrow(PayloadError);
    expect(() => decodePayload(Buffer.concat([good, good]))).toThrow(/host-name field repeated/);
    expect(() => decodePayload(Buffer.concat(Array.from({ length: 5 }, () => field(1, 'age1x'))))).toThrow(/5 age recipients, limit 4/);
    expect(() => decodePayload(field(2, ''))).toThrow(/host-name/);
    expect(() => decodePayload(field(2, 'a'.repeat(256)))).toThrow(/host-name/);
    expect(() => decodePayload(field(2, 'bad host'))).toThrow(/host-name/);
    expect(() => decodePayload(field(1, 'age1\u00ff'))).toThrow(/not printable ASCII/);
    expect(() => decodePayload(new Uint8Array(4097))).toThrow(/4097 octets, limit 4096/);
  });
});

describe('handshake payload: endorsements (field 0x03)', () => {
  const key = new Uint8Array(32).fill(7);
  const proof = new Uint8Array(32).fill(9);
  const endorsementField = (length: number) => Buffer.concat([Buffer.from([3, length >> 8, length & 0xff]), Buffer.alloc(length, 1)]);

  it('round-trips up to two endorsements after the other fields, and omits them when there are none', () => {
    const encoded = encodePayload({
      ageRecipients: ['age1abc'],
      hostName: 'h.test',
      endorsements: [
        { previousKey: key, proof },
        { previousKey: proof, proof: key },
      ],
    });
    expect(Buffer.from(encoded)).toEqual(
      Buffer.concat([field(1, 'age1abc'), field(2, 'h.test'), Buffer.from([3, 0, 64]), key, proof, Buffer.from([3, 0, 64]), proof, key]),
    );
    expect(decodePayload(encoded)).toEqual({
      ageRecipients: ['age1abc'],
      hostName: 'h.test',
      endorsements: [
        { previousKey: key, proof },
        { previousKey: proof, proof: key },
      ],
    });
    expect(encodePayload({ ageRecipients: [], endorsements: [] })).toHaveLength(0);
  });

  it('rejects an endorsement field of the wrong length, a third one, and a truncated one', () => {
    expect(() => decodePayload(endorsementField(63))).toThrow(/endorsement field of 63 octets, must be 64/);
    expect(() => decodePayload(endorsementField(65))).toThrow(/endorsement field of 65 octets, must be 64/);
    expect(() => decodePayload(endorsementField(0))).toThrow(/endorsement field of 0 octets/);
    expect(() => decodePayload(Buffer.concat([endorsementField(64), endorsementField(64), endorsementField(64)]))).toThrow(/3 endorsements, limit 2/);
    expect(() => decodePayload(endorsementField(64).subarray(0, 40))).toThrow(/wants 64 octets, 37 left/);
    expect(() => encodePayload({ ageRecipients: [], endorsements: [{ previousKey: key.subarray(0, 31), proof: new Uint8Array(33) }] })).toThrow(PayloadError);
    expect(() => encodePayload({ ageRecipients: [], endorsements: [1, 2, 3].map(() => ({ previousKey: key, proof })) })).toThrow(/3 endorsements, limit 2/);
  });
});

describe('handshake payload: sealed relay (field 0x04)', () => {
  it('is one empty field after the others, and absent unless announced', () => {
    const encoded = encodePayload({ ageRecipients: ['age1abc'], hostName: 'h.test', sealedRelay: true });
    expect(Buffer.from(encoded)).toEqual(Buffer.concat([field(1, 'age1abc'), field(2, 'h.test'), Buffer.from([4, 0, 0])]));
    expect(decodePayload(encoded)).toEqual({ ageRecipients: ['age1abc'], hostName: 'h.test', sealedRelay: true });
    expect(decodePayload(encodePayload({ ageRecipients: ['age1abc'] }))).not.toHaveProperty('sealedRelay');
  });

  it('rejects a sealed-relay field with a value, and a repeated one', () => {
    expect(() => decodePayload(field(4, 'yes'))).toThrow(/sealed-relay field of 3 octets, must be empty/);
    expect(() => decodePayload(Buffer.from([4, 0, 0, 4, 0, 0]))).toThrow(/sealed-relay field repeated/);
  });
});

describe('prologue', () => {
  const base = { greeting: Buffer.from('220 a\r\n'), ehloLine: Buffer.from('EHLO b\r\n'), ehloReply: Buffer.from('250 a\r\n'), version: '1' as const };
  it('is the label and four length-prefixed parts', () => {
    const expected = Buffer.concat([
      Buffer.from('blackpony-xpony\0'),
      Buffer.from([0, 0, 0, 7]),
      base.greeting,
      Buffer.from([0, 0, 0, 8]),
      base.ehloLine,
      Buffer.from([0, 0, 0, 7]),
      base.ehloReply,
      Buffer.from([0, 0, 0, 1]),
      Buffer.from('1'),
    ]);
    expect(Buffer.from(buildPrologue(base))).toEqual(expected);
  });
  it('differs when any octet of the transcript differs, including where one part ends', () => {
    const reference = Buffer.from(buildPrologue(base));
    expect(Buffer.from(buildPrologue({ ...base, ehloReply: Buffer.from('250 A\r\n') }))).not.toEqual(reference);
    // Moving an octet from one part to the next is caught by the length prefixes.
    expect(Buffer.from(buildPrologue({ ...base, greeting: Buffer.from('220 a\r'), ehloLine: Buffer.from('\nEHLO b\r\n') }))).not.toEqual(reference);
  });
});

describe('strict base64 of handshake messages', () => {
  it('accepts canonical base64 only', () => {
    expect(Buffer.from(decodeMessage('QUJD', 'm'))).toEqual(Buffer.from('ABC'));
    for (const bad of ['', 'QQ', 'QR==', 'Q Q==', 'QQ==\n', 'QUJD=', 'QU-D', 'QU_D', '====']) {
      expect(() => decodeMessage(bad, 'Noise message 3'), bad).toThrow(Base64Error);
    }
  });

  // The decoder is Node's (lenient) behind a canonical check: it must accept exactly what the
  // strict @scure/base decoder accepts, with the same bytes, on random and near-miss inputs.
  it('accepts exactly what a strict RFC 4648 decoder accepts', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n';
    const inputs: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const canonical = encodeMessage(randomBytes(i % 40));
      const spot = canonical.length === 0 ? 0 : randomInt(canonical.length);
      const mutated = canonical.slice(0, spot) + alphabet[randomInt(alphabet.length)]! + canonical.slice(spot + (i % 2));
      inputs.push(canonical, mutated, canonical.replace(/=+$/, ''));
    }
    for (const text of inputs) {
      let strict: Uint8Array | undefined;
      try {
        strict = text.length === 0 ? undefined : base64.decode(text);
      } catch {
        strict = undefined;
      }
      let ours: Uint8Array | undefined;
      try {
        ours = decodeMessage(text, 'm');
      } catch (error) {
        expect(error, text).toBeInstanceOf(Base64Error);
      }
      expect(ours === undefined ? undefined : Buffer.from(ours), JSON.stringify(text)).toEqual(strict === undefined ? undefined : Buffer.from(strict));
    }
  });
});
