import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { RemoteSession } from '../../src/outbound/remote-session.js';
import { SessionCache } from '../../src/outbound/session-cache.js';
import { SmtpClient } from '../../src/smtp/smtp-client.js';

async function idleSession(): Promise<RemoteSession> {
  const client = await SmtpClient.over(new PassThrough(), { host: '127.0.0.1', port: 25, timeoutMs: 1_000 }, { code: 220, enhancedCode: undefined, lines: ['mx.test ESMTP'] });
  return new RemoteSession({ client, mode: 'plain', host: 'mx.test', address: '127.0.0.1', port: 25, ehloLines: ['mx.test'] });
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
});
