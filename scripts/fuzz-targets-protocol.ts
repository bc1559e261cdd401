/**
 * Fuzz targets of src/xpony and src/smtp: the XPONY handshake lines (decoded as the server does, and sent to
 * a real server), Noise messages 2 and 3, handshake payloads, tunnel frames, the SMTP reply reader,
 * the sealed-message unwrap stream, and the BDAT path of the binary sealed message (XPONY-BINARY:
 * the command line, and the binary age file as the server opens it).
 */
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { NoiseError } from '../src/crypto/noise/index.js';
import { BdatCommandError, chunkSizeFor, parseBdat } from '../src/xpony/binary-message.js';
import { FrameError, FrameReader, FrameType, sealFrame, sealRawRuns, type OpenedFrame } from '../src/xpony/frames.js';
import { Base64Error, decodeMessage, encodeMessage } from '../src/xpony/handshake.js';
import { MAX_REPLY_LINE, MAX_REPLY_LINES } from '../src/smtp/limits.js';
import { BDAT_CHUNK_WITHOUT_SIZE, MAX_AGE_RECIPIENTS, MAX_BDAT_CHUNK } from '../src/xpony/limits.js';
import { decodePayload, encodePayload, PayloadError, type HandshakePayload } from '../src/xpony/payload.js';
import { ReplyError, ReplyReader, type Reply } from '../src/smtp/reply-reader.js';
import { createUnwrapStream, SealedMessageError } from '../src/xpony/sealed-message.js';
import { clientAwaitingMessage2, frameCipher, FUZZ_AGE_IDENTITY, serverAwaitingMessage1, serverAwaitingMessage3 } from './fuzz-fixtures.js';
import { textBytes } from './fuzz-mutations.js';
import { byteTarget, bytes, expectEqual, FuzzFailure, latin1, pieces, printable, settle, valueTarget, type FuzzTarget } from './fuzz-target.js';
import { bdatSessionVerdict, xponyServerVerdict } from './fuzz-xpony-server.js';

// --- XPONY handshake lines and Noise messages -----------------------------------------------

/** A handshake line as the server decodes it; anything accepted must be the canonical encoding. */
function decodeLine(input: Uint8Array, what: string): Uint8Array {
  const text = latin1(input);
  const message = decodeMessage(text, what);
  if (encodeMessage(message) !== text) throw new FuzzFailure(`${what}: accepted non-canonical base64 ${JSON.stringify(text)}`);
  return message;
}

const base64Line = textBytes(fc.base64String({ maxLength: 200 }));

const xponyMessage1 = byteTarget(
  'xpony-message-1',
  async (input) => {
    const read = await settle([Base64Error, NoiseError], () => serverAwaitingMessage1().readMessage(decodeLine(input, 'Noise message 1')));
    // Message 1 is a bare ephemeral key and a plaintext payload.
    if ('value' in read && read.value.length !== Buffer.from(latin1(input), 'base64').length - 32) throw new FuzzFailure('message 1 payload length');
  },
  base64Line,
);

const xponyCommand = byteTarget(
  'xpony-command',
  async (input) => {
    const verdict = await xponyServerVerdict(input);
    if (verdict !== undefined) throw new FuzzFailure(verdict);
  },
  textBytes(
    fc
      .tuple(fc.constantFrom('1', '2', '01', '999', '1000', ''), fc.constantFrom(' ', '  ', ''), fc.base64String({ maxLength: 100 }))
      .map((parts) => parts.join('')),
  ),
);

const xponyMessage3 = byteTarget(
  'xpony-message-3',
  async (input) => {
    const read = await settle([Base64Error, NoiseError, PayloadError], () => {
      const { server } = serverAwaitingMessage3();
      const payload = decodePayload(server.readMessage(decodeLine(input, 'Noise message 3')));
      return { payload, ciphers: server.split(), remote: server.remoteStaticKey };
    });
    if ('value' in read && read.value.remote?.length !== 32) throw new FuzzFailure('handshake complete without a remote static key');
  },
  base64Line,
);

const noiseMessage2 = byteTarget('noise-message-2', async (input) => {
  await settle([NoiseError, PayloadError], () => decodePayload(clientAwaitingMessage2().client.readMessage(input)));
});

