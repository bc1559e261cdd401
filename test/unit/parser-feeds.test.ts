/**
 * The parser with native feeds (src/smtp/data-feed.ts for data mode, src/smtp/command-feed.ts for
 * command mode) against smtp-server's own: the same input in the same chunks must give the same
 * messages, octet for octet, the same commands after them and the same octets still held for an
 * unfinished message. The input is built from the pieces that decide where a message ends (CR,
 * LF, dots at line starts, the end-of-data line, commands pipelined after it) and cut anywhere.
 * That our servers' connections parse with them is checked in smtp-server-internals.test.ts.
 */
import fc from 'fast-check';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { describe, expect, it } from 'vitest';
import { installCommandFeed } from '../../src/smtp/command-feed.js';
import { installDataFeed } from '../../src/smtp/data-feed.js';

interface Transcript {
  commands: string[];
  /** Each finished message and the size the parser counted for it. */
  messages: { text: string; byteLength: number }[];
  /** What the message in progress has emitted so far. */
  unfinished: string | undefined;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function nativeParser(native = true): SMTPStream {
  const parser = new SMTPStream();
  if (native) {
    installCommandFeed(parser);
    installDataFeed(parser);
  }
  return parser;
}

/** Feeds `input` in pieces ending at `cuts` to a parser that takes DATA as a real session does. */
async function parse(input: Buffer, cuts: readonly number[], native: boolean): Promise<Transcript> {
  const parser = nativeParser(native);
  const transcript: Transcript = { commands: [], messages: [], unfinished: undefined };
  let chunks: Buffer[] | undefined;
  parser.oncommand = (line, callback) => {
    const command = line.toString('latin1');
    transcript.commands.push(command);
    if (command === 'DATA') {
      const stream = parser.startDataMode();
      const received: Buffer[] = [];
      chunks = received;
      stream.on('data', (chunk: Buffer) => received.push(chunk));
      stream.on('end', () => {
        transcript.messages.push({ text: Buffer.concat(received).toString('latin1'), byteLength: stream.byteLength });
        chunks = undefined;
        parser.continue();
      });
      // Later, as a session answers DATA once the next hop has: continue() parses what follows
      // the message at once, and a whole message in it would end inside continue(), which then
      // drops that message's continuation (smtp-server clears it after the call).
      setImmediate(() => callback?.());
      return;
    }
    callback?.();
  };
  let start = 0;
  for (const end of [...cuts, input.length]) {
    await new Promise<void>((resolve, reject) => parser.write(input.subarray(start, end), (error) => (error ? reject(error) : resolve())));
    start = end;
  }
  await turn();
  await turn();
  if (chunks !== undefined) transcript.unfinished = Buffer.concat(chunks).toString('latin1');
  return transcript;
}

const PIECES = ['a', 'xyz', '.', '..', '\r', '\n', '\r\n', '\r\n.', '\r\n..', '\n.', '.\r\n', '\r\n.\r\n', 'DATA\r\n', 'NOOP\r\n'];

const session = fc
  .array(fc.constantFrom(...PIECES), { maxLength: 120 })
  .map((pieces) => Buffer.from(`DATA\r\n${pieces.join('')}`, 'latin1'))
  .chain((input) =>
    fc.record({
      input: fc.constant(input),
      cuts: fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, input.length - 1) }), { maxLength: 12 }).map((cuts) => cuts.sort((a, b) => a - b)),
    }),
  );

describe('the parser with native feeds', () => {
  it('gives what smtp-server gives, however the input is built and cut', async () => {
    await fc.assert(
      fc.asyncProperty(session, async ({ input, cuts }) => {
        expect(await parse(input, cuts, true)).toEqual(await parse(input, cuts, false));
      }),
      { numRuns: 600 },
    );
  });

  it('unstuffs a 1 MiB message in 64 KiB chunks and stops at its end-of-data line', async () => {
    const lines = Array.from({ length: 14_000 }, (_, n) => (n % 97 === 0 ? `.line ${n}` : n % 89 === 0 ? '.' : `line ${n} ${'x'.repeat(60)}`));
    const body = lines.map((line) => `${line}\r\n`).join('');
    const stuffed = lines.map((line) => `${line.startsWith('.') ? '.' : ''}${line}\r\n`).join('');
    const input = Buffer.from(`DATA\r\n${stuffed}.\r\nQUIT\r\n`, 'latin1');
    const cuts = Array.from({ length: Math.floor(input.length / 65_536) }, (_, n) => (n + 1) * 65_536);
    const transcript = await parse(input, cuts, true);
    expect(transcript.messages).toEqual([{ text: body, byteLength: body.length }]);
    expect(transcript.commands).toEqual(['DATA', 'QUIT']);
    expect(transcript).toEqual(await parse(input, cuts, false));
  });

  it('passes socket-read-sized chunks on without copying them into new buffers', async () => {
    const parser = nativeParser();
    const emitted: Buffer[] = [];
    parser.oncommand = (_line, callback) => {
      parser.startDataMode().on('data', (chunk: Buffer) => emitted.push(chunk));
      callback?.();
    };
    const line = Buffer.from(`${'x'.repeat(78)}\r\n`, 'latin1');
    const body = (): Buffer => Buffer.concat(Array<Buffer>(820).fill(line));
    // The command and the message's first octets arrive in one read, as BDAT's do in a tunnel.
    const reads = [Buffer.concat([Buffer.from('DATA\r\n', 'latin1'), body()]), ...Array.from({ length: 3 }, body)];
    for (const read of reads) await new Promise<void>((resolve, reject) => parser.write(read, (error) => (error ? reject(error) : resolve())));
    await turn();
    expect(Buffer.concat(emitted).length).toBe(4 * 820 * line.length - 4);
    // Every octet emitted is a view into the read it came in: none was copied with the next read,
    // nor turned into a string with the command before it and back.
    expect(emitted.every((chunk) => reads.some((read) => read.buffer === chunk.buffer))).toBe(true);
  });

  it('refuses an over-long command line in a read of several lines, as smtp-server does', async () => {
    const input = Buffer.from(`NOOP\r\nNOOP ${'x'.repeat(20 * 1024)}\r\nQUIT\r\n`, 'latin1');
    const outcome = async (native: boolean): Promise<{ commands: string[]; error: string | undefined }> => {
      const parser = nativeParser(native);
      const commands: string[] = [];
      parser.oncommand = (line, callback) => {
        commands.push(line.toString('latin1'));
        callback?.();
      };
      parser.on('error', () => undefined); // the write's callback reports it
      const error = await new Promise<Error | null | undefined>((resolve) => parser.write(input, resolve));
      return { commands, error: error?.message };
    };
    expect(await outcome(true)).toEqual({ commands: ['NOOP'], error: 'Command line too long' });
    expect(await outcome(true)).toEqual(await outcome(false));
  });

  it('parses a read of 20,000 pipelined commands in order, as smtp-server does', async () => {
    const input = Buffer.from(`${Array.from({ length: 20_000 }, (_, n) => `NOOP ${n}\r\n`).join('')}DATA\r\nbody\r\n.\r\nQUIT\r\n`, 'latin1');
    const transcript = await parse(input, [], true);
    expect(transcript.commands).toHaveLength(20_002);
    expect(transcript.commands.at(-1)).toBe('QUIT');
    expect(transcript).toEqual(await parse(input, [], false));
  });
});
