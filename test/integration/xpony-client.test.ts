/**
 * connectXpony against scripted servers that misbehave: every failure is a typed XponyError, and
 * the client sends nothing beyond what the protocol allows.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectXpony, XponyError, type XponyErrorKind } from '../../src/xpony/index.js';
import { loadScaled, waitFor } from '../harness/wait.js';
import { clientKeys } from './xpony-fixtures.js';

/** A server that answers each client line with the next scripted reply; records the lines, and whether the client's connection has closed. */
async function scripted(greeting: string, replies: string[]): Promise<{ server: Server; port: number; lines: string[]; closed: () => boolean }> {
  const lines: string[] = [];
  let closed = false;
  const server = createServer((socket: Socket) => {
    let buffer = '';
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    if (greeting) socket.write(greeting);
    socket.on('data', (data: Buffer) => {
      buffer += data.toString('latin1');
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        lines.push(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        const reply = replies.shift();
        if (reply !== undefined) socket.write(reply);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, lines, closed: () => closed };
}

const EHLO_WITH_XPONY = '250-fake.test hi\r\n250-PIPELINING\r\n250 XPONY 1\r\n';

async function failure(port: number, timeoutMs = loadScaled(2_000)): Promise<XponyError> {
  const error = await connectXpony({ host: '127.0.0.1', port, localHostName: 'c.test', keys: clientKeys(), timeoutMs }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(XponyError);
  return error as XponyError;
}

describe('connectXpony against misbehaving servers', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.close();
    server = undefined;
  });

  const cases: Array<[string, string, string[], XponyErrorKind, RegExp, string[]]> = [
    ['a greeting that is not 220', '554 go away\r\n', [], 'protocol', /greeting is 554/, []],
    ['a greeting line over the limit', '220 ' + 'x'.repeat(5000) + '\r\n', [], 'protocol', /longer than 4096 octets/, []],
    [
      'a challenge line over 8192 octets',
      '220 fake.test\r\n',
      [EHLO_WITH_XPONY, '334 ' + 'A'.repeat(8192) + '\r\n'],
      'protocol',
      /longer than 8192 octets/,
      ['EHLO c.test', 'XPONY'],
    ],
    [
      '454 to XPONY',
      '220 fake.test\r\n',
      [EHLO_WITH_XPONY, '454 4.7.0 XPONY: temporarily unavailable\r\n', '221 bye\r\n'],
      'handshake-failed',
      /454/,
      ['EHLO c.test', 'XPONY', 'QUIT'],
    ],
    [
      'a challenge that is not base64',
      '220 fake.test\r\n',
      [EHLO_WITH_XPONY, '334 !!!!\r\n', '501 5.7.0 XPONY: cancelled by client\r\n', '221 bye\r\n'],
      'handshake-failed',
      /not canonical base64/,
      ['EHLO c.test', 'XPONY', '*', 'QUIT'],
    ],
    [
      'a challenge that does not decrypt',
      '220 fake.test\r\n',
      [EHLO_WITH_XPONY, `334 ${Buffer.alloc(96, 1).toString('base64')}\r\n`, '501 5.7.0 XPONY: cancelled by client\r\n', '221 bye\r\n'],
      'handshake-failed',
      /.+/,
      ['EHLO c.test', 'XPONY', '*', 'QUIT'],
    ],
    ['garbage instead of a reply', '220 fake.test\r\n', ['HTTP/1.1 400 Bad Request\r\n'], 'protocol', /not an SMTP reply line/, ['EHLO c.test']],
  ];
  for (const [what, greeting, replies, kind, message, expectedLines] of cases) {
    it(`fails with '${kind}' on ${what}`, async () => {
      const fake = await scripted(greeting, replies);
      server = fake.server;
      const error = await failure(fake.port);
      expect(error.kind).toBe(kind);
      expect(error.message).toMatch(message);
      await waitFor("the client's connection closed", () => (fake.closed() ? true : undefined));
      expect(fake.lines.map((l) => (l.startsWith('XPONY 1 ') ? 'XPONY' : l))).toEqual(expectedLines);
    });
  }

  it("fails with 'timeout' when the server never greets", async () => {
    const fake = await scripted('', []);
    server = fake.server;
    const started = Date.now();
    const error = await failure(fake.port, 300);
    expect(error.kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(loadScaled(2_000));
  });

  it("fails with 'connect' when nothing listens", async () => {
    const fake = await scripted('', []);
    const port = fake.port;
    await new Promise((r) => fake.server.close(r));
    expect((await failure(port)).kind).toBe('connect');
  });
});
