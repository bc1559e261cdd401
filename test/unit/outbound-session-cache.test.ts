import { PassThrough } from 'node:stream';
import { generateX25519Identity, identityToRecipient, parseRecipient, type Recipient } from '../../src/crypto/age/index.js';
import { describe, expect, it } from 'vitest';
import { RemoteSession } from '../../src/outbound/remote-session.js';
import { SessionCache } from '../../src/outbound/session-cache.js';
import { SmtpClient } from '../../src/smtp/smtp-client.js';

async function idleSession(transport = new PassThrough(), sealedRelay?: Recipient[]): Promise<RemoteSession> {
  const client = await SmtpClient.over(
    transport,
    { host: '127.0.0.1', port: 25, timeoutMs: 1_000 },
    { code: 220, enhancedCode: undefined, lines: ['mx.test ESMTP'] },
  );
  return new RemoteSession({
    client,
    mode: 'plain',
    host: 'mx.test',
    address: '127.0.0.1',
    port: 25,
    ehloLines: ['mx.test'],
    ...(sealedRelay === undefined ? {} : { sealedRelay }),
  });
}

describe('session cache', () => {
  it('a session kept and taken again for every message holds one close listener, not one per message', async () => {
    const cache = new SessionCache({ idleMs: 60_000 });
    const session = await idleSession();
    const baseline = session.client.transport.listenerCount('close');
    for (let message = 0; message < 50; message++) {
      cache.put('d.test', session);
      expect(cache.take('d.test', () => true)).toBe(session);
    }
    expect(session.client.transport.listenerCount('close')).toBe(baseline);
    cache.put('d.test', session);
    expect(session.client.transport.listenerCount('close')).toBe(baseline + 1);
    session.client.transport.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    expect(cache.take('d.test', () => true)).toBeUndefined();
  });

  it('keeps no sealed relay session: it says QUIT, and the next message tries the MX hosts offering XPONY again', async () => {
    const cache = new SessionCache({ idleMs: 60_000 });
    const transport = new PassThrough();
    const written: string[] = [];
    transport.on('data', (chunk: Buffer) => written.push(chunk.toString('latin1')));
    const session = await idleSession(transport, [parseRecipient(identityToRecipient(generateX25519Identity()))]);
    cache.put('d.test', session);
    expect(cache.take('d.test', () => true)).toBeUndefined();
    await new Promise((resolve) => setImmediate(resolve));
    expect(written.join('')).toContain('QUIT\r\n');
  });
});
