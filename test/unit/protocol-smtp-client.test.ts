/**
 * The SMTP client against a scripted SMTP server on loopback: replies come back verbatim,
 * data is dot-stuffed whatever the chunking, and failures of the hop are typed SmtpClientErrors.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { DotStuffer } from '../../src/smtp/dot-stuffer.js';
import { SmtpClient, SmtpClientError } from '../../src/smtp/smtp-client.js';
import { ChunkWriter } from '../../src/xpony/chunk-writer.js';
import { waitFor } from '../harness/wait.js';

interface Scripted {
  server: Server;
  port: number;
  /** Everything the client sent. */
  received: () => Buffer;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

/** Greets, then answers each CRLF-terminated client line with the next scripted reply. */
async function scripted(greeting: string, replies: string[], options: { silentAfter?: number; hangUpAfter?: number } = {}): Promise<Scripted> {
  const chunks: Buffer[] = [];
  const server = createServer((socket: Socket) => {
    socket.on('error', () => undefined);
    socket.write(greeting);
    let pending = '';
    let answered = 0;
    socket.on('data', (data: Buffer) => {
      chunks.push(data);
      pending += data.toString('latin1');
      for (let end = pending.indexOf('\r\n'); end >= 0; end = pending.indexOf('\r\n')) {
        pending = pending.slice(end + 2);
        if (options.silentAfter !== undefined && answered >= options.silentAfter) continue;
        const reply = replies.shift();
        answered++;
        if (reply !== undefined) socket.write(reply);
        if (answered === options.hangUpAfter) socket.end();
      }
    });
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, received: () => Buffer.concat(chunks) };
}

const endpoint = (port: number, timeoutMs = 2_000) => ({ host: '127.0.0.1', port, timeoutMs });

function stuffAll(chunks: string[]): string {
  const stuffer = new DotStuffer();
  return Buffer.concat([...chunks.map((c) => stuffer.stuff(Buffer.from(c, 'latin1'))), stuffer.end()]).toString('latin1');
}

describe('DotStuffer', () => {
  it('doubles a dot at the start of the message and after each line end', () => {
    expect(stuffAll(['.a\r\nb\r\n.\r\n..c\r\n'])).toBe('..a\r\nb\r\n..\r\n...c\r\n.\r\n');
  });

  it('finds a line-leading dot when CRLF and the dot are split across chunks', () => {
    expect(stuffAll(['a\r', '\n', '.b\r\n'])).toBe('a\r\n..b\r\n.\r\n');
    expect(stuffAll(['a\r\n', '.', '.\r\n'])).toBe('a\r\n...\r\n.\r\n');
    expect(stuffAll(['a\n', '.b'])).toBe('a\n..b\r\n.\r\n');
  });

  it('treats a bare LF as a line end, so "\\n.\\r\\n" cannot end the data early (smuggling)', () => {
    expect(stuffAll(['a\n.\r\nMAIL FROM:<x@y>\r\n'])).toBe('a\n..\r\nMAIL FROM:<x@y>\r\n.\r\n');
  });

  it('leaves dots inside lines and bare CRs alone', () => {
    expect(stuffAll(['a.b\r.c\r\n'])).toBe('a.b\r.c\r\n.\r\n');
  });

  it('ends a last line without a line end with CRLF before the marker, and an empty message with the marker only', () => {
    expect(stuffAll(['no line end'])).toBe('no line end\r\n.\r\n');
    expect(stuffAll([])).toBe('.\r\n');
    expect(stuffAll(['', 'x\r\n', ''])).toBe('x\r\n.\r\n');
  });

  it('is ready for the next message after end()', () => {
    const stuffer = new DotStuffer();
    stuffer.stuff(Buffer.from('abc'));
    stuffer.end();
    expect(stuffer.stuff(Buffer.from('.x')).toString()).toBe('..x');
  });

  it('matches a byte-by-byte reference on random chunkings', () => {
    const alphabet = ['.', '\r', '\n', 'a'];
    for (let round = 0; round < 300; round++) {
      let text = '';
      for (let i = 0; i < 40; i++) text += alphabet[Math.floor(Math.random() * alphabet.length)];
      const chunks: string[] = [];
      for (let at = 0; at < text.length;) {
        const size = 1 + Math.floor(Math.random() * 7);
        chunks.push(text.slice(at, at + size));
        at += size;
      }
      let expected = '';
      let lineStart = true;
      for (const c of text) {
        if (lineStart && c === '.') expected += '.';
        expected += c;
        lineStart = c === '\n';
      }
      expected += lineStart ? '.\r\n' : '\r\n.\r\n';
      expect(stuffAll(chunks)).toBe(expected);
    }
  });
});

describe('SmtpClient', () => {
  it('returns replies verbatim: code, enhanced code, every line', async () => {
    const fake = await scripted('220 fake ESMTP\r\n', [
      '250-fake\r\n250-SIZE 1000\r\n250 XCLIENT ADDR\r\n',
      '550 5.1.1 <u@d.test>: Recipient address rejected: User unknown\r\n',
    ]);
    const client = await SmtpClient.open(endpoint(fake.port));
    expect(client.greeting).toEqual({ code: 220, enhancedCode: undefined, lines: ['fake ESMTP'] });
    expect(await client.command('EHLO me')).toEqual({ code: 250, enhancedCode: undefined, lines: ['fake', 'SIZE 1000', 'XCLIENT ADDR'] });
    expect(await client.command('RCPT TO:<u@d.test>')).toEqual({
      code: 550,
      enhancedCode: '5.1.1',
      lines: ['5.1.1 <u@d.test>: Recipient address rejected: User unknown'],
    });
    client.destroy();
  });

  it('refuses to send a command line with CR or LF in it', async () => {
    const fake = await scripted('220 fake\r\n', ['250 ok\r\n']);
    const client = await SmtpClient.open(endpoint(fake.port));
    for (const line of ['MAIL FROM:<a@b>\r\nRCPT TO:<c@d>', 'RSET\nQUIT', 'NOOP\r']) {
      const error = await client.command(line).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SmtpClientError);
      expect((error as SmtpClientError).kind).toBe('protocol');
    }
    expect(await client.command('NOOP')).toEqual({ code: 250, enhancedCode: undefined, lines: ['ok'] });
    expect(fake.received().toString('latin1')).toBe('NOOP\r\n');
    client.destroy();
  });

  it('streams data dot-stuffed and reads the final reply', async () => {
    const fake = await scripted('220 fake\r\n', ['354 go\r\n', '250 2.0.0 Ok: queued as ABC\r\n']);
    const client = await SmtpClient.open(endpoint(fake.port));
    expect((await client.command('DATA')).code).toBe(354);
    client.writeData(Buffer.from('.x\r\n'));
    client.writeData(Buffer.from('y\n.'));
    const final = await client.endData();
    expect(final).toEqual({ code: 250, enhancedCode: '2.0.0', lines: ['2.0.0 Ok: queued as ABC'] });
    expect(fake.received().toString('latin1')).toBe('DATA\r\n..x\r\ny\n..\r\n.\r\n');
    client.destroy();
  });

  it("sends a message's last octets and the end-of-data marker that a promise continuation adds in one write", async () => {
    const fake = await scripted('220 fake\r\n', ['354 go\r\n', '250 2.0.0 Ok\r\n']);
    const client = await SmtpClient.open(endpoint(fake.port));
    expect((await client.command('DATA')).code).toBe(354);
    // Each _writeGeneric of a net.Socket (its _write and _writev) is one write(2) or writev(2).
    const socket = client.transport as Socket & { _writeGeneric: (...args: unknown[]) => unknown };
    let writes = 0;
    const writeGeneric = socket._writeGeneric.bind(socket);
    socket._writeGeneric = (...args: unknown[]) => {
      writes++;
      return writeGeneric(...args);
    };
    try {
      // As the inbound relays a message: its octets as they stream, then endData() once the
      // stream's 'end' has resolved a promise.
      const message = new PassThrough();
      const ended = new Promise<void>((resolve) => {
        message.on('data', (chunk: Buffer) => client.writeData(chunk));
        message.once('end', () => resolve());
      });
      message.end(Buffer.from('a\r\n'));
      await ended;
      const final = client.endData();
      await waitFor('the end-of-data marker at the server', () => (fake.received().toString('latin1').endsWith('\r\n.\r\n') ? true : undefined));
      expect(writes).toBe(1);
      expect((await final).code).toBe(250);
      expect(fake.received().toString('latin1')).toBe('DATA\r\na\r\n.\r\n');
    } finally {
      client.destroy();
    }
  });

  it('sends a BDAT chunk given in pieces with their total length, the pieces unjoined', async () => {
    const fake = await scripted('220 fake\r\n', ['250 2.0.0 1 octets\r\n', '250 2.0.0 Ok\r\n']);
    const client = await SmtpClient.open(endpoint(fake.port));
    const pieces = [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cde')];
    const written: Buffer[] = [];
    const write = client.transport.write.bind(client.transport);
    client.transport.write = ((chunk: Buffer, ...rest: unknown[]) => (written.push(chunk), write(chunk, ...(rest as [])))) as typeof client.transport.write;
    try {
      client.writeChunk([Buffer.from('x')], false);
      client.writeChunk(pieces, true);
      expect((await client.nextReply('BDAT')).code).toBe(250);
      expect((await client.nextReply('BDAT LAST')).code).toBe(250);
      expect(fake.received().toString('latin1')).toBe('BDAT 1\r\nxBDAT 5 LAST\r\nabcde');
      for (const piece of pieces) expect(written).toContain(piece);
    } finally {
      client.destroy();
    }
  });

  it('sends a message as BDAT chunks of the size it is given, the rest as LAST', async () => {
    const fake = await scripted('220 fake\r\n', ['250 2.0.0 4 octets\r\n', '250 2.0.0 4 octets\r\n', '250 2.0.0 Ok\r\n']);
    const client = await SmtpClient.open(endpoint(fake.port));
    try {
      const chunks = new ChunkWriter(client, 4);
      chunks.write(Buffer.from('abcdef'));
      chunks.write(Buffer.from('ghij'));
      expect((await chunks.end()).lines).toEqual(['2.0.0 Ok']);
      expect(fake.received().toString('latin1')).toBe('BDAT 4\r\nabcdBDAT 4\r\nefghBDAT 2 LAST\r\nij');
    } finally {
      client.destroy();
    }
  });

  it('sends no chunk after a refused one, not even LAST, and drops the rest of the message (RFC 3030 section 3)', async () => {
    const fake = await scripted('220 fake\r\n', ['552 5.3.4 Chunk exceeds message size limit\r\n']);
    const client = await SmtpClient.open(endpoint(fake.port));
    try {
      const chunks = new ChunkWriter(client, 4);
      chunks.write(Buffer.from('abcd'));
      await waitFor('the refusal read', () => (chunks.refusedEarly ? true : undefined));
      expect(chunks.write(Buffer.from('efghijkl'))).toBe(true);
      expect(await chunks.end()).toEqual({ code: 552, enhancedCode: '5.3.4', lines: ['5.3.4 Chunk exceeds message size limit'] });
      expect(fake.received().toString('latin1')).toBe('BDAT 4\r\nabcd');
    } finally {
      client.destroy();
    }
  });

  it('keeps the refusal as the outcome when the server hangs up on the chunks sent before it was read', async () => {
    // As blackpony's own server does (bdat-receiver.ts): a refused BDAT closes the session, so
    // the replies to the chunks already on their way never come.
    const fake = await scripted('220 fake\r\n', ['552 5.3.4 Chunk exceeds message size limit\r\n'], { hangUpAfter: 1 });
    const client = await SmtpClient.open(endpoint(fake.port));
    try {
      const chunks = new ChunkWriter(client, 4);
      chunks.write(Buffer.from('abcdefghij'));
      expect(await chunks.end()).toEqual({ code: 552, enhancedCode: '5.3.4', lines: ['5.3.4 Chunk exceeds message size limit'] });
      expect(chunks.refusedEarly).toBe(true);
    } finally {
      client.destroy();
    }
  });

  it('fails with kind "connect" when nothing listens', async () => {
    const fake = await scripted('', []);
    const port = fake.port;
    await new Promise((resolve) => fake.server.close(resolve));
    servers.splice(0);
    const error = await SmtpClient.open(endpoint(port)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SmtpClientError);
    expect((error as SmtpClientError).kind).toBe('connect');
  });

  it('fails with kind "timeout" when a reply does not come in time', async () => {
    const fake = await scripted('220 fake\r\n', ['250 ok\r\n'], { silentAfter: 1 });
    const client = await SmtpClient.open(endpoint(fake.port, 300));
    await client.command('EHLO me');
    const error = await client.command('MAIL FROM:<>').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SmtpClientError);
    expect((error as SmtpClientError).kind).toBe('timeout');
    expect(client.closed).toBe(true);
  });

  it('fails with kind "protocol" on a line that is not an SMTP reply, and "closed" when the server hangs up', async () => {
    const garbage = await scripted('220 fake\r\n', ['HTTP/1.1 400 Bad Request\r\n']);
    const client = await SmtpClient.open(endpoint(garbage.port));
    const error = await client.command('EHLO me').catch((e: unknown) => e);
    expect((error as SmtpClientError).kind).toBe('protocol');

    let serverSideClosed: Promise<unknown> = Promise.resolve();
    const server = createServer((socket) => {
      serverSideClosed = once(socket, 'close'); // both ends closed: the client has seen the hangup
      socket.end('220 bye soon\r\n');
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const hangup = await SmtpClient.open(endpoint((server.address() as AddressInfo).port));
    await serverSideClosed;
    const closed = await hangup.command('EHLO me').catch((e: unknown) => e);
    expect(closed).toBeInstanceOf(SmtpClientError);
    expect((closed as SmtpClientError).kind).toBe('closed');
  });
});
