/**
 * A client that half-closes right after its last command (Exim 4.96 sends the end of the body,
 * `.`, `QUIT` and its FIN in one segment on a delivery made at once) still gets every reply, and
 * its message is delivered exactly once, byte for byte: as if it had waited, as with Postfix alone.
 * In plaintext and inside an XPONY tunnel (the close frame is the tunnel's FIN).
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectXpony } from '../../src/xpony/index.js';
import { ReplyReader, type Reply } from '../../src/smtp/reply-reader.js';
import { OPENSSL, selfSignedCertificate } from '../harness/certificates.js';
import { describeWith, POSTFIX, ROOT } from '../harness/requirements.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';
import { BLACKPONY_HOST, MAILBOX, postfixBehindBlackpony, startBlackpony, type Blackpony } from './inbound-fixtures.js';
import { clientKeys } from './xpony-fixtures.js';

/** A message with a body long enough to take several segments before its end. */
function messageOf(id: string): string {
  const header = `From: a@sender.test\r\nTo: ${MAILBOX}\r\nSubject: half-close\r\nDate: Fri, 04 Dec 2026 00:00:00 +0000\r\nMessage-ID: <${id}@sender.test>\r\n\r\n`;
  return header + Array.from({ length: 200 }, (_, i) => `line ${i} of the body, with some text to make it longer`).join('\r\n') + '\r\n';
}

/** Reads `count` replies, each as "code first-line". */
async function replies(reader: ReplyReader, count: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < count; i++) {
    const reply: Reply = await reader.read(16_384);
    got.push(`${reply.code} ${reply.lines[0] ?? ''}`);
  }
  return got;
}

