/**
 * Key rollover in the handshake, both ends in process: a server keeping previous Noise keys
 * endorses its current key in message 2; the client reports the verified endorsers to requireKey
 * and in the result, and treats a forged endorsement as a failed handshake.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { generateKeys, rotateKeys } from '../../src/crypto/keyfile.js';
import { x25519GenerateKeyPair } from '../../src/crypto/primitives.js';
import { connectXpony, XponyError, type ConnectXponyResult } from '../../src/xpony/index.js';
import { waitFor } from '../harness/wait.js';
import { clientKeys, serverKeys, startXponyServer, type TestServer } from './xpony-fixtures.js';

const servers: TestServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function start(keys = serverKeys()): Promise<TestServer> {
  const server = await startXponyServer({ keys });
  servers.push(server);
  return server;
}

function connect(port: number, seen: Uint8Array[][]): Promise<ConnectXponyResult> {
  return connectXpony({
    host: '127.0.0.1',
    port,
    localHostName: 'mta.sender.test',
    keys: clientKeys(),
    requireKey: (_key, endorsedBy) => {
      seen.push(endorsedBy);
      return true;
    },
  });
}

describe('XPONY key endorsements', () => {
  it('a server with previous keys endorses its current key; the client verifies and reports them', async () => {
    const old = generateKeys();
    const rotated = rotateKeys(rotateKeys(old));
    const server = await start(rotated);
    const seen: Uint8Array[][] = [];
    const result = await connect(server.port, seen);
    if (result.kind !== 'tunnel') throw new Error(`expected a tunnel, got ${result.kind}`);
    const expected = [rotated.previousNoise[0]!.publicKey, old.noise.publicKey];
    expect(result.remoteStaticKey).toEqual(rotated.noise.publicKey);
    expect(result.endorsedBy).toEqual(expected);
    expect(seen).toEqual([expected]);
    result.tunnel.destroy();
  });

  it('a server without previous keys endorses nothing', async () => {
    const server = await start();
    const seen: Uint8Array[][] = [];
    const result = await connect(server.port, seen);
    if (result.kind !== 'tunnel') throw new Error(`expected a tunnel, got ${result.kind}`);
    expect(result.endorsedBy).toEqual([]);
    expect(seen).toEqual([[]]);
    result.tunnel.destroy();
  });

  it('a forged endorsement (claiming a key the server does not hold) fails the handshake before requireKey', async () => {
    const pinned = x25519GenerateKeyPair();
    const impostor = x25519GenerateKeyPair();
    // The server proves with the impostor's private key but names the pinned public key.
    const forging = { ...serverKeys(), previousNoise: [{ privateKey: impostor.privateKey, publicKey: pinned.publicKey }] };
    const server = await start(forging);
    const seen: Uint8Array[][] = [];
    const error = await connect(server.port, seen).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(XponyError);
    expect((error as XponyError).kind).toBe('handshake-failed');
    expect((error as XponyError).message).toMatch(/endorsement by previous key [a-z2-7]{4}(-[a-z2-7]{4}){7} does not verify/);
    expect(seen).toEqual([]);
    // The client cancelled with "*": the server never opened a tunnel.
    await waitFor('server.handshakes.length === 1', () => (server.handshakes.length === 1 ? true : undefined));
    expect(server.handshakes[0]!.outcome).toBe('cancelled');
  });
});