// --- Handshake payload ------------------------------------------------------------------------

const handshakePayload = byteTarget('handshake-payload', async (input) => {
  const decoded = await settle([PayloadError], () => decodePayload(input));
  if ('value' in decoded) expectEqual(decodePayload(encodePayload(decoded.value)), decoded.value, 'payload re-encoded');
});

const payloadRoundTrip = valueTarget(
  'handshake-payload-roundtrip',
  fc.record(
    { ageRecipients: fc.array(printable(1, 120), { maxLength: MAX_AGE_RECIPIENTS }), hostName: printable(1, 255) },
    { requiredKeys: ['ageRecipients'], noNullPrototype: true },
  ) as fc.Arbitrary<HandshakePayload>,
  (payload) => expectEqual(decodePayload(encodePayload(payload)), payload, 'payload round trip'),
);

// --- Tunnel frames ----------------------------------------------------------------------------

interface FrameRun {
  frames: { type: number; content: string }[];
  failed: boolean;
}

/** Feeds `input` to a server's FrameReader (raw runs taken) in pieces of `size`; stops at the first FrameError. */
async function readFrames(input: Uint8Array, size: number): Promise<FrameRun> {
  const reader = new FrameReader(frameCipher(), true);
  const frames: OpenedFrame[] = [];
  for (const piece of pieces(input, size)) {
    const pushed = await settle([FrameError], () => reader.push(Buffer.from(piece)));
    if ('error' in pushed) return { frames: show(frames), failed: true };
    frames.push(...pushed.value);
  }
  return { frames: show(frames), failed: false };
}

/** The frames as comparable values; a raw run's octets as one, however many reads brought them. */
function show(frames: readonly OpenedFrame[]): FrameRun['frames'] {
  const shown: FrameRun['frames'] = [];
  for (const frame of frames) {
    const content = Buffer.concat(frame.content).toString('hex');
    const previous = shown.at(-1);
    if (frame.type === FrameType.rawRun && previous?.type === FrameType.rawRun) previous.content += content;
    else shown.push({ type: frame.type, content });
  }
  return shown;
}

const tunnelFrames = byteTarget('tunnel-frames', async (input) => {
  const whole = await readFrames(input, Math.max(1, input.length));
  const byteByByte = await readFrames(input, 1);
  expectEqual(byteByByte.failed, whole.failed, 'fed byte by byte, the reader failed');
  if (!whole.failed) expectEqual(byteByByte.frames, whole.frames, 'frames read byte by byte');
});

const frameRoundTrip = valueTarget(
  'tunnel-frames-roundtrip',
  fc.record({
    frames: fc.array(
      fc.oneof(
        fc.record({ type: fc.constant(FrameType.data as number), content: fc.uint8Array({ maxLength: 300 }) }),
        fc.record({ type: fc.constant(FrameType.rekey as number), content: fc.constant(new Uint8Array(0)) }),
        fc.record({ type: fc.constant(FrameType.rawRun as number), content: fc.uint8Array({ minLength: 1, maxLength: 300 }) }),
      ),
      { maxLength: 8 },
    ),
    close: fc.boolean(),
    pieceSize: fc.integer({ min: 1, max: 400 }),
  }),
  async ({ frames, close, pieceSize }) => {
    const sender = frameCipher();
    const sent = [...frames, ...(close ? [{ type: FrameType.close as number, content: new Uint8Array(0) }] : [])];
    const wire = sent.flatMap((frame) => {
      if (frame.type === FrameType.rawRun) return sealRawRuns(sender, [frame.content]);
      const sealed = sealFrame(sender, frame.type as FrameType, [frame.content]);
      if (frame.type === FrameType.rekey) sender.rekey();
      return sealed;
    });
    const read = await readFrames(bytes(Buffer.concat(wire)), pieceSize);
    expectEqual(read, { frames: show(sent.map((f) => ({ type: f.type as FrameType, content: [f.content] }))), failed: false }, 'frames round trip');
  },
);

// --- SMTP reply reader ------------------------------------------------------------------------

interface ReplyRun {
  replies: Reply[];
  /** Why the reader refused to read on (the end of the input, at the latest). */
  refusal: string;
}

