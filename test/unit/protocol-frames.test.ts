/** Tunnel frames (docs/PROTOCOL.md section 5), from both the sender's and the attacker's side. */
import { describe, expect, it } from 'vitest';
import { CHACHA_POLY } from '../../src/crypto/noise/cipher-functions.js';
import { CipherState } from '../../src/crypto/noise/index.js';
import { randomBytes } from '../../src/crypto/primitives.js';
import { FrameError, FrameReader, FrameType, sealFrame } from '../../src/xpony/frames.js';
import { MAX_FRAME_CONTENT } from '../../src/xpony/limits.js';

function pair(key: Uint8Array = randomBytes(32)): { send: CipherState; receive: CipherState } {
  return { send: new CipherState(CHACHA_POLY, key), receive: new CipherState(CHACHA_POLY, Uint8Array.from(key)) };
}

const text = (s: string) => Buffer.from(s, 'latin1');

describe('frames', () => {
  it('round-trips data, rekey and close frames, fed byte by byte', () => {
    const { send, receive } = pair();
    const wire = Buffer.concat([
      sealFrame(send, FrameType.data, text('EHLO a\r\n')),
      sealFrame(send, FrameType.rekey),
      (send.rekey(), sealFrame(send, FrameType.data, text('QUIT\r\n'))),
      sealFrame(send, FrameType.close),
    ]);
    const reader = new FrameReader(receive);
    const frames = [];
    for (const byte of wire) frames.push(...reader.push(Buffer.from([byte])));
    expect(frames.map((f) => [f.type, Buffer.from(f.content).toString('latin1')])).toEqual([
      [FrameType.data, 'EHLO a\r\n'],
      [FrameType.rekey, ''],
      [FrameType.data, 'QUIT\r\n'],
      [FrameType.close, ''],
    ]);
  });

  it('carries the largest content and refuses more', () => {
    const { send, receive } = pair();
    const content = randomBytes(MAX_FRAME_CONTENT);
    const frame = sealFrame(send, FrameType.data, content);
    expect(frame.readUInt16BE(0)).toBe(65535);
    expect(Buffer.from(new FrameReader(receive).push(frame)[0]!.content)).toEqual(Buffer.from(content));
    expect(() => sealFrame(send, FrameType.data, randomBytes(MAX_FRAME_CONTENT + 1))).toThrow(FrameError);
  });

  it('rejects every single bit flip', () => {
    const key = randomBytes(32);
    const { send } = pair(key);
    const frame = sealFrame(send, FrameType.data, text('MAIL FROM:<a@b>\r\n'));
    for (let bit = 16; bit < frame.length * 8; bit++) {
      const { receive } = pair(key);
      const copy = Buffer.from(frame);
      copy[bit >> 3]! ^= 1 << (bit & 7);
      expect(() => new FrameReader(receive).push(copy), `bit ${bit}`).toThrow(FrameError);
    }
  });

  it('rejects reordered, replayed and dropped frames (the nonce numbers them)', () => {
    const make = () => {
      const { send, receive } = pair();
      return { frames: [0, 1, 2].map((i) => sealFrame(send, FrameType.data, text(`frame ${i}`))), receive };
    };
    let t = make();
    expect(() => new FrameReader(t.receive).push(Buffer.concat([t.frames[1]!, t.frames[0]!]))).toThrow(FrameError);
    t = make();
    expect(() => new FrameReader(t.receive).push(Buffer.concat([t.frames[0]!, t.frames[0]!]))).toThrow(/authentication/);
    t = make();
    expect(() => new FrameReader(t.receive).push(Buffer.concat([t.frames[0]!, t.frames[2]!]))).toThrow(FrameError);
  });

  it('rejects a length below 16, an unknown type, content in rekey or close, and data after close', () => {
    expect(() => new FrameReader(pair().receive).push(Buffer.from([0, 15, ...new Uint8Array(15)]))).toThrow(/below the 16-octet minimum/);
    let { send, receive } = pair();
    expect(() => new FrameReader(receive).push(sealFrame(send, 7 as FrameType))).toThrow(/type 0x7 unknown/);
    ({ send, receive } = pair());
    expect(() => new FrameReader(receive).push(sealFrame(send, FrameType.rekey, text('x')))).toThrow(/rekey frame carries content/);
    ({ send, receive } = pair());
    expect(() => new FrameReader(receive).push(sealFrame(send, FrameType.close, text('x')))).toThrow(/close frame carries content/);
    ({ send, receive } = pair());
    const wire = Buffer.concat([sealFrame(send, FrameType.close), sealFrame(send, FrameType.data, text('late'))]);
    expect(() => new FrameReader(receive).push(wire)).toThrow(/after the close frame/);
  });

  it('keeps a truncated frame pending instead of opening it', () => {
    const { send, receive } = pair();
    const frame = sealFrame(send, FrameType.data, text('hello'));
    const reader = new FrameReader(receive);
    expect(reader.push(frame.subarray(0, frame.length - 1))).toEqual([]);
    expect(reader.push(frame.subarray(frame.length - 1))).toHaveLength(1);
  });
});
