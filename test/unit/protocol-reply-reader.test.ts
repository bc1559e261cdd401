/** The client's reply reader: exact octets kept, line limits enforced, garbage refused. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MAX_UNREAD_REPLY_OCTETS } from '../../src/smtp/limits.js';
import { ReplyError, ReplyReader } from '../../src/smtp/reply-reader.js';

function feed(...chunks: string[]): ReplyReader {
  const stream = new PassThrough();
  const reader = new ReplyReader(stream);
  for (const chunk of chunks) stream.write(Buffer.from(chunk, 'latin1'));
  return reader;
}

describe('ReplyReader', () => {
  it('reads a multi-line reply split anywhere, keeping its exact octets', async () => {
    const reader = feed('250-mx.test hi\r\n250-PIPE', 'LINING\r\n250 XPONY 1\r', '\n220 next\r\n');
    const reply = await reader.read(512);
    expect(reply).toEqual({
      code: 250,
      lines: ['mx.test hi', 'PIPELINING', 'XPONY 1'],
      raw: Buffer.from('250-mx.test hi\r\n250-PIPELINING\r\n250 XPONY 1\r\n'),
    });
    expect((await reader.read(512)).lines).toEqual(['next']);
  });

  it('accepts a bare code as the last line', async () => {
    expect(await feed('334\r\n').read(512)).toMatchObject({ code: 334, lines: [''] });
  });

  it('enforces the line limit with and without the CRLF present', async () => {
    await expect(feed('250 ' + 'x'.repeat(8) + '\r\n').read(14)).resolves.toMatchObject({ code: 250 });
    await expect(feed('250 ' + 'x'.repeat(9) + '\r\n').read(14)).rejects.toThrow(/longer than 14 octets/);
    await expect(feed('250 ' + 'x'.repeat(20)).read(14)).rejects.toThrow(ReplyError);
  });

  it('refuses malformed lines, mixed codes, bare LF and endless replies', async () => {
    await expect(feed('hello\r\n').read(512)).rejects.toThrow(/not an SMTP reply line/);
    await expect(feed('250-a\r\n251 b\r\n').read(512)).rejects.toThrow(/code 251 after 250/);
    await expect(feed('250 a\nb\r\n').read(512)).rejects.toThrow(ReplyError);
    await expect(feed('250-x\r\n'.repeat(100)).read(512)).rejects.toThrow(/longer than 64 lines/);
  });

  it('fails a pending read when the stream ends', async () => {
    const stream = new PassThrough();
    const reader = new ReplyReader(stream);
    const pending = reader.read(512);
    stream.end('250-partial\r\n');
    stream.resume();
    await expect(pending).rejects.toThrow(/connection closed/);
  });

  it('keeps a reply that arrives before it is read, but closes a stream that says more while no reply is awaited', async () => {
    const early = feed('421 4.4.2 closing\r\n');
    expect(await early.read(512)).toMatchObject({ code: 421 });

    const stream = new PassThrough();
    const reader = new ReplyReader(stream);
    let received = 0;
    stream.on('data', (chunk: Buffer) => (received += chunk.length));
    const errors: Error[] = [];
    stream.on('error', (error) => errors.push(error));
    const closed = new Promise((resolve) => stream.once('close', resolve));
    for (let i = 0; i < 1024 && !stream.destroyed; i++) stream.write(Buffer.alloc(1024, 'x'));
    expect(stream.destroyed).toBe(true);
    await closed;
    expect(received).toBeLessThanOrEqual(MAX_UNREAD_REPLY_OCTETS + 1024);
    await expect(reader.read(512)).rejects.toThrow(/octets received while no reply was awaited/);
    expect(errors[0]).toBeInstanceOf(ReplyError);
  });
});