/** Reads replies from `input`, arriving in pieces of `size`, until the reader refuses with a ReplyError. */
async function readReplies(input: Uint8Array, maxLine: number, size: number): Promise<ReplyRun> {
  const stream = new PassThrough();
  const reader = new ReplyReader(stream);
  const run = (async (): Promise<ReplyRun> => {
    const replies: Reply[] = [];
    for (;;) {
      const read = await settle([ReplyError], () => reader.read(maxLine));
      if ('error' in read) return { replies, refusal: read.error.message };
      replies.push(read.value);
      if (replies.length > input.length) throw new FuzzFailure('more replies than octets');
    }
  })();
  for (const piece of pieces(input, size)) {
    stream.write(Buffer.from(piece));
    // Let the reader look at each piece while a read is pending.
    await new Promise(setImmediate);
  }
  stream.end();
  return run;
}

function checkReply(reply: Reply, maxLine: number): void {
  const lines = reply.raw.toString('latin1').split('\r\n');
  if (lines.pop() !== '') throw new FuzzFailure('reply does not end in CRLF');
  if (lines.length !== reply.lines.length || lines.length > MAX_REPLY_LINES) throw new FuzzFailure(`reply of ${lines.length} lines`);
  lines.forEach((line, i) => {
    if (line.length + 2 > maxLine) throw new FuzzFailure(`reply line of ${line.length + 2} octets, limit ${maxLine}`);
    const separator = i < lines.length - 1 ? '-' : line.length === 3 ? undefined : ' ';
    if (!line.startsWith(String(reply.code)) || line[3] !== separator || line.slice(4) !== reply.lines[i]) {
      throw new FuzzFailure(`reply line ${JSON.stringify(line)} does not match ${reply.code} ${JSON.stringify(reply.lines[i])}`);
    }
  });
  if (!(reply.code >= 200 && reply.code <= 599)) throw new FuzzFailure(`reply code ${reply.code}`);
}

const replyReader = byteTarget(
  'reply-reader',
  async (input) => {
    for (const maxLine of [MAX_REPLY_LINE, 24]) {
      const whole = await readReplies(input, maxLine, Math.max(1, input.length));
      for (const reply of whole.replies) checkReply(reply, maxLine);
      const raw = Buffer.concat(whole.replies.map((r) => r.raw));
      expectEqual(bytes(raw), input.subarray(0, raw.length), 'replies are the input read in order');
      expectEqual(await readReplies(input, maxLine, 3), whole, 'replies read from 3-octet pieces');
    }
  },
  textBytes(
    fc
      .array(fc.tuple(fc.constantFrom('220', '250', '334', '421', '199', '600', '25'), fc.constantFrom(' ', '-', '', 'x'), printable(0, 30)), { maxLength: 70 })
      .map((lines) => lines.map(([code, sep, text]) => `${code}${sep}${text}\r\n`).join('')),
  ),
);

// --- Sealed message ---------------------------------------------------------------------------

interface UnwrapRun {
  output: string;
  sealed: boolean | undefined;
}

/** Feeds `input` in pieces of `size` through an UnwrapStream; `binary`: as the binary age file of BDAT chunks. */
async function unwrap(input: Uint8Array, size: number, binary = false): Promise<UnwrapRun> {
  const stream = createUnwrapStream([FUZZ_AGE_IDENTITY], binary);
  const output: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => output.push(chunk));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  for (const piece of pieces(input, size)) stream.write(Buffer.from(piece));
  stream.end();
  await done;
  return { output: Buffer.concat(output).toString('hex'), sealed: stream.sealed };
}

const sealedMessage = byteTarget('sealed-message', async (input) => {
  const whole = await settle([SealedMessageError], () => unwrap(input, Math.max(1, input.length)));
  if ('value' in whole && whole.value.sealed !== true)
    expectEqual(whole.value.output, Buffer.from(input).toString('hex'), 'a message that is not sealed passes unchanged');
  const inPieces = await settle([SealedMessageError], () => unwrap(input, 61));
  const kind = (run: typeof whole) => ('error' in run ? (run.error as SealedMessageError).kind : run.value);
  expectEqual(kind(inPieces), kind(whole), 'unwrapped from 61-octet pieces');
});

// --- The binary sealed message (XPONY-BINARY) ------------------------------------------------

