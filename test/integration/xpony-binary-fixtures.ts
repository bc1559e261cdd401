/**
 * Shared pieces of the XPONY-BINARY tests: a message whose octets are hard to carry (8-bit
 * octets, CRLF and bare LF, 998-octet lines, a line that is only "."), the binary age file of a
 * message, and an inner SMTP session driven by hand inside a real tunnel.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { connectXpony, type Tunnel } from '../../src/xpony/index.js';
import { createWrapStream } from '../../src/xpony/sealed-message.js';
import { clientKeys, RawSmtp } from './xpony-fixtures.js';
import { loadScaled } from '../harness/wait.js';

export interface BinaryTestMessage {
  /** As the sender's Postfix hands it on: CRLF line ends, bare LF inside. */
  original: Buffer;
  /** As a Maildir stores the original: CRLF turned to LF. */
  stored: Buffer;
  /** SHA-256 of `stored`, hex. */
  storedSha256: string;
}

/** Every 8-bit octet, over and over (no NUL, CR or LF). */
const EIGHT_BIT = Array.from({ length: 998 }, (_, i) => String.fromCharCode(0x80 + (i % 0x80))).join('');

/** A line of 8-bit octets, 998 octets long: the longest RFC 5322 allows. */
function eightBitLine(index: number): string {
  const number = `${index} `;
  return number + EIGHT_BIT.slice(number.length);
}

/** A message of about `size` octets (at least one of each kind of line), with every header field Postfix would add otherwise. */
export function binaryTestMessage(size: number, subject = `binary ${size}`): BinaryTestMessage {
  const header = [
    'From: <alice@sender.test>',
    'To: <user@d.test>',
    `Subject: ${subject}`,
    'Date: Sun, 22 Nov 2026 00:00:00 +0000',
    `Message-ID: <binary-${size}@sender.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=iso-8859-1',
    'Content-Transfer-Encoding: 8bit',
    '',
  ];
  const lines = [...header, '.', '..two dots', 'bare\nline feeds\ninside one line', eightBitLine(0)];
  let length = lines.join('\r\n').length;
  for (let index = 1; length < size; index++) {
    const line = index % 50 === 0 ? '.' : index % 7 === 0 ? `a bare LF\nin line ${index}` : eightBitLine(index);
    lines.push(line);
    length += line.length + 2;
  }
  const original = Buffer.from(`${lines.join('\r\n')}\r\n`, 'latin1');
  const stored = Buffer.from(original.toString('latin1').replaceAll('\r\n', '\n'), 'latin1');
  return { original, stored, storedSha256: sha256(stored) };
}

export function sha256(octets: Buffer): string {
  return createHash('sha256').update(octets).digest('hex');
}

/** SHA-256 of the last `length` octets of a delivered message: the original after the header fields added on the way. */
export function tailSha256(delivered: Buffer, length: number): string {
  return sha256(delivered.subarray(Math.max(0, delivered.length - length)));
}

/** The binary age file of `original` for `recipient` (section 8 without wrapper or armor). */
export function sealBinary(recipient: string, original: Buffer): Promise<Buffer> {
  return buffer(Readable.from([original]).pipe(createWrapStream([recipient], true)) as NodeJS.ReadableStream & AsyncIterable<Buffer>);
}

export interface InnerSession {
  smtp: RawSmtp;
  /** Undefined for a plaintext session. */
  tunnel: Tunnel | undefined;
  /** The EHLO reply's keywords. */
  ehlo: string[];
  quit(): Promise<void>;
  destroy(): void;
}

/**
 * A session with the server on 127.0.0.1:`port`, past its greeting and EHLO: inside a tunnel
 * (the client's key), or `plaintext`.
 */
export async function openInnerSession(port: number, { plaintext = false } = {}): Promise<InnerSession> {
  let smtp: RawSmtp;
  let tunnel: Tunnel | undefined;
  if (plaintext) {
    smtp = await RawSmtp.connect(port);
  } else {
    const result = await connectXpony({ host: '127.0.0.1', port, localHostName: 'mta.sender.test', keys: clientKeys(), timeoutMs: loadScaled(10_000) });
    if (result.kind !== 'tunnel') throw new Error(`127.0.0.1:${port}: no tunnel (${result.ehloLines.join(' / ')})`);
    tunnel = result.tunnel;
    tunnel.on('error', () => undefined);
    smtp = new RawSmtp(tunnel);
  }
  const greeting = await smtp.reply();
  if (greeting.code !== 220) throw new Error(`inner greeting: ${greeting.code} ${greeting.lines.join(' ')}`);
  smtp.write('EHLO mta.sender.test\r\n');
  const ehlo = await smtp.reply();
  if (ehlo.code !== 250) throw new Error(`inner EHLO: ${ehlo.code} ${ehlo.lines.join(' ')}`);
  return {
    smtp,
    tunnel,
    ehlo: ehlo.lines.slice(1),
    async quit() {
      if (smtp.stream.destroyed) return;
      smtp.write('QUIT\r\n');
      await smtp.reply();
      smtp.stream.end();
      await smtp.closed();
    },
    destroy: () => smtp.stream.destroy(),
  };
}

/**
 * Hands `message` to a Postfix's smtpd on 127.0.0.1:`port` as a mail client would (8BITMIME,
 * dot-stuffed after every line end, bare LF included, as smtpd reads those too); resolves with the
 * reply to the final dot.
 */
export async function submit(port: number, from: string, to: string, message: Buffer): Promise<string> {
  const smtp = await RawSmtp.connect(port);
  try {
    if ((await smtp.reply()).code !== 220) throw new Error(`127.0.0.1:${port}: no 220 greeting`);
    for (const line of ['EHLO client.sender.test', `MAIL FROM:<${from}> BODY=8BITMIME`, `RCPT TO:<${to}>`]) {
      const reply = await smtp.command(line);
      if (!reply.startsWith('250')) throw new Error(`127.0.0.1:${port}: ${line}: ${reply}`);
    }
    const go = await smtp.command('DATA');
    if (!go.startsWith('354')) throw new Error(`127.0.0.1:${port}: DATA: ${go}`);
    smtp.stream.write(Buffer.from(message.toString('latin1').replace(/(^|\n)\./g, '$1..'), 'latin1'));
    return await smtp.command('.');
  } finally {
    smtp.stream.destroy();
  }
}
