/**
 * XPONY next to ordinary SMTP: a plain client against the XPONY server, the XPONY client against a
 * plain smtp-server, and a STARTTLS session, which must not offer XPONY.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectXpony } from '../../src/xpony/index.js';
import { ReplyReader } from '../../src/smtp/reply-reader.js';
import { waitFor } from '../harness/wait.js';
import { clientKeys, startXponyServer, type TestServer } from './xpony-fixtures.js';

const MESSAGE = 'From: a@sender.test\r\nSubject: plain\r\n\r\nbody \u00e9 8bit\r\n.dot\r\n';

function plainClient(port: number, extra: SMTPConnection.Options = {}): Promise<SMTPConnection> {
  const connection = new SMTPConnection({ host: '127.0.0.1', port, name: 'legacy.test', logger: false, ...extra });
  return new Promise((resolve, reject) => {
    connection.once('error', reject);
    connection.connect(() => resolve(connection));
  });
}

const ehloLinesOf = (connection: SMTPConnection) => (connection as unknown as { _ehloLines: string[] })._ehloLines;

describe('XPONY server with a plain client', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startXponyServer({ hideSTARTTLS: false });
  });
  afterAll(async () => {
    await srv.close();
  });

  it('offers XPONY 1 2 in EHLO and delivers ordinary SMTP mail unchanged', async () => {
    const connection = await plainClient(srv.port, { ignoreTLS: true });
    expect(ehloLinesOf(connection)).toContain('XPONY 1 2');
    const info = await new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) =>
      connection.send({ from: 'a@sender.test', to: ['b@receiver.test'] }, Buffer.from(MESSAGE, 'utf8'), (err, i) => (err ? reject(err) : resolve(i))),
    );
    expect(info.accepted).toEqual(['b@receiver.test']);
    connection.quit();
    await waitFor('srv.messages.length === 1', () => (srv.messages.length === 1 ? true : undefined));
    expect(srv.messages[0]!.data).toEqual(Buffer.from(MESSAGE, 'utf8'));
    expect(srv.messages[0]!.xpony).toBeUndefined();
  });

  it('does not offer XPONY after STARTTLS', async () => {
    const connection = await plainClient(srv.port, { requireTLS: true, tls: { rejectUnauthorized: false } });
    expect(connection.secure).toBe(true);
    expect(ehloLinesOf(connection)).not.toContain('XPONY 1 2');
    connection.quit();
  });
});

describe('XPONY server with XPONY disabled', () => {
  it('neither offers nor runs XPONY when disabledCommands lists it', async () => {
    const srv = await startXponyServer({ disabledCommands: ['XPONY'] });
    try {
      const result = await connectXpony({ host: '127.0.0.1', port: srv.port, localHostName: 'mta.sender.test', keys: clientKeys() });
      expect(result.kind).toBe('no-xpony');
      if (result.kind === 'no-xpony') result.socket.destroy();
    } finally {
      await srv.close();
    }
  });
});

describe('XPONY client against a plain server', () => {
  it("returns 'no-xpony' with the EHLO lines and the socket open right after EHLO", async () => {
    const server = new SMTPServer({
      name: 'legacy.receiver.test',
      disableReverseLookup: true,
      authOptional: true,
      hideSTARTTLS: true,
      logger: false,
      closeTimeout: 500,
    });
    server.listen(0, '127.0.0.1');
    await once(server.server, 'listening');
    try {
      const result = await connectXpony({
        host: '127.0.0.1',
        port: (server.server.address() as AddressInfo).port,
        localHostName: 'mta.sender.test',
        keys: clientKeys(),
      });
      expect(result.kind).toBe('no-xpony');
      if (result.kind !== 'no-xpony') return;
      expect(result.greeting.code).toBe(220);
      expect(result.greeting.lines[0]).toBe('legacy.receiver.test ESMTP');
      expect(result.ehloLines[0]).toMatch(/^legacy\.receiver\.test /);
      expect(result.ehloLines).toContain('PIPELINING');
      expect(result.ehloLines.some((l) => l.startsWith('XPONY'))).toBe(false);
      // The caller can carry on in plaintext from the state after EHLO.
      const reader = new ReplyReader(result.socket);
      result.socket.resume();
      result.socket.write('MAIL FROM:<a@sender.test>\r\n');
      expect((await reader.read(512)).code).toBe(250);
      result.socket.write('QUIT\r\n');
      expect((await reader.read(512)).code).toBe(221);
      result.socket.destroy();
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