/** A BDAT line: refused with 501 or 552 and a close, or a size within the limit that reads back the same. */
const bdatCommand = byteTarget(
  'bdat-command',
  async (input) => {
    const parsed = await settle([BdatCommandError], () => parseBdat(latin1(input), MAX_BDAT_CHUNK));
    if ('error' in parsed) {
      const refusal = parsed.error as BdatCommandError;
      if (!refusal.close || (refusal.code !== 501 && refusal.code !== 552)) throw new FuzzFailure(`refused with ${refusal.code}, close ${refusal.close}`);
      return;
    }
    const { size, last } = parsed.value;
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_BDAT_CHUNK) throw new FuzzFailure(`accepted a chunk of ${size} octets`);
    expectEqual(parseBdat(`BDAT ${size}${last ? ' LAST' : ''}`, MAX_BDAT_CHUNK), parsed.value, 'BDAT line written again');
  },
  textBytes(
    fc
      .tuple(
        fc.constantFrom('BDAT', 'bdat', 'BDAT ', 'BDA'),
        fc.constantFrom(' ', '  ', '\t', ''),
        fc.oneof(fc.nat({ max: 2 * MAX_BDAT_CHUNK }).map(String), fc.stringMatching(/^[0-9]{0,24}$/), printable(0, 8)),
        fc.constantFrom('', ' LAST', ' last', 'LAST', ' LAST ', ' LAST x'),
      )
      .map((parts) => parts.join('')),
  ),
);

/** A server's XPONY-BINARY EHLO line, as the client reads it: a chunk size within the client's bounds, whatever the server says. */
const binaryKeyword = byteTarget('binary-keyword', (input) => {
  const line = latin1(input);
  const size = chunkSizeFor(['PIPELINING', line, 'CHUNKING']);
  if (!Number.isSafeInteger(size) || size < BDAT_CHUNK_WITHOUT_SIZE || size > MAX_BDAT_CHUNK) throw new FuzzFailure(`chunk size ${size}`);
  // Only a line that is the keyword and digits alone announces a size.
  if (!/^XPONY-BINARY [0-9]{1,20}$/i.test(line)) expectEqual(size, BDAT_CHUNK_WITHOUT_SIZE, 'the chunk size without a usable announcement');
});

/** The octets of BDAT chunks as the server opens them: a damaged file is refused, never passed on unopened. */
const binaryMessage = byteTarget('binary-message', async (input) => {
  const whole = await settle([SealedMessageError], () => unwrap(input, Math.max(1, input.length), true));
  if ('value' in whole && whole.value.sealed !== true) throw new FuzzFailure('binary message passed on without being opened');
  const chunked = await settle([SealedMessageError], () => unwrap(input, 61, true));
  const kind = (run: typeof whole) => ('error' in run ? (run.error as SealedMessageError).kind : run.value);
  expectEqual(kind(chunked), kind(whole), 'opened from 61-octet pieces');
});

/** BDAT lines, chunk octets and commands in a real tunnel: answered, then closed, whatever they are. */
const bdatSession = byteTarget(
  'bdat-session',
  async (input) => {
    const verdict = await bdatSessionVerdict(input);
    if (verdict !== undefined) throw new FuzzFailure(verdict);
  },
  textBytes(
    fc
      .array(
        fc.oneof(
          fc.nat({ max: 300 }).map((size) => `BDAT ${size}\r\n${'x'.repeat(size)}`),
          fc.constantFrom('BDAT 0 LAST\r\n', 'BDAT 5 LAST\r\nabc', 'RSET\r\n', 'DATA\r\n', 'QUIT\r\n', `BDAT ${MAX_BDAT_CHUNK + 1}\r\n`, 'BDAT x\r\n'),
        ),
        { maxLength: 6 },
      )
      .map((parts) => parts.join('')),
  ),
);

export const PROTOCOL_TARGETS: readonly FuzzTarget<unknown>[] = [
  xponyMessage1,
  xponyCommand,
  xponyMessage3,
  noiseMessage2,
  handshakePayload,
  payloadRoundTrip,
  tunnelFrames,
  frameRoundTrip,
  replyReader,
  sealedMessage,
  bdatCommand,
  binaryKeyword,
  binaryMessage,
  bdatSession,
];
