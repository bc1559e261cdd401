/** Tunnel frames (docs/PROTOCOL.md section 5), from both the sender's and the attacker's side. */
import { describe, expect, it } from 'vitest';
import { CHACHA_POLY } from '../../src/crypto/noise/cipher-functions.js';
import { CipherState } from '../../src/crypto/noise/index.js';
import { randomBytes } from '../../src/crypto/primitives.js';
import { FrameError, FrameReader, FrameType, frameContents, sealFrame, sealRawRunFrame, type TransportCipher } from '../../src/xpony/frames.js';
import { MAX_FRAME_CONTENT, MAX_RAW_RUN } from '../../src/xpony/limits.js';

function pair(key: Uint8Array = randomBytes(32)): { send: CipherState; receive: CipherState } {
  return { send: new CipherState(CHACHA_POLY, key), receive: new CipherState(CHACHA_POLY, Uint8Array.from(key)) };
}

const text = (s: string) => Buffer.from(s, 'latin1');
/** A frame as it goes on the wire (sealFrame gives it in pieces). */
const sealed = (cipher: TransportCipher, type: FrameType, content?: Uint8Array): Buffer =>
  Buffer.concat(sealFrame(cipher, type, content === undefined ? [] : [content]));

describe('frames', () => {
  it('round-trips data, rekey and close frames, fed byte by byte', () => {
    const { send, receive } = pair();
    const wire = Buffer.concat([
      sealed(send, FrameType.data, text('EHLO a\r\n')),
      sealed(send, FrameType.rekey),
      (send.rekey(), sealed(send, FrameType.data, text('QUIT\r\n'))),
      sealed(send, FrameType.close),
    ]);
    const reader = new FrameReader(receive);
    const frames = [];
    for (const byte of wire) frames.push(...reader.push(Buffer.from([byte])));
    expect(frames.map((f) => [f.type, Buffer.concat(f.content).toString('latin1')])).toEqual([
      [FrameType.data, 'EHLO a\r\n'],
      [FrameType.rekey, ''],
      [FrameType.data, 'QUIT\r\n'],
      [FrameType.close, ''],
    ]);
  });

  it('carries the largest content and refuses more', () => {
    const { send, receive } = pair();
    const content = randomBytes(MAX_FRAME_CONTENT);
    const frame = sealed(send, FrameType.data, content);
    expect(frame.readUInt16BE(0)).toBe(65535);
    expect(Buffer.concat(new FrameReader(receive).push(frame)[0]!.content)).toEqual(Buffer.from(content));
    expect(() => sealed(send, FrameType.data, randomBytes(MAX_FRAME_CONTENT + 1))).toThrow(FrameError);
  });

  it('opens a frame that arrived in several reads from those reads, without copying it together', () => {
    const { send, receive } = pair();
    const content = randomBytes(MAX_FRAME_CONTENT);
    const wire = sealed(send, FrameType.data, content);
    const reads = [wire.subarray(0, 1), wire.subarray(1, 30_000), wire.subarray(30_000, wire.length - 5), wire.subarray(wire.length - 5)].map((read) =>
      Buffer.from(read),
    );
    const reader = new FrameReader(receive);
    const frames = reads.flatMap((read) => reader.push(read));
    expect(frames).toHaveLength(1);
    expect(Buffer.concat(frames[0]!.content)).toEqual(Buffer.from(content));
    // Content decrypted from the second and third reads (the tag ends the third and fills the fourth).
    expect(frames[0]!.content.map((piece) => piece.length)).toEqual([30_000 - 2 - 1, wire.length - 16 - 30_000]);
  });

  it('seals content given in pieces as the frame of the joined content', () => {
    const key = randomBytes(32);
    const content = randomBytes(5000);
    const whole = sealed(pair(key).send, FrameType.data, content);
    const pieces = Buffer.concat(sealFrame(pair(key).send, FrameType.data, [content.subarray(0, 1), content.subarray(1, 4000), content.subarray(4000)]));
    expect(pieces).toEqual(whole);
    expect(() => sealFrame(pair().send, FrameType.data, [randomBytes(MAX_FRAME_CONTENT), randomBytes(1)])).toThrow(FrameError);
  });

  it('cuts chunks into full frame contents from their pieces, the last one shorter, none copied', () => {
    const chunks = [randomBytes(70_000), randomBytes(1), randomBytes(0), randomBytes(MAX_FRAME_CONTENT + 5)];
    const contents = frameContents(chunks);
    const lengths = contents.map((content) => content.reduce((sum, piece) => sum + piece.length, 0));
    const total = 70_000 + 1 + MAX_FRAME_CONTENT + 5;
    expect(lengths).toEqual([MAX_FRAME_CONTENT, MAX_FRAME_CONTENT, total - 2 * MAX_FRAME_CONTENT]);
    expect(Buffer.concat(contents.flat())).toEqual(Buffer.concat(chunks));
    // The second content spans three chunks, and every piece is a view of its chunk.
    const spanned = [chunks[0]!, chunks[1]!, chunks[3]!];
    expect(contents[1]).toHaveLength(3);
    for (const [i, piece] of contents[1]!.entries()) {
      const chunk = spanned[i]!;
      expect(piece.buffer).toBe(chunk.buffer);
      expect(piece.byteOffset).toBeGreaterThanOrEqual(chunk.byteOffset);
      expect(piece.byteOffset + piece.length).toBeLessThanOrEqual(chunk.byteOffset + chunk.length);
    }
    expect(frameContents([])).toEqual([]);
  });

  it('rejects every single bit flip', () => {
    const key = randomBytes(32);
    const { send } = pair(key);
    const frame = sealed(send, FrameType.data, text('MAIL FROM:<a@b>\r\n'));
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
      return { frames: [0, 1, 2].map((i) => sealed(send, FrameType.data, text(`frame ${i}`))), receive };
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
    expect(() => new FrameReader(receive).push(sealed(send, 7 as FrameType))).toThrow(/type 0x7 unknown/);
    ({ send, receive } = pair());
    expect(() => new FrameReader(receive).push(sealed(send, FrameType.rekey, text('x')))).toThrow(/rekey frame carries content/);
    ({ send, receive } = pair());
    expect(() => new FrameReader(receive).push(sealed(send, FrameType.close, text('x')))).toThrow(/close frame carries content/);
    ({ send, receive } = pair());
    const wire = Buffer.concat([sealed(send, FrameType.close), sealed(send, FrameType.data, text('late'))]);
    expect(() => new FrameReader(receive).push(wire)).toThrow(/after the close frame/);
  });

  it('keeps a truncated frame pending instead of opening it', () => {
    const { send, receive } = pair();
    const frame = sealed(send, FrameType.data, text('hello'));
    const reader = new FrameReader(receive);
    expect(reader.push(frame.subarray(0, frame.length - 1))).toEqual([]);
    expect(reader.push(frame.subarray(frame.length - 1))).toHaveLength(1);
  });
});

