/**
 * XPONY-BINARY from the attacker's side: a peer with a real tunnel to blackpony's inbound side
 * (a real Postfix behind it) speaks the inner SMTP by hand and sends BDAT chunks that are
 * damaged, truncated, reordered, misplaced, oversized, malformed or cut off, or whose payload's raw
 * runs (XPONY-RAW-PAYLOAD) were altered or swapped on the wire. Each gets the reply
 * docs/PROTOCOL.md section 5 gives, nothing reaches Postfix (its mailbox and queue stay as they
 * were), and the server serves the next session.
 */
import { afterEach, expect, it } from 'vitest';
import { BINARY_KEYWORD, binaryKeywordLine, RAW_PAYLOAD_KEYWORD } from '../../src/xpony/binary-message.js';
import { FrameType, sealFrame, type TransportCipher } from '../../src/xpony/frames.js';
import { BDAT_CHUNK_WITHOUT_SIZE, MAX_BDAT_CHUNK, MAX_RAW_RUN, RAW_RUN_LENGTH } from '../../src/xpony/limits.js';
import { describeWith, POSTFIX, ROOT } from '../harness/requirements.js';
import { waitFor } from '../harness/wait.js';
import { MAILBOX, postfixBehindBlackpony } from './inbound-fixtures.js';
import { binaryTestMessage, openInnerSession, sealBinary, tailSha256, type InnerSession } from './xpony-binary-fixtures.js';
import { serverKeys } from './xpony-fixtures.js';

const SENDER = 'mallory@sender.test';
/** Postfix's default message_size_limit, announced by blackpony as SIZE. */
const POSTFIX_SIZE_LIMIT = 10_240_000;
/** Several chunks of sealed message (MAX_BDAT_CHUNK each). */
const ORIGINAL = binaryTestMessage(600 * 1024);

