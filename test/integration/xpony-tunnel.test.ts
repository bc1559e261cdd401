/**
 * The whole XPONY path, both ends in process: connectXpony + openInnerSmtp against
 * createXponyServer, with a recording relay in between where the test needs the wire.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectXpony, type TunnelResult } from '../../src/xpony/index.js';
import { openInnerSmtp } from './inner-smtp.js';
import { waitFor } from '../harness/wait.js';
import { clientKeys, RawSmtp, startRelay, startXponyServer, type TestServer } from './xpony-fixtures.js';

const MESSAGE = 'From: a@sender.test\r\nTo: b@receiver.test\r\nSubject: tunnel test\r\n\r\nHello through the tunnel.\r\n..leading dot line\r\n.\r\nlast\r\n';

async function tunnelTo(port: number, requireKey?: (k: Uint8Array) => true | string): Promise<TunnelResult> {
  const result = await connectXpony({ host: '127.0.0.1', port, localHostName: 'mta.sender.test', keys: clientKeys(), ...(requireKey ? { requireKey } : {}) });
  if (result.kind !== 'tunnel') throw new Error(`expected a tunnel, got ${result.kind}`);
  return result;
}

describe('XPONY tunnel, client and server in process', () => {
  let srv: TestServer;
  beforeAll(async () => {
    // STARTTLS offered outside (built-in certificate), so the test sees it vanish inside.
    srv = await startXponyServer({ hideSTARTTLS: false });
  });
  afterAll(async () => {
    await srv.close();
  });

  it('delivers a message through the tunnel unchanged, with the client key on session.xpony', async () => {
    const keys = clientKeys();
    const result = await tunnelTo(srv.port, (k) => (Buffer.from(k).equals(Buffer.from(srv.keys.noise.publicKey)) ? true : 'unexpected key'));
    expect(result.hostName).toBe('mx.receiver.test');
    expect(result.ageRecipients.map(String)).toEqual([srv.keys.ageX25519Recipient, srv.keys.ageHybridRecipient]);
    expect(result.ehloLines).toContain('XPONY 1 2');
    expect(result.ehloLines).toContain('STARTTLS');
    const inner = await openInnerSmtp(result.tunnel, { localHostName: 'mta.sender.test' });
    const info = await inner.send({ from: 'a@sender.test', to: ['b@receiver.test'] }, MESSAGE);
    expect(info.accepted).toEqual(['b@receiver.test']);
    await inner.quit();
    await waitFor('srv.messages.length === 1', () => (srv.messages.length === 1 ? true : undefined));
    const got = srv.messages.pop()!;
    expect(got.data.toString('latin1')).toBe(MESSAGE);
    expect(got.from).toBe('a@sender.test');
    expect(Buffer.from(got.xpony!.remoteStaticKey)).toEqual(Buffer.from(keys.noise.publicKey));
    expect(got.xpony!.hostName).toBe('mta.sender.test');
    expect(got.xpony!.version).toBe('2');
    expect(got.xpony!.remoteAddress).toBe('127.0.0.1');
  });

  it('runs a fresh session inside: new greeting, no STARTTLS or XPONY offered, XPONY refused with 503', async () => {
    const result = await tunnelTo(srv.port);
    const inner = new RawSmtp(result.tunnel);
    const greeting = await inner.reply();
    expect(greeting.code).toBe(220);
    // The plaintext EHLO does not carry over: MAIL before the inner EHLO is refused.
    expect(await inner.command('MAIL FROM:<a@sender.test>')).toMatch(/^503 /);
    inner.write('EHLO mta.sender.test\r\n');
    const ehlo = await inner.reply();
    expect(ehlo.code).toBe(250);
    const keywords = ehlo.lines.slice(1).map((l) => l.split(' ')[0]);
    expect(keywords).toContain('PIPELINING');
    expect(keywords).not.toContain('STARTTLS');
    expect(keywords).not.toContain('XPONY');
    expect(await inner.command('XPONY 1 QQ==')).toBe('503 5.5.1 XPONY: not allowed inside a tunnel');
    expect(await inner.command('STARTTLS')).toMatch(/^500 /);
    expect(await inner.command('QUIT')).toMatch(/^221 /);
    await inner.closed();
  });

  it('runs 1,000 transactions over one tunnel, rekeying each way after every one', async () => {
    const before = srv.messages.length;
    const result = await tunnelTo(srv.port);
    const inner = await openInnerSmtp(result.tunnel, { localHostName: 'mta.sender.test' });
    for (let i = 0; i < 1000; i++) {
      await inner.send({ from: 'a@sender.test', to: ['b@receiver.test'] }, `Subject: ${i}\r\n\r\nmessage ${i}\r\n`);
    }
    expect(result.tunnel.rekeysSent).toBeGreaterThanOrEqual(1000);
    // The server rekeys after each final DATA reply; the client has read all 1,000 of them.
    expect(result.tunnel.rekeysReceived).toBeGreaterThanOrEqual(1000);
    await inner.quit();
    expect(srv.messages.length - before).toBe(1000);
    expect(srv.messages.at(-1)!.data.toString()).toBe('Subject: 999\r\n\r\nmessage 999\r\n');
    srv.messages.length = before;
  });

  it('shows a wiretapper no envelope, header or body after the switch point', async () => {
    const relay = await startRelay(srv.port);
    try {
      const result = await tunnelTo(relay.port);
      const inner = await openInnerSmtp(result.tunnel, { localHostName: 'mta.sender.test' });
      await inner.send({ from: 'alice@origin.test', to: ['bob@destination.test'] }, 'Subject: secret plans\r\nX-Marker: hdr\r\n\r\nBODY-MARKER-7f3a\r\n');
      await inner.quit();
      const wire = Buffer.concat([...relay.connections[0]!.toServer, ...relay.connections[0]!.toClient]).toString('latin1');
      expect(wire).toContain('XPONY 2 ');
      for (const secret of [
        'alice@origin.test',
        'bob@destination.test',
        'MAIL FROM',
        'RCPT TO',
        'DATA',
        'Subject',
        'X-Marker',
        'BODY-MARKER-7f3a',
        'secret plans',
      ]) {
        expect(wire).not.toContain(secret);
      }
      await waitFor('the message with BODY-MARKER-7f3a', () => (srv.messages.some((m) => m.data.includes('BODY-MARKER-7f3a')) ? true : undefined));
    } finally {
      await relay.close();
    }
  });
});

describe('XPONY tunnel close frame', () => {
  it('discards a transaction cut short by a close frame, and the server closes the connection', async () => {
    const srv = await startXponyServer();
    try {
      const result = await tunnelTo(srv.port);
      result.tunnel.on('error', () => undefined);
      const inner = new RawSmtp(result.tunnel);
      expect((await inner.reply()).code).toBe(220);
      expect(await inner.command('EHLO mta.sender.test')).toMatch(/^250 /);
      expect(await inner.command('MAIL FROM:<a@sender.test>')).toMatch(/^250 /);
      expect(await inner.command('RCPT TO:<b@receiver.test>')).toMatch(/^250 /);
      expect(await inner.command('DATA')).toMatch(/^354 /);
      inner.write('Subject: cut short\r\n\r\nhalf a message\r\n');
      result.tunnel.end(); // close frame, no end-of-data marker
      await waitFor('the onData stream to be aborted', () => (srv.abortedData === 1 ? true : undefined));
      await inner.closed();
      expect(srv.messages).toEqual([]);
    } finally {
      await srv.close();
    }
  });
});

describe('XPONY tunnel idle timeout', () => {
  it('ends an idle inner session with 421 inside the tunnel, then a close frame', async () => {
    const srv = await startXponyServer({ socketTimeout: 300 });
    try {
      const result = await tunnelTo(srv.port);
      let closeFrame = false;
      result.tunnel.on('end', () => (closeFrame = true)); // 'end' only follows an authenticated close frame
      const inner = new RawSmtp(result.tunnel);
      expect((await inner.reply()).code).toBe(220);
      expect(await inner.command('EHLO mta.sender.test')).toMatch(/^250 /);
      const started = Date.now();
      const reply = await inner.reply();
      expect(reply.code).toBe(421);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      await inner.closed();
      expect(closeFrame).toBe(true);
    } finally {
      await srv.close();
    }
  });
});