describeWith([ROOT, POSTFIX], 'inbound: clients that half-close after their last command', () => {
  const site = postfixBehindBlackpony();

  /** The one delivered copy of the message with this Message-ID, once the queue is empty. */
  async function deliveredOnce(id: string): Promise<Buffer> {
    const copiesOf = async () => (await site.behind.postfix.maildirMessages(MAILBOX)).filter((m) => m.bytes.includes(`Message-ID: <${id}@sender.test>`));
    await waitFor(`${id} delivered`, async () => ((await copiesOf()).length > 0 ? true : undefined));
    await site.behind.postfix.waitForQueue('an empty queue', (queue) => queue.length === 0);
    const copies = await copiesOf();
    expect(copies).toHaveLength(1);
    return copies[0]!.bytes;
  }

  /** The message as Postfix's Maildir stores it (LF line ends) ends with what the client sent. */
  function expectByteForByte(delivered: Buffer, message: string): void {
    const sent = message.replaceAll('\r\n', '\n');
    expect(delivered.subarray(delivered.length - sent.length).toString('latin1')).toBe(sent);
  }

  it("answers the end of data with Postfix's 250 and QUIT with 221 when `.`, QUIT and the FIN come in one segment", async () => {
    const message = messageOf('half-close-1');
    const socket = connect(site.pony.port, '127.0.0.1');
    await once(socket, 'connect');
    const reader = new ReplyReader(socket);
    const ask = async (line: string): Promise<string> => {
      socket.write(`${line}\r\n`);
      return (await replies(reader, 1))[0]!;
    };
    expect((await replies(reader, 1))[0]).toMatch(/^220 /);
    expect(await ask('EHLO client.sender.test')).toMatch(/^250 /);
    expect(await ask('MAIL FROM:<a@sender.test>')).toMatch(/^250 /);
    expect(await ask(`RCPT TO:<${MAILBOX}>`)).toMatch(/^250 /);
    expect(await ask('DATA')).toMatch(/^354 /);
    // Most of the body first, as a client does; then its last octets, `.`, QUIT and FIN together.
    const tail = message.slice(-40);
    socket.write(message.slice(0, -40));
    socket.end(`${tail}.\r\nQUIT\r\n`);
    const [data, quit] = await replies(reader, 2);
    expect(data).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-Za-z]+/);
    expect(quit).toMatch(/^221 /);
    expectByteForByte(await deliveredOnce('half-close-1'), message);
  });

  it('answers every command of a whole pipelined transaction sent in one write with a FIN', async () => {
    const message = messageOf('half-close-2');
    const socket = connect(site.pony.port, '127.0.0.1');
    await once(socket, 'connect');
    const reader = new ReplyReader(socket);
    expect((await replies(reader, 1))[0]).toMatch(/^220 /);
    socket.end(`EHLO client.sender.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<${MAILBOX}>\r\nDATA\r\n${message}.\r\nQUIT\r\n`);
    const got = await replies(reader, 6);
    expect(got.map((line) => line.slice(0, 3))).toEqual(['250', '250', '250', '354', '250', '221']);
    expect(got[4]).toMatch(/^250 2\.0\.0 Ok: queued as /);
    expectByteForByte(await deliveredOnce('half-close-2'), message);
  });

  it('delivers nothing when the FIN comes in the middle of the body: the session closes, Postfix discards it', async () => {
    const socket = connect(site.pony.port, '127.0.0.1');
    await once(socket, 'connect');
    const reader = new ReplyReader(socket);
    const closed = once(socket, 'close');
    expect((await replies(reader, 1))[0]).toMatch(/^220 /);
    socket.end(`EHLO client.sender.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<${MAILBOX}>\r\nDATA\r\n${messageOf('half-close-truncated').slice(0, 500)}`);
    expect((await replies(reader, 4)).map((line) => line.slice(0, 3))).toEqual(['250', '250', '250', '354']);
    await closed;
    // A message sent after it arrives; the truncated one never does.
    const message = messageOf('half-close-after');
    const next = connect(site.pony.port, '127.0.0.1');
    const nextReader = new ReplyReader(next);
    expect((await replies(nextReader, 1))[0]).toMatch(/^220 /);
    next.end(`EHLO client.sender.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<${MAILBOX}>\r\nDATA\r\n${message}.\r\nQUIT\r\n`);
    expect((await replies(nextReader, 6))[4]).toMatch(/^250 2\.0\.0 Ok: queued as /);
    await deliveredOnce('half-close-after');
    const all = await site.behind.postfix.maildirMessages(MAILBOX);
    expect(all.filter((m) => m.bytes.includes('half-close-truncated'))).toHaveLength(0);
  });

  it('answers every command inside an XPONY tunnel whose client sends its close frame right after QUIT', async () => {
    const message = messageOf('half-close-3');
    const result = await connectXpony({ host: '127.0.0.1', port: site.pony.port, localHostName: 'mta.sender.test', keys: clientKeys() });
    expect(result.kind).toBe('tunnel');
    if (result.kind !== 'tunnel') return;
    const tunnel: Duplex = result.tunnel;
    const reader = new ReplyReader(tunnel);
    expect((await replies(reader, 1))[0]).toMatch(/^220 /);
    tunnel.end(`EHLO mta.sender.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<${MAILBOX}>\r\nDATA\r\n${message}.\r\nQUIT\r\n`);
    const got = await replies(reader, 6);
    expect(got.map((line) => line.slice(0, 3))).toEqual(['250', '250', '250', '354', '250', '221']);
    expect(got[4]).toMatch(/^250 2\.0\.0 Ok: queued as /);
    expectByteForByte(await deliveredOnce('half-close-3'), message);
  });
  describeWith([OPENSSL], 'over STARTTLS', () => {
    let dir: string;
    let withTls: Blackpony;
    beforeAll(async () => {
      dir = await makeTempDir('half-close-tls');
      const certificate = await selfSignedCertificate(dir, 'mx', BLACKPONY_HOST);
      withTls = await startBlackpony(site.behind.listenerPort, { tls: { key: certificate.key, cert: certificate.cert } });
    });
    afterAll(async () => {
      await withTls?.inbound.close();
      if (dir !== undefined) await removeTempDir(dir);
    });

    it('answers every command of a transaction sent with the FIN after STARTTLS', async () => {
      const message = messageOf('half-close-tls');
      const socket = connect(withTls.port, '127.0.0.1');
      await once(socket, 'connect');
      const plain = new ReplyReader(socket);
      expect((await replies(plain, 1))[0]).toMatch(/^220 /);
      socket.write('EHLO client.sender.test\r\n');
      expect((await replies(plain, 1))[0]).toMatch(/^250 /);
      socket.write('STARTTLS\r\n');
      expect((await replies(plain, 1))[0]).toMatch(/^220 /);
      plain.detach();
      const secure = connectTls({ socket, rejectUnauthorized: false, servername: BLACKPONY_HOST });
      await once(secure, 'secureConnect');
      const reader = new ReplyReader(secure);
      secure.end(`EHLO client.sender.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<${MAILBOX}>\r\nDATA\r\n${message}.\r\nQUIT\r\n`);
      const got = await replies(reader, 6);
      expect(got.map((line) => line.slice(0, 3))).toEqual(['250', '250', '250', '354', '250', '221']);
      expect(got[4]).toMatch(/^250 2\.0\.0 Ok: queued as /);
      expectByteForByte(await deliveredOnce('half-close-tls'), message);
    });
  });
});
