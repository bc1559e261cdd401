import { once } from 'node:events';
import { connect, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createSocketmapServer,
  encodeAnswer,
  MAX_SOCKETMAP_REQUEST,
  NetstringReader,
  SocketmapRequestError,
  type SocketmapHandler,
} from '../../src/outbound/socketmap.js';

const netstring = (text: string): string => `${Buffer.byteLength(text)}:${text},`;

describe('socketmap netstrings', () => {
  it('splits requests however the octets arrive, keeping a partial one for later', () => {
    const reader = new NetstringReader();
    const wire = Buffer.from(netstring('transport a.test') + netstring('transport b@c.test'));
    const seen: string[] = [];
    for (let i = 0; i < wire.length; i += 3) seen.push(...reader.push(wire.subarray(i, i + 3)).requests.map(String));
    expect(seen).toEqual(['transport a.test', 'transport b@c.test']);
  });

  it.each([
    ['a length that is no number', 'x1:a,'],
    ['a leading zero', '01:a,'],
    ['a missing comma', '1:ab'],
    ['a request over the limit', `${MAX_SOCKETMAP_REQUEST + 1}:`],
    ['a length of too many digits', '9'.repeat(12)],
  ])('refuses %s', (_, text) => {
    expect(new NetstringReader().push(Buffer.from(text)).error).toBeInstanceOf(SocketmapRequestError);
  });

  it('encodes each status as Postfix reads it, one printable line', () => {
    expect(encodeAnswer({ status: 'OK', value: 'blackpony:inet:[127.0.0.1]:10587' }).toString()).toBe(netstring('OK blackpony:inet:[127.0.0.1]:10587'));
    expect(encodeAnswer({ status: 'NOTFOUND' }).toString()).toBe('9:NOTFOUND ,');
    expect(encodeAnswer({ status: 'TEMP', reason: 'dns\r\nfailed' }).toString()).toBe('16:TEMP dns??failed,');
  });
});

describe('socketmap server', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  async function exchange(handler: SocketmapHandler, sent: string): Promise<string> {
    server = createSocketmapServer(handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    socket.end(sent);
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    await once(socket, 'close');
    return received;
  }

  it('answers pipelined requests in order, even when a later one is decided first', async () => {
    const delays: Record<string, number> = { 'slow.test': 50, 'fast.test': 0 };
    const received = await exchange(
      async (map, key) => {
        await new Promise((resolve) => setTimeout(resolve, delays[key]));
        return { status: 'OK', value: `${map}:${key}` };
      },
      netstring('transport slow.test') + netstring('transport fast.test'),
    );
    expect(received).toBe(netstring('OK transport:slow.test') + netstring('OK transport:fast.test'));
  });

  it('answers a failing lookup TEMP, and a malformed request PERM before closing', async () => {
    const received = await exchange(async () => Promise.reject(new Error('store broken')), `${netstring('transport a.test')}garbage`);
    expect(received).toBe(netstring('TEMP store broken') + netstring('PERM bad request: netstring length is not a number: "garbage"'));
  });

  it('refuses a request without a key', async () => {
    const received = await exchange(async () => ({ status: 'NOTFOUND' }), netstring('transport'));
    expect(received).toMatch(/^\d+:PERM bad request: expected "<map> <key>"/);
  });
});
