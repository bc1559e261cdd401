/**
 * One of the two relays of `npm run bench:floor` (bench/floor.ts): the least work that carries a
 * message the way blackpony's two daemons do, with blackpony's own code for every step that costs
 * per octet and nothing else: no SMTP commands or replies, no stream objects, no policy, no logs.
 *
 *   seal PORT NEXT_PORT: reads messages that end with CR LF . CR LF (the bench sends none with a
 *                        dot at a line start, so there is nothing to unstuff), seals each one with
 *                        age to FLOOR_RECIPIENT as it arrives, and sends the age file to NEXT_PORT
 *                        as blackpony's tunnel does to a peer offering XPONY-RAW-PAYLOAD
 *                        (xpony/frames.ts): its header in frames, its payload in raw runs;
 *   open PORT NEXT_PORT: reads frames and raw runs, opens each age file with FLOOR_IDENTITY, writes the
 *                        message dot-stuffed with its end-of-data line (smtp/dot-stuffer.ts).
 *
 * The sealed file goes in chunks of blackpony's BDAT chunk size (MAX_BDAT_CHUNK), each after a
 * 4-octet length in a frame, the stand-in for its BDAT command; the length's top bit marks the
 * message's last chunk (BDAT LAST). FLOOR_FRAME_KEY (64 hex digits)
 * is the one direction's tunnel key. Each relay takes the daemon's V8 settings (daemon/heap-growth.ts;
 * NODE_OPTIONS comes from the bench). A relay that meets anything unexpected exits with an error.
 */
import { createServer, connect, type Socket } from 'node:net';
import { createOpener, createSealer, parseIdentity, parseRecipient, type AgeOpener, type AgeSealer } from '../src/crypto/age/index.js';
import { CHACHA_POLY } from '../src/crypto/noise/cipher-functions.js';
import { CipherState } from '../src/crypto/noise/cipher-state.js';
import { tuneHeapGrowth } from '../src/daemon/heap-growth.js';
import { DotStuffer } from '../src/smtp/dot-stuffer.js';
import { FrameReader, FrameType, frameContents, sealFrame, sealRawRuns } from '../src/xpony/frames.js';
import { MAX_BDAT_CHUNK } from '../src/xpony/limits.js';

const END_OF_DATA = Buffer.from('\r\n.\r\n', 'latin1');
/** A chunk's length, the stand-in for its BDAT command; the top bit marks the last chunk (BDAT LAST). */
const LENGTH = 4;
const LAST_CHUNK = 0x8000_0000;

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`floor relay: ${name} not set`);
  return value;
}

function frameCipher(): CipherState {
  return new CipherState(CHACHA_POLY, Buffer.from(env('FLOOR_FRAME_KEY'), 'hex'));
}

/**
 * Writes `pieces` in one system call, as the daemon's tunnel writes what one event-loop turn
 * gives it (turn-cork.ts), pausing `source` until `socket` drains when it is full.
 */
function writeAll(socket: Socket, pieces: readonly Uint8Array[], source: Socket): void {
  let room = true;
  socket.cork();
  for (const piece of pieces) room = socket.write(piece);
  socket.uncork();
  if (!room) {
    source.pause();
    socket.once('drain', () => source.resume());
  }
}

/**
 * Message octets in; the sealed file out as the daemon sends it (xpony/chunk-writer.ts): in chunks
 * of MAX_BDAT_CHUNK octets, each after its length in a frame, the header's octets in frames with it
 * and the payload's in raw runs, a socket read at a time.
 */
