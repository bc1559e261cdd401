/**
 * Protocol versions (docs/PROTOCOL.md section 2): a server offers `XPONY 1 2`, a client picks the
 * highest both know, so two current peers run version 2 (the ML-KEM-768 hybrid handshake) and a
 * version-1 peer on either side still gets its tunnel and its message through.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connectXpony, type ConnectXponyOptions, type TunnelResult } from '../../src/xpony/index.js';
import type { ProtocolVersion } from '../../src/xpony/limits.js';
import { openInnerSmtp } from './inner-smtp.js';
import { loadScaled, waitFor } from '../harness/wait.js';
import { clientKeys, startXponyServer, type TestServer } from './xpony-fixtures.js';

describe('XPONY versions', () => {
  let srv: TestServer | undefined;
  afterEach(async () => {
    await srv?.close();
    srv = undefined;
  });

  async function deliver(serverVersions: readonly ProtocolVersion[] | undefined, clientVersions: readonly ProtocolVersion[] | undefined) {
    srv = await startXponyServer(serverVersions === undefined ? {} : { versions: serverVersions });
    const options: ConnectXponyOptions = {
      host: '127.0.0.1',
      port: srv.port,
      localHostName: 'mta.sender.test',
      keys: clientKeys(),
      timeoutMs: loadScaled(10_000),
    };
    const result = (await connectXpony(clientVersions === undefined ? options : { ...options, versions: clientVersions })) as TunnelResult;
    expect(result.kind).toBe('tunnel');
    const inner = await openInnerSmtp(result.tunnel, { localHostName: 'mta.sender.test' });
    await inner.send({ from: 'a@sender.test', to: ['b@receiver.test'] }, 'Subject: versions\r\n\r\nbody\r\n');
    await inner.quit();
    const server = srv;
    await waitFor('server.messages.length === 1', () => (server.messages.length === 1 ? true : undefined));
    return { result, message: server.messages[0]! };
  }

  it('two current peers offer 1 and 2 and run version 2', async () => {
    const { result, message } = await deliver(undefined, undefined);
    expect(result.ehloLines).toContain('XPONY 1 2');
    expect(result.version).toBe('2');
    expect(message.xpony?.version).toBe('2');
    expect(message.data.toString()).toContain('Subject: versions');
  });

  it('a version-1 server (XPONY 1) still gets a tunnel from a current client, in version 1', async () => {
    const { result, message } = await deliver(['1'], undefined);
    expect(result.ehloLines).toContain('XPONY 1');
    expect(result.version).toBe('1');
    expect(message.xpony?.version).toBe('1');
  });

  it('a version-1 client still gets a tunnel from a current server, in version 1', async () => {
    const { result, message } = await deliver(undefined, ['1']);
    expect(result.version).toBe('1');
    expect(message.xpony?.version).toBe('1');
  });

  it('a client that knows no version the server offers gets the plaintext session back, as without XPONY', async () => {
    srv = await startXponyServer({ versions: ['1'] });
    const outcome = await connectXpony({
      host: '127.0.0.1',
      port: srv.port,
      localHostName: 'mta.sender.test',
      keys: clientKeys(),
      timeoutMs: loadScaled(10_000),
      versions: ['2'],
    });
    expect(outcome.kind).toBe('no-xpony');
    if (outcome.kind === 'no-xpony') outcome.socket.destroy();
  });
});