/** Raw runs (XPONY-RAW-PAYLOAD): only the receiver that offered them takes them, and only where a raw-run frame put them. */
describe('raw runs', () => {
  const run = (cipher: TransportCipher, octets: Buffer): Buffer => Buffer.concat([...sealRawRunFrame(cipher, octets.length), octets]);
  const opened = (frames: ReturnType<FrameReader['push']>): Array<[FrameType, string]> =>
    frames.map((f) => [f.type, Buffer.concat(f.content).toString('latin1')]);

  it('hands on the announced octets as they arrive, then reads frames again, fed byte by byte and whole', () => {
    const key = randomBytes(32);
    const { send } = pair(key);
    const wire = Buffer.concat([
      sealed(send, FrameType.data, text('BDAT 9\r\n')),
      run(send, text('raw octet')),
      sealed(send, FrameType.data, text('QUIT\r\n')),
    ]);
    const whole = new FrameReader(pair(key).receive, true).push(wire);
    expect(opened(whole)).toEqual([
      [FrameType.data, 'BDAT 9\r\n'],
      [FrameType.rawRun, 'raw octet'],
      [FrameType.data, 'QUIT\r\n'],
    ]);
    const reader = new FrameReader(pair(key).receive, true);
    const bytewise = [...wire].flatMap((byte) => reader.push(Buffer.from([byte])));
    // Nothing is held back for a raw run: each read's raw octets come out at once.
    expect(bytewise.filter((f) => f.type === FrameType.rawRun)).toHaveLength(9);
    expect(Buffer.concat(bytewise.flatMap((f) => f.content)).toString('latin1')).toBe('BDAT 9\r\nraw octetQUIT\r\n');
  });

  it('ends the tunnel on a raw-run frame where none were offered (a client, an older server)', () => {
    const { send, receive } = pair();
    expect(() => new FrameReader(receive).push(run(send, text('x')))).toThrow(/type 0x3 unknown/);
  });

  it('refuses a raw-run count of 0, over MAX_RAW_RUN, or not of 4 octets', () => {
    expect(() => sealRawRunFrame(pair().send, 0)).toThrow(FrameError);
    expect(() => sealRawRunFrame(pair().send, MAX_RAW_RUN + 1)).toThrow(FrameError);
    const count = (n: number): Buffer => Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
    for (const [content, why] of [
      [count(0), /got 0$/],
      [count(MAX_RAW_RUN + 1), new RegExp(`got ${MAX_RAW_RUN + 1}$`)],
      [Buffer.alloc(3, 1), /got 3 octets$/],
      [Buffer.concat([count(1), text('x')]), /got 5 octets$/],
    ] as const) {
      const { send, receive } = pair();
      expect(() => new FrameReader(receive, true).push(sealed(send, FrameType.rawRun, content))).toThrow(why);
    }
    const { send, receive } = pair();
    expect(opened(new FrameReader(receive, true).push(run(send, Buffer.alloc(MAX_RAW_RUN, 0x61)))).map(([type, octets]) => [type, octets.length])).toEqual([
      [FrameType.rawRun, MAX_RAW_RUN],
    ]);
  });

  it('a raw run shortened, lengthened or moved on the wire: the frame after it never opens', () => {
    const key = randomBytes(32);
    const { send } = pair(key);
    const announce = Buffer.concat(sealRawRunFrame(send, 8));
    const next = sealed(send, FrameType.data, text('BDAT 0 LAST\r\n'));
    const raw = text('12345678');
    for (const [what, wire] of [
      ['one octet dropped', Buffer.concat([announce, raw.subarray(1), next])],
      ['one octet added', Buffer.concat([announce, raw, text('9'), next])],
      ['the run without its frame', Buffer.concat([raw, next])],
      ['the frame without its run', Buffer.concat([announce, next, raw])],
    ] as const) {
      const reader = new FrameReader(pair(key).receive, true);
      let dataFrames: unknown[] = [];
      try {
        dataFrames = reader.push(wire).filter((f) => f.type === FrameType.data);
      } catch (err) {
        expect(err, what).toBeInstanceOf(FrameError); // or it waits for a frame that never completes
      }
      expect(dataFrames, what).toEqual([]);
    }
  });
});
