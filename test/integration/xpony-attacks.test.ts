/**
 * XPONY from the attacker's side: a man in the middle (a TCP relay) that edits the plaintext
 * exchange, injects plaintext around the switch point, or tampers with tunnel frames; and a
 * client that does not like the server's key.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectXpony, XponyError } from '../../src/xpony/index.js';
import { openInnerSmtp } from './inner-smtp.js';
import { loadScaled, waitFor } from '../harness/wait.js';
import { clientKeys, startRelay, startXponyServer, type Relay, type RelayConnection, type TestServer } from './xpony-fixtures.js';

const TUNNEL_READY = '220 2.0.0 XPONY tunnel ready\r\n';

describe('XPONY under attack', () => {
  let srv: TestServer;
  let relay: Relay | undefined;
  beforeAll(async () => {
    srv = await startXponyServer({ handshakeTimeoutMs: 500 });
  });
  afterEach(async () => {
    await relay?.close();
    relay = undefined;
    srv.messages.length = 0;
    srv.mailFroms.length = 0;
    srv.abortedData = 0;
    srv.handshakes.length = 0;
  });
  afterAll(async () => {
    await srv.close();
  });

  const connectVia = (port: number, requireKey?: (k: Uint8Array) => true | string) =>
    connectXpony({
      host: '127.0.0.1',
      port,
      localHostName: 'mta.sender.test',
      keys: clientKeys(),
      timeoutMs: loadScaled(5_000),
      ...(requireKey ? { requireKey } : {}),
    });

  it('cancels on a key the client does not accept: key-rejected, 501 5.7.0, nothing else sent', async () => {
    relay = await startRelay(srv.port);
    const error = await connectVia(relay.port, () => 'not the pinned key').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(XponyError);
    expect((error as XponyError).kind).toBe('key-rejected');
    expect((error as XponyError).message).toContain('not the pinned key');
    await waitFor('srv.handshakes.length > 0', () => (srv.handshakes.length > 0 ? true : undefined));
    expect(srv.handshakes[0]).toMatchObject({ outcome: 'cancelled', reply: '501 5.7.0 XPONY: cancelled by client' });
    const sent = Buffer.concat(relay.connections[0]!.toServer).toString('latin1').split('\r\n');
    expect(sent.map((l) => l.split(' ')[0])).toEqual(['EHLO', 'XPONY', '*', 'QUIT', '']);
    expect(srv.mailFroms).toEqual([]);
    expect(srv.messages).toEqual([]);
  });

  const edits: Array<[string, (text: string) => string]> = [
    ['removes PIPELINING from EHLO', (t) => t.replace('250-PIPELINING\r\n', '')],
    ['changes the greeting', (t) => t.replace('220 mx.receiver.test ESMTP', '220 mx.receiver.test ESMTP ready')],
    ['edits the XPONY version list', (t) => t.replace('250 XPONY 1 2\r\n', '250 XPONY 1 2 9\r\n')],
  ];
  for (const [what, edit] of edits) {
    it(`fails the handshake when a man in the middle ${what} (prologue mismatch)`, async () => {
      let edited = false;
      relay = await startRelay(srv.port, {
        fromServer: (data) => {
          const text = data.toString('latin1');
          const changed = edit(text);
          if (changed !== text) edited = true;
          return Buffer.from(changed, 'latin1');
        },
      });
      const error = await connectVia(relay.port).catch((e: unknown) => e);
      expect(edited).toBe(true);
      expect(error).toBeInstanceOf(XponyError);
      expect((error as XponyError).kind).toBe('handshake-failed');
      await waitFor('srv.handshakes.length > 0', () => (srv.handshakes.length > 0 ? true : undefined));
      expect(srv.handshakes.map((e) => e.outcome)).toEqual(['cancelled']);
    });
  }

  it('fails the handshake when a man in the middle strikes version 2 to push both ends back to version 1', async () => {
    relay = await startRelay(srv.port, {
      fromServer: (data) => Buffer.from(data.toString('latin1').replace('250 XPONY 1 2\r\n', '250 XPONY 1\r\n'), 'latin1'),
    });
    const error = await connectVia(relay.port).catch((e: unknown) => e);
    // The client did fall back to version 1, as the edited list told it; the server took it...
    const sent = Buffer.concat(relay.connections[0]!.toServer).toString('latin1');
    expect(sent).toMatch(/\r\nXPONY 1 [A-Za-z0-9+/=]+\r\n/);
    // ...but the prologues differ (the server's EHLO reply said "1 2"), so no version-1 tunnel opens.
    expect(error).toBeInstanceOf(XponyError);
    expect((error as XponyError).kind).toBe('handshake-failed');
    await waitFor('srv.handshakes.length > 0', () => (srv.handshakes.length > 0 ? true : undefined));
    expect(srv.handshakes.map((e) => e.outcome)).toEqual(['cancelled']);
    expect(srv.mailFroms).toEqual([]);
  });

  it('discards plaintext pipelined after Noise message 3 instead of running it', async () => {
    let sawChallenge = false;
    let injected = false;
    relay = await startRelay(srv.port, {
      fromServer: (data) => {
        if (data.toString('latin1').startsWith('334 ')) sawChallenge = true;
        return data;
      },
      fromClient: (data) => {
        if (!sawChallenge || injected) return data;
        injected = true; // the client's Noise message 3 line: append a command in the same segment
        return Buffer.concat([data, Buffer.from('MAIL FROM:<x@injected.test>\r\nRCPT TO:<y@injected.test>\r\n')]);
      },
    });
    const result = await connectVia(relay.port);
    expect(injected).toBe(true);
    if (result.kind !== 'tunnel') throw new Error('expected a tunnel');
    const inner = await openInnerSmtp(result.tunnel, { localHostName: 'mta.sender.test' });
    await inner.send({ from: 'real@sender.test', to: ['b@receiver.test'] }, 'Subject: x\r\n\r\nbody\r\n');
    await inner.quit();
    await waitFor('srv.messages.length === 1', () => (srv.messages.length === 1 ? true : undefined));
    expect(srv.mailFroms).toEqual(['real@sender.test']);
  });

  it('discards plaintext injected right after the 220 on the client side', async () => {
    let injected = false;
    relay = await startRelay(srv.port, {
      fromServer: (data) => {
        const text = data.toString('latin1');
        if (!text.endsWith(TUNNEL_READY)) return data;
        injected = true;
        return Buffer.concat([data, Buffer.from('220 evil.test ESMTP\r\n250 OK\r\n')]);
      },
    });
    const result = await connectVia(relay.port);
    expect(injected).toBe(true);
    if (result.kind !== 'tunnel') throw new Error('expected a tunnel');
    const inner = await openInnerSmtp(result.tunnel, { localHostName: 'mta.sender.test' });
    const info = await inner.send({ from: 'a@sender.test', to: ['b@receiver.test'] }, 'Subject: x\r\n\r\nbody\r\n');
    expect(info.response).toMatch(/^250 /);
    await inner.quit();
    await waitFor('srv.messages.length === 1', () => (srv.messages.length === 1 ? true : undefined));
  });

  it('closes without a plaintext word when the tunnel-open frame never comes', async () => {
    let switched = false;
    relay = await startRelay(srv.port, {
      fromServer: (data) => {
        if (data.toString('latin1').endsWith(TUNNEL_READY)) switched = true;
        return data;
      },
      fromClient: (data) => (switched ? Buffer.alloc(0) : data),
    });
    const result = await connectVia(relay.port);
    if (result.kind !== 'tunnel') throw new Error('expected a tunnel');
    const closed = new Promise((resolve) => result.tunnel.on('close', resolve));
    result.tunnel.on('error', () => undefined);
    await closed;
    const fromServer = Buffer.concat(relay.connections[0]!.toClient).toString('latin1');
    expect(fromServer.endsWith(TUNNEL_READY)).toBe(true);
    expect(srv.handshakes.map((e) => e.outcome)).toEqual(['timeout']);
  });

  it('fails the client side when a frame from the server is bit-flipped', async () => {
    let switched = false;
    let flipped = false;
    relay = await startRelay(srv.port, {
      fromServer: (data) => {
        if (!switched) {
          if (data.toString('latin1').endsWith(TUNNEL_READY)) switched = true;
          return data;
        }
        if (flipped) return data;
        flipped = true;
        const copy = Buffer.from(data);
        copy[copy.length - 1]! ^= 0x80;
        return copy;
      },
    });
    const result = await connectVia(relay.port);
    if (result.kind !== 'tunnel') throw new Error('expected a tunnel');
    const error = await openInnerSmtp(result.tunnel, { localHostName: 'mta.sender.test' }).catch((e: unknown) => e);
    expect(flipped).toBe(true);
    expect(String(error)).toMatch(/frame failed authentication/);
    await waitFor('result.tunnel.destroyed', () => (result.tunnel.destroyed ? true : undefined));
  });

  type FrameAttack = (frame: Buffer, state: AttackState) => Buffer[];
  interface AttackState {
    frames: Buffer[];
    held?: Buffer;
    done: boolean;
    connection: RelayConnection;
  }
  const isMessageFrame = (frame: Buffer) => frame.length > 1000;
  const attacks: Array<[string, FrameAttack]> = [
    [
      'bit-flipped',
      (f) => {
        const copy = Buffer.from(f);
        copy[copy.length - 20]! ^= 0x01;
        return [copy];
      },
    ],
    [
      'truncated (then the connection ends)',
      (f, s) => {
        setImmediate(() => s.connection.server.end());
        return [f.subarray(0, f.length >> 1)];
      },
    ],
    [
      'reordered',
      (f, s) => {
        s.held = f;
        return [];
      },
    ],
    ['replayed (an earlier frame instead)', (_f, s) => [s.frames[1]!]],
    ['duplicated', (f) => [f, f]],
    ['dropped', () => []],
  ];
  for (const [what, attack] of attacks) {
    it(`ends the session and delivers nothing when a message frame is ${what}`, async () => {
      let switched = false;
      let pending = Buffer.alloc(0);
      relay = await startRelay(srv.port, {
        fromServer: (data) => {
          if (data.toString('latin1').endsWith(TUNNEL_READY)) switched = true;
          return data;
        },
        fromClient: (data, connection) => {
          if (!switched) return data;
          const state = (stateOf.get(connection) ?? stateOf.set(connection, { frames: [], done: false, connection }).get(connection))!;
          pending = Buffer.concat([pending, data]);
          const out: Buffer[] = [];
          while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
            const frame = pending.subarray(0, 2 + pending.readUInt16BE(0));
            pending = pending.subarray(frame.length);
            if (state.held !== undefined) {
              out.push(frame, state.held);
              state.held = undefined;
            } else if (!state.done && isMessageFrame(frame)) {
              state.done = true;
              out.push(...attack(frame, state));
            } else {
              out.push(frame);
            }
            state.frames.push(frame);
          }
          return Buffer.concat(out);
        },
      });
      const stateOf = new Map<RelayConnection, AttackState>();
      const result = await connectVia(relay.port);
      if (result.kind !== 'tunnel') throw new Error('expected a tunnel');
      result.tunnel.on('error', () => undefined);
      const inner = await openInnerSmtp(result.tunnel, { localHostName: 'mta.sender.test' });
      const body = Buffer.alloc(300_000, 'A line of the message body, long enough to fill several frames.\r\n').toString('latin1');
      const sent = inner.send({ from: 'a@sender.test', to: ['b@receiver.test'] }, `Subject: attacked\r\n\r\n${body}`);
      await expect(sent).rejects.toThrow();
      expect([...stateOf.values()][0]?.done).toBe(true);
      await waitFor('the onData stream to be aborted', () => (srv.abortedData === 1 ? true : undefined));
      expect(srv.messages).toEqual([]);
      expect(srv.mailFroms).toEqual(['a@sender.test']);
    });
  }
});
