/** The client's reply reader: exact octets kept, line limits enforced, garbage refused. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ReplyError, ReplyReader } from '../../src/protocol/reply-reader.js';

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
    expect(reply).toEqual({ code: 250, lines: ['mx.test hi', 'PIPELINING', 'XPONY 1'], raw: Buffer.from('250-mx.test hi\r\n250-PIPELINING\r\n250 XPONY 1\r\n') });
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
});
