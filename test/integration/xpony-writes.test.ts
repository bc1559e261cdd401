/**
 * Socket writes per message through a kept tunnel (issue 17: each one is a system call, and the
 * kernel's share of the daemons' CPU). The outbound's own session (RemoteSession: sealing, the
 * SmtpClient) against the XPONY server; writes are counted on every TCP socket in the process,
 * so both ends of the tunnel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteSession } from '../../src/outbound/remote-session.js';
import { connectXpony, type Tunnel } from '../../src/xpony/index.js';
import { SmtpClient } from '../../src/smtp/smtp-client.js';
import { loadScaled, waitFor } from '../harness/wait.js';
import { clientKeys, startXponyServer, type TestServer } from './xpony-fixtures.js';
import { countSocketWrites } from '../harness/socket-writes.js';

const MESSAGES = 20;
const MESSAGE = Buffer.from(
  `From: a@sender.test\r\nTo: b@receiver.test\r\nSubject: writes\r\n\r\n${'x'.repeat(76)}\r\n`.repeat(4096 / 78).slice(0, 4096),
  'latin1',
);

async function keptSession(port: number): Promise<{ session: RemoteSession; tunnel: Tunnel }> {
  const result = await connectXpony({ host: '127.0.0.1', port, localHostName: 'mta.sender.test', keys: clientKeys() });
  if (result.kind !== 'tunnel') throw new Error(`expected a tunnel, got ${result.kind}`);
  const client = await SmtpClient.over(result.tunnel, { host: '127.0.0.1', port, timeoutMs: loadScaled(10_000), label: 'tunnel' });
  const ehlo = await client.command('EHLO mta.sender.test');
  const tunnel = {
    tunnel: result.tunnel,
    remoteStaticKey: result.remoteStaticKey,
    fingerprint: result.fingerprint,
    endorsedBy: [],
    sealTo: [result.ageRecipients.at(-1)!],
    sealedRelay: false,
    handshakeMs: 0,
  };
  return {
    session: new RemoteSession({ client, mode: 'xpony', host: 'mx.receiver.test', address: '127.0.0.1', port, ehloLines: ehlo.lines, tunnel }),
    tunnel: result.tunnel,
  };
}

async function deliver(session: RemoteSession): Promise<void> {
  // As the outbound transaction does on a kept session that offers PIPELINING.
  expect(session.offers('PIPELINING')).toBe(true);
  const replies = await session.pipeline([`MAIL FROM:<a@sender.test>${session.binary ? ' XPONY-BINARY' : ''}`, 'RCPT TO:<b@receiver.test>']);
  expect(replies.map((reply) => reply.code)).toEqual([250, 250]);
  if (!session.binary) expect((await session.command('DATA')).code).toBe(354);
  const sink = session.body();
  sink.write(MESSAGE);
  expect((await sink.end()).code).toBe(250);
}

describe('socket writes per message through a kept tunnel', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startXponyServer();
  });
  afterAll(async () => {
    await srv.close();
  });

  it(`sends a 4 KiB message in at most 5 socket writes, both ends together (${MESSAGES} messages averaged)`, async () => {
    const { session, tunnel } = await keptSession(srv.port);
    await deliver(session); // the first transaction: nothing of the handshake is counted
    const writes = countSocketWrites();
    try {
      for (let i = 0; i < MESSAGES; i++) await deliver(session);
      await waitFor('srv.messages.length === MESSAGES + 1', () => (srv.messages.length === MESSAGES + 1 ? true : undefined));
    } finally {
      writes.stop();
    }
    const perMessage = writes.count / MESSAGES;
    console.log(`socket writes per 4 KiB message, both ends: ${perMessage}`);
    expect(perMessage).toBeLessThanOrEqual(5);
    // The client rekeyed once per message (its rekey frame left with the message's last chunk).
    expect(tunnel.rekeysSent).toBe(MESSAGES + 1);
    session.quit();
  });
});