describeWith([ROOT, POSTFIX], 'XPONY-BINARY under attack: hand-driven BDAT inside a real tunnel to blackpony and Postfix', () => {
  const site = postfixBehindBlackpony();
  let sealed: Buffer;
  const open: InnerSession[] = [];

  async function session(): Promise<InnerSession> {
    if (sealed === undefined) sealed = await sealBinary(serverKeys().ageHybridRecipient, ORIGINAL.original);
    const inner = await openInnerSession(site.pony.port);
    open.push(inner);
    expect(inner.ehlo).toContain(binaryKeywordLine(MAX_BDAT_CHUNK));
    return inner;
  }

  /** MAIL FROM with XPONY-BINARY (or without, `binary` false) and one RCPT. */
  async function transaction(inner: InnerSession, binary = true, sender = SENDER): Promise<void> {
    expect(await inner.smtp.command(`MAIL FROM:<${sender}>${binary ? ` ${BINARY_KEYWORD}` : ''}`)).toMatch(/^250 /);
    expect(await inner.smtp.command(`RCPT TO:<${MAILBOX}>`)).toMatch(/^250 /);
  }

  /** One BDAT chunk, command and octets in one write; resolves with its reply as "code text". */
  async function chunk(inner: InnerSession, octets: Buffer, last = false, announced = octets.length): Promise<string> {
    inner.smtp.stream.write(Buffer.concat([Buffer.from(`BDAT ${announced}${last ? ' LAST' : ''}\r\n`, 'latin1'), octets]));
    const reply = await inner.smtp.reply();
    return `${reply.code} ${reply.lines[0] ?? ''}`;
  }

  /** The sealed file cut into chunks of `size` octets. */
  function chunksOf(file: Buffer, size = MAX_BDAT_CHUNK): Buffer[] {
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < file.length; offset += size) chunks.push(file.subarray(offset, offset + size));
    return chunks;
  }

  /** Sends every chunk but the last, each answered 250, then the last with LAST; resolves with the last reply. */
  async function sendChunks(inner: InnerSession, chunks: readonly Buffer[]): Promise<string> {
    for (const piece of chunks.slice(0, -1)) expect(await chunk(inner, piece)).toBe(`250 2.0.0 ${piece.length} octets received`);
    return chunk(inner, chunks.at(-1)!, true);
  }

  /** Nothing from SENDER in Postfix's mailbox or queue, once Postfix's sessions have ended. */
  async function expectNothingReachedPostfix(): Promise<void> {
    await site.behind.postfix.waitForSessionsEnded();
    const delivered = await site.behind.postfix.maildirMessages(MAILBOX);
    expect(delivered.filter((m) => m.bytes.includes(`Return-Path: <${SENDER}>`)).map((m) => m.path)).toEqual([]);
    expect((await site.behind.postfix.queue()).filter((m) => m.sender === SENDER).map((m) => m.queueId)).toEqual([]);
  }

  /**
   * A well-formed binary message, in chunks of `chunkSize`, still arrives through a fresh tunnel
   * (or `opened`, one opened earlier): the server kept serving.
   */
  async function stillServes(chunkSize = MAX_BDAT_CHUNK, opened?: InnerSession): Promise<void> {
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    const inner = opened ?? (await session());
    expect(await inner.smtp.command(`MAIL FROM:<ok@sender.test> ${BINARY_KEYWORD}`)).toMatch(/^250 /);
    expect(await inner.smtp.command(`RCPT TO:<${MAILBOX}>`)).toMatch(/^250 /);
    expect(await sendChunks(inner, chunksOf(sealed, chunkSize))).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const delivered = (await site.behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes;
    expect(tailSha256(delivered, ORIGINAL.stored.length)).toBe(ORIGINAL.storedSha256);
    await inner.quit();
  }

  afterEach(async () => {
    for (const inner of open.splice(0)) inner.destroy();
  });

  it('delivers a well-formed binary message sent by hand in chunks of 256 KiB (the control case), and in the 64 KiB chunks of an older client', async () => {
    await stillServes();
    await stillServes(BDAT_CHUNK_WITHOUT_SIZE);
  });

  const damaged: Array<[string, (chunks: Buffer[]) => Buffer[]]> = [
    [
      'a chunk with one octet of the age payload flipped',
      (chunks) => {
        const copy = Buffer.from(chunks[1]!);
        copy[1000]! ^= 0x01;
        return [chunks[0]!, copy, ...chunks.slice(2)];
      },
    ],
    ['a truncated file (LAST one chunk early)', (chunks) => chunks.slice(0, -1)],
    ['a file cut inside its last chunk', (chunks) => [...chunks.slice(0, -1), chunks.at(-1)!.subarray(0, 100)]],
    ['chunks reordered', (chunks) => [chunks[0]!, chunks[2]!, chunks[1]!, ...chunks.slice(3)]],
    [
      'the armored form instead of the binary file',
      () => [Buffer.from('-----BEGIN AGE ENCRYPTED FILE-----\r\nYWdl\r\n-----END AGE ENCRYPTED FILE-----\r\n', 'latin1')],
    ],
  ];
  for (const [what, edit] of damaged) {
    it(`answers ${what} with 554 5.6.0 and passes nothing on`, async () => {
      const inner = await session();
      await transaction(inner);
      expect(await sendChunks(inner, edit(chunksOf(sealed)))).toMatch(/^554 5\.6\.0 sealed message damaged: /);
      // The transaction is over; the session goes on.
      expect(await inner.smtp.command('RSET')).toMatch(/^250 /);
      await expectNothingReachedPostfix();
      await stillServes();
    });
  }

  /** The whole transaction and QUIT in one write, as a pipelining client may send it; resolves with every reply's first line. */
  async function pipelined(inner: InnerSession, sender: string, chunks: readonly Buffer[]): Promise<string[]> {
    const wire: Buffer[] = [Buffer.from(`MAIL FROM:<${sender}> ${BINARY_KEYWORD}\r\nRCPT TO:<${MAILBOX}>\r\n`, 'latin1')];
    chunks.forEach((piece, i) => wire.push(Buffer.from(`BDAT ${piece.length}${i === chunks.length - 1 ? ' LAST' : ''}\r\n`, 'latin1'), piece));
    wire.push(Buffer.from('QUIT\r\n', 'latin1'));
    inner.smtp.stream.write(Buffer.concat(wire));
    const replies: string[] = [];
    for (let i = 0; i < chunks.length + 3; i++) {
      const reply = await inner.smtp.reply();
      replies.push(`${reply.code} ${reply.lines[0] ?? ''}`);
    }
    return replies;
  }

  it('reads commands and chunks pipelined in one write, QUIT right after the LAST octets', async () => {
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    const inner = await session();
    const chunks = chunksOf(sealed);
    const replies = await pipelined(inner, 'ok@sender.test', chunks);
    expect(replies.slice(0, 2)).toEqual([expect.stringMatching(/^250 /), expect.stringMatching(/^250 /)]);
    expect(replies.slice(2, -2)).toEqual(chunks.slice(0, -1).map((piece) => `250 2.0.0 ${piece.length} octets received`));
    expect(replies.at(-2)).toMatch(/^250 2\.0\.0 Ok: queued as /);
    expect(replies.at(-1)).toMatch(/^221 /);
    const delivered = (await site.behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes;
    expect(tailSha256(delivered, ORIGINAL.stored.length)).toBe(ORIGINAL.storedSha256);
  });

  it('answers a damaged chunk pipelined with the rest with 554 5.6.0, then QUIT with 221; nothing reaches Postfix', async () => {
    const inner = await session();
    const chunks = chunksOf(sealed);
    const damagedChunk = Buffer.from(chunks[2]!);
    damagedChunk[500]! ^= 0x80;
    const replies = await pipelined(inner, SENDER, [chunks[0]!, chunks[1]!, damagedChunk, ...chunks.slice(3)]);
    expect(replies.at(-2)).toMatch(/^554 5\.6\.0 sealed message damaged: /);
    expect(replies.at(-1)).toMatch(/^221 /);
    await expectNothingReachedPostfix();
  });

  /** The file's octets before its age payload: the header through its MAC line, then the 16-octet payload nonce. */
  const headerLength = (file: Buffer): number => file.indexOf('\n', file.indexOf('\n--- ') + 1) + 1 + 16;

  /**
   * Sends `file` in chunks as a client does to a server offering XPONY-RAW-PAYLOAD: each BDAT
   * command and the age header in frames, every payload octet in raw runs; `alter` changes the raw
   * octets on their way, as a network attacker can. Resolves with the reply to the LAST chunk.
   */
  async function sendRaw(inner: InnerSession, file: Buffer, alter: (raw: Buffer, chunk: number) => Buffer = (raw) => raw): Promise<string> {
    const tunnel = inner.tunnel!;
    const chunks = chunksOf(file);
    const header = headerLength(file);
    for (const [i, piece] of chunks.entries()) {
      const last = i === chunks.length - 1;
      const framed = i === 0 ? header : 0;
      tunnel.write(Buffer.concat([Buffer.from(`BDAT ${piece.length}${last ? ' LAST' : ''}\r\n`, 'latin1'), piece.subarray(0, framed)]));
      tunnel.write(tunnel.markRaw(alter(piece.subarray(framed), i)));
      const reply = await inner.smtp.reply();
      const line = `${reply.code} ${reply.lines[0] ?? ''}`;
      if (last) return line;
      expect(line).toBe(`250 2.0.0 ${piece.length} octets received`);
    }
    throw new Error('no chunks');
  }

  it('offers XPONY-RAW-PAYLOAD and delivers a message whose payload came in raw runs, byte for byte', async () => {
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    const inner = await session();
    expect(inner.ehlo).toContain(RAW_PAYLOAD_KEYWORD);
    await transaction(inner, true, 'ok@sender.test');
    expect(await sendRaw(inner, sealed)).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const delivered = (await site.behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes;
    expect(tailSha256(delivered, ORIGINAL.stored.length)).toBe(ORIGINAL.storedSha256);
    await inner.quit();
  });

  it('answers a payload octet altered in a raw run with 451 4.6.0 (damaged in transit: try again, do not bounce); nothing reaches Postfix', async () => {
    const inner = await session();
    await transaction(inner);
    const flipped = (raw: Buffer, chunk: number): Buffer => {
      if (chunk !== 1) return raw;
      const copy = Buffer.from(raw);
      copy[1000]! ^= 0x01;
      return copy;
    };
    expect(await sendRaw(inner, sealed, flipped)).toMatch(/^451 4\.6\.0 sealed message damaged in transit: /);
    // The tunnel's frames are intact: the session goes on.
    expect(await inner.smtp.command('RSET')).toMatch(/^250 /);
    await expectNothingReachedPostfix();
    await stillServes(MAX_BDAT_CHUNK, inner);
  });

  it('answers raw runs carrying the payload of another message to this host with 451 4.6.0; nothing reaches Postfix', async () => {
    // The same length, sealed anew: another file key, which only this message's framed header holds.
    const other = await sealBinary(serverKeys().ageHybridRecipient, ORIGINAL.original);
    expect(other.length).toBe(sealed.length);
    const inner = await session();
    await transaction(inner);
    const spliced = (_raw: Buffer, chunk: number): Buffer => chunksOf(other)[chunk]!.subarray(chunk === 0 ? headerLength(other) : 0);
    expect(await sendRaw(inner, sealed, spliced)).toMatch(/^451 4\.6\.0 sealed message damaged in transit: /);
    await expectNothingReachedPostfix();
  });

  it('ends the tunnel of a client announcing a raw run over MAX_RAW_RUN, without a reply, while another client is served; nothing reaches Postfix', async () => {
    const other = await session();
    const inner = await session();
    await transaction(inner);
    const tunnel = inner.tunnel!;
    tunnel.write(Buffer.concat([Buffer.from(`BDAT ${sealed.length} LAST\r\n`, 'latin1'), sealed.subarray(0, headerLength(sealed))]));
    // No writer of blackpony's announces more: the frame is sealed by hand with the tunnel's own key.
    const count = Buffer.alloc(RAW_RUN_LENGTH);
    count.writeUInt32BE(MAX_RAW_RUN + 1);
    const send = (tunnel as unknown as { send: TransportCipher }).send;
    await new Promise<void>((resolve) => setImmediate(resolve)); // the BDAT line's frame has left
    tunnel.socket.write(Buffer.concat([...sealFrame(send, FrameType.rawRun, [count]), sealed.subarray(headerLength(sealed))]));
    // The tunnel ends at the frame: no reply comes before the connection closes.
    await expect(inner.smtp.reply()).rejects.toThrow();
    await inner.smtp.closed();
    await expectNothingReachedPostfix();
    await stillServes(MAX_BDAT_CHUNK, other);
  });

  it('answers BDAT 0 LAST as the whole message with 554 5.6.0 (an empty file)', async () => {
    const inner = await session();
    await transaction(inner);
    expect(await chunk(inner, Buffer.alloc(0), true)).toMatch(/^554 5\.6\.0 sealed message damaged: /);
    await expectNothingReachedPostfix();
    await stillServes();
  });

  it('takes BDAT 0 LAST after the last octets as the end of a whole file', async () => {
    const before = (await site.behind.postfix.maildirMessages(MAILBOX)).length;
    const inner = await session();
    await transaction(inner, true, 'ok@sender.test');
    for (const piece of chunksOf(sealed)) expect(await chunk(inner, piece)).toBe(`250 2.0.0 ${piece.length} octets received`);
    expect(await chunk(inner, Buffer.alloc(0), true)).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const delivered = (await site.behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes;
    expect(tailSha256(delivered, ORIGINAL.stored.length)).toBe(ORIGINAL.storedSha256);
  });

  it('answers DATA in an XPONY-BINARY transaction with 503 5.5.1 and keeps the session', async () => {
    const inner = await session();
    await transaction(inner);
    expect(await inner.smtp.command('DATA')).toMatch(/^503 5\.5\.1 /);
    expect(await inner.smtp.command('RSET')).toMatch(/^250 /);
    await inner.quit();
    await expectNothingReachedPostfix();
  });

  /** Refusals after which the octets that follow cannot be told from commands: the reply, then the connection closes. */
  const closing: Array<[string, (inner: InnerSession) => Promise<void>, RegExp]> = [
    ['BDAT without MAIL XPONY-BINARY', (inner) => transaction(inner, false), /^503 5\.5\.1 /],
    ['BDAT before MAIL', async () => undefined, /^503 5\.5\.1 /],
    ['BDAT before RCPT', async (inner) => void expect(await inner.smtp.command(`MAIL FROM:<${SENDER}> ${BINARY_KEYWORD}`)).toMatch(/^250 /), /^503 5\.5\.1 /],
  ];
  for (const [what, before, expected] of closing) {
    it(`answers ${what} with ${expected.source.slice(1, 4)} and closes`, async () => {
      const inner = await session();
      await before(inner);
      expect(await chunk(inner, sealed.subarray(0, 100))).toMatch(expected);
      await inner.smtp.closed();
      await expectNothingReachedPostfix();
      await stillServes();
    });
  }

  const badSizes: Array<[string, RegExp]> = [
    [`${MAX_BDAT_CHUNK + 1}`, new RegExp(`^552 5\\.3\\.4 BDAT: chunk of ${MAX_BDAT_CHUNK + 1} octets, at most ${MAX_BDAT_CHUNK}$`)],
    ['99999999999999999999', /^552 5\.3\.4 /],
    ['999999999999999999999', /^501 5\.5\.4 /],
    ['abc', /^501 5\.5\.4 /],
    ['-1', /^501 5\.5\.4 /],
    ['1e3', /^501 5\.5\.4 /],
    ['0x10', /^501 5\.5\.4 /],
    ['', /^501 5\.5\.4 /],
    ['10 LAST extra', /^501 5\.5\.4 /],
  ];
  for (const [size, expected] of badSizes) {
    it(`answers "BDAT ${size}" in a binary transaction with ${expected.source.slice(1, 4)} and closes, before reading any octet, while another client is served`, async () => {
      const other = await session();
      const inner = await session();
      await transaction(inner);
      // The first chunk is well-formed: the bad one comes in the middle of a message.
      expect(await chunk(inner, sealed.subarray(0, 1000))).toBe('250 2.0.0 1000 octets received');
      inner.smtp.write(`BDAT ${size}\r\n`);
      const reply = await inner.smtp.reply();
      expect(`${reply.code} ${reply.lines[0]}`).toMatch(expected);
      await inner.smtp.closed();
      await expectNothingReachedPostfix();
      // A client whose tunnel was open all along delivers.
      await stillServes(MAX_BDAT_CHUNK, other);
    });
  }

  it("answers a whole file over Postfix's message_size_limit with Postfix's 552 5.3.4; nothing is queued", async () => {
    const inner = await session();
    expect(inner.ehlo).toContain(`SIZE ${POSTFIX_SIZE_LIMIT}`);
    const tooLarge = await sealBinary(serverKeys().ageHybridRecipient, binaryTestMessage(POSTFIX_SIZE_LIMIT + 100_000).original);
    await transaction(inner);
    expect(await sendChunks(inner, chunksOf(tooLarge))).toMatch(/^552 5\.3\.4 /);
    expect(await inner.smtp.command('RSET')).toMatch(/^250 /);
    await inner.quit();
    await expectNothingReachedPostfix();
    await stillServes();
  });

  it('answers RSET between chunks with 421 4.5.0 and closes, discarding the transaction', async () => {
    const inner = await session();
    await transaction(inner);
    expect(await chunk(inner, sealed.subarray(0, MAX_BDAT_CHUNK))).toMatch(/^250 /);
    expect(await inner.smtp.command('RSET')).toMatch(/^421 4\.5\.0 Error: RSET between BDAT chunks/);
    await inner.smtp.closed();
    await expectNothingReachedPostfix();
    await stillServes();
  });

  it('passes nothing on when the tunnel drops in the middle of a chunk', async () => {
    const inner = await session();
    await transaction(inner);
    expect(await chunk(inner, sealed.subarray(0, MAX_BDAT_CHUNK))).toMatch(/^250 /);
    inner.smtp.stream.write(Buffer.concat([Buffer.from(`BDAT ${MAX_BDAT_CHUNK}\r\n`), sealed.subarray(MAX_BDAT_CHUNK, MAX_BDAT_CHUNK + 30_000)]));
    const tunnel = inner.tunnel!;
    await waitFor('the half chunk written to the socket', () => (tunnel.writableLength === 0 && tunnel.socket.writableLength === 0 ? true : undefined));
    tunnel.socket.destroy();
    await expectNothingReachedPostfix();
    await stillServes();
  });

  it('reads the octets after a chunk announced larger than sent as the chunk, answers nothing, and passes nothing on when the tunnel ends', async () => {
    const inner = await session();
    await transaction(inner);
    const chunks = chunksOf(sealed);
    for (const piece of chunks.slice(0, -1)) expect(await chunk(inner, piece)).toMatch(/^250 /);
    // The last chunk announced 100 octets longer than sent: QUIT is read as octets of it.
    const last = chunks.at(-1)!;
    inner.smtp.stream.write(Buffer.concat([Buffer.from(`BDAT ${last.length + 100} LAST\r\n`), last, Buffer.from('QUIT\r\n')]));
    const replies: Buffer[] = [];
    inner.smtp.stream.on('data', (data: Buffer) => replies.push(data));
    inner.tunnel!.end(); // the close frame: the sender is done
    await inner.smtp.closed(); // every reply the server sent before it closed is in `replies`
    expect(Buffer.concat(replies).toString('latin1')).toBe('');
    await expectNothingReachedPostfix();
    await stillServes();
  });

  it('refuses MAIL FROM with XPONY-BINARY and BDAT in a plaintext session', async () => {
    const inner = await openInnerSession(site.pony.port, { plaintext: true });
    open.push(inner);
    expect(inner.ehlo.filter((line) => line.startsWith(BINARY_KEYWORD))).toEqual([]);
    expect(inner.ehlo).not.toContain('CHUNKING');
    // Outside a tunnel the parameter marks nothing (blackpony passes Postfix only the parameters it knows).
    await transaction(inner);
    expect(await chunk(inner, Buffer.from('age-encryption.org/v1\n', 'latin1'))).toMatch(
      /^503 5\.5\.1 Error: BDAT only in a XPONY-BINARY transaction inside a tunnel/,
    );
    await inner.smtp.closed();
    await expectNothingReachedPostfix();
  });
});