function sealing(client: Socket, next: Socket): void {
  const recipient = parseRecipient(env('FLOOR_RECIPIENT'));
  const send = frameCipher();
  /** What goes next, each stretch framed or raw. */
  let out: Array<{ raw: boolean; pieces: Uint8Array[] }> = [];
  const queue = (piece: Uint8Array, raw: boolean): void => {
    if (out.at(-1)?.raw === raw) out.at(-1)!.pieces.push(piece);
    else out.push({ raw, pieces: [piece] });
  };
  let sealer: AgeSealer | undefined;
  /** Octets of the current age file emitted so far: those past its header are payload. */
  let fileOctets = 0;
  /** The chunk being filled: its pieces, and whether each is payload. */
  let chunk: Array<{ piece: Uint8Array; raw: boolean }> = [];
  let chunkLength = 0;
  const sendChunk = (last: boolean): void => {
    const length = Buffer.allocUnsafe(LENGTH);
    length.writeUInt32BE(chunkLength + (last ? LAST_CHUNK : 0));
    queue(length, false);
    for (const { piece, raw } of chunk) queue(piece, raw);
    chunk = [];
    chunkLength = 0;
  };
  const emit = (sealed: Uint8Array): void => {
    const raw = fileOctets >= sealer!.headerLength;
    fileOctets += sealed.length;
    for (let offset = 0; offset < sealed.length;) {
      const piece = sealed.subarray(offset, offset + MAX_BDAT_CHUNK - chunkLength);
      chunk.push({ piece, raw });
      chunkLength += piece.length;
      offset += piece.length;
      if (chunkLength === MAX_BDAT_CHUNK) sendChunk(false);
    }
  };
  /** The sealed octets so far, framed and raw as the tunnel sends them. */
  const flush = (): void => {
    const wire = out.flatMap(({ raw, pieces }) =>
      raw ? sealRawRuns(send, pieces) : frameContents(pieces).flatMap((content) => sealFrame(send, FrameType.data, content)),
    );
    out = [];
    writeAll(next, wire, client);
  };
  const content = (octets: Buffer): void => {
    if (octets.length === 0) return;
    sealer ??= createSealer([recipient], emit);
    sealer.push(octets);
  };
  const endMessage = (): void => {
    if (sealer === undefined) throw new Error('floor relay: a message without octets');
    sealer.end();
    sendChunk(true);
    sealer = undefined;
    fileOctets = 0;
  };
  // The end of the last read when it may begin the end-of-data line; never copied with the next read.
  let held = Buffer.alloc(0);
  client.on('data', (data: Buffer) => {
    let from = 0;
    if (held.length > 0) {
      const seam = Buffer.concat([held, data.subarray(0, END_OF_DATA.length - 1)]);
      const end = seam.indexOf(END_OF_DATA);
      if (end !== -1 && end < held.length) {
        content(seam.subarray(0, end + 2));
        endMessage();
        from = end + END_OF_DATA.length - held.length;
      } else {
        content(held);
      }
    }
    for (let end = data.indexOf(END_OF_DATA, from); end !== -1; end = data.indexOf(END_OF_DATA, from)) {
      content(data.subarray(from, end + 2));
      endMessage();
      from = end + END_OF_DATA.length;
    }
    const keep = endOfDataPrefix(data, from);
    content(data.subarray(from, data.length - keep));
    held = Buffer.from(data.subarray(data.length - keep));
    if (out.length > 0) flush();
  });
}

/** The length of the longest tail of data[from..] that begins the end-of-data line. */
function endOfDataPrefix(data: Buffer, from: number): number {
  for (let length = Math.min(END_OF_DATA.length - 1, data.length - from); length > 0; length--) {
    if (data.subarray(data.length - length).equals(END_OF_DATA.subarray(0, length))) return length;
  }
  return 0;
}

/** Frames and raw runs in, the opened messages out, dot-stuffed. */
function opening(tunnel: Socket, next: Socket): void {
  const identity = parseIdentity(env('FLOOR_IDENTITY'));
  const reader = new FrameReader(frameCipher(), true);
  const stuffer = new DotStuffer();
  let pending: Uint8Array[] = [];
  const emit = (piece: Uint8Array): void => {
    pending.push(stuffer.stuff(Buffer.from(piece.buffer, piece.byteOffset, piece.length)));
  };
  let opener: AgeOpener | undefined;
  let header = Buffer.alloc(0);
  /** Octets of the current chunk still to come, and whether it is the message's last. */
  let due = 0;
  let last = false;
  const endMessage = (): void => {
    if (opener === undefined) throw new Error('floor relay: a message without octets');
    opener.end();
    opener = undefined;
    pending.push(stuffer.end());
    last = false;
  };
  const take = (content: Uint8Array): void => {
    let rest = Buffer.from(content.buffer, content.byteOffset, content.length);
    while (rest.length > 0) {
      if (due === 0) {
        const part = rest.subarray(0, LENGTH - header.length);
        header = Buffer.concat([header, part]);
        rest = rest.subarray(part.length);
        if (header.length < LENGTH) return;
        const word = header.readUInt32BE(0);
        due = word & ~LAST_CHUNK;
        last = (word & LAST_CHUNK) !== 0;
        header = Buffer.alloc(0);
        if (due === 0 && last) endMessage();
        continue;
      }
      const piece = rest.subarray(0, due);
      opener ??= createOpener([identity], emit);
      opener.push(piece);
      due -= piece.length;
      rest = rest.subarray(piece.length);
      if (due === 0 && last) endMessage();
    }
  };
  tunnel.on('data', (data: Buffer) => {
    for (const frame of reader.push(data)) for (const content of frame.content) take(content);
    writeAll(next, pending, tunnel);
    pending = [];
  });
}

function main(): void {
  const [role, port, nextPort] = process.argv.slice(2);
  const relay = role === 'seal' ? sealing : role === 'open' ? opening : undefined;
  if (relay === undefined || !/^\d+$/.test(port ?? '') || !/^\d+$/.test(nextPort ?? '')) {
    throw new Error(`floor relay: usage: seal|open PORT NEXT_PORT, got ${JSON.stringify(process.argv.slice(2))}`);
  }
  tuneHeapGrowth();
  const server = createServer((incoming) => {
    const next = connect(Number(nextPort), '127.0.0.1');
    next.on('error', (error) => incoming.destroy(error));
    incoming.on('error', () => next.destroy());
    incoming.on('end', () => next.end());
    relay(incoming, next);
  });
  server.listen(Number(port), '127.0.0.1', () => console.log('listening'));
}

main();
