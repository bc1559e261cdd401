/**
 * Key endorsements (docs/PROTOCOL.md section 7, field 0x03): a previous static key vouching for
 * the current one, from the attacker's side: a proof is good for one handshake and one key only.
 */
import { describe, expect, it } from 'vitest';
import type { HandshakeState } from '../../src/crypto/noise/index.js';
import { x25519GenerateKeyPair, type X25519KeyPair } from '../../src/crypto/primitives.js';
import { endorse, verifyEndorsement } from '../../src/xpony/endorsement.js';
import { startHandshake } from '../../src/xpony/handshake.js';
import type { Endorsement } from '../../src/xpony/payload.js';

const transcript = { greeting: Buffer.from('220 mx\r\n'), ehloLine: Buffer.from('EHLO c\r\n'), ehloReply: Buffer.from('250 mx\r\n'), version: '1' as const };

interface AfterMessage1 {
  client: HandshakeState;
  server: HandshakeState;
  /** The handshake hash right after message 1 (the same on both sides). */
  h1: Uint8Array;
}

function afterMessage1(serverKey: X25519KeyPair): AfterMessage1 {
  const client = startHandshake(true, transcript, { staticKey: x25519GenerateKeyPair() });
  const server = startHandshake(false, transcript, { staticKey: serverKey });
  server.readMessage(client.writeMessage(new Uint8Array(0)));
  expect(client.handshakeHash).toEqual(server.handshakeHash);
  return { client, server, h1: client.handshakeHash };
}

const verify = (side: AfterMessage1, endorsement: Endorsement, currentKey: Uint8Array): boolean =>
  verifyEndorsement(endorsement, (key) => side.client.localEphemeralAgreement(key), side.h1, currentKey);

describe('key endorsement', () => {
  const previous = x25519GenerateKeyPair();
  const current = x25519GenerateKeyPair();

  it('verifies for the key it endorses, in the handshake it was made for', () => {
    const side = afterMessage1(current);
    const endorsement = endorse(previous, side.server.remoteEphemeralKey!, side.h1, current.publicKey);
    expect(endorsement.previousKey).toEqual(previous.publicKey);
    expect(endorsement.proof).toHaveLength(32);
    expect(verify(side, endorsement, current.publicKey)).toBe(true);
  });

  it('does not transfer to another key', () => {
    const side = afterMessage1(current);
    const endorsement = endorse(previous, side.server.remoteEphemeralKey!, side.h1, current.publicKey);
    expect(verify(side, endorsement, x25519GenerateKeyPair().publicKey)).toBe(false);
  });

  it('does not replay into a second handshake (another client ephemeral and transcript hash)', () => {
    const first = afterMessage1(current);
    const recorded = endorse(previous, first.server.remoteEphemeralKey!, first.h1, current.publicKey);
    const second = afterMessage1(current);
    expect(verify(second, recorded, current.publicKey)).toBe(false);
  });

  it('is not made by anyone but the holder of the previous private key', () => {
    const side = afterMessage1(current);
    const impostor = x25519GenerateKeyPair();
    // The impostor signs with its own private key but claims the pinned public key.
    const forged = endorse({ privateKey: impostor.privateKey, publicKey: previous.publicKey }, side.server.remoteEphemeralKey!, side.h1, current.publicKey);
    expect(verify(side, forged, current.publicKey)).toBe(false);
  });

  it('fails on any flipped proof bit, on a low-order previous key, and on a proof of the wrong length', () => {
    const side = afterMessage1(current);
    const endorsement = endorse(previous, side.server.remoteEphemeralKey!, side.h1, current.publicKey);
    for (let bit = 0; bit < 256; bit += 37) {
      const proof = Uint8Array.from(endorsement.proof);
      proof[bit >> 3]! ^= 1 << (bit & 7);
      expect(verify(side, { ...endorsement, proof }, current.publicKey)).toBe(false);
    }
    expect(verify(side, { previousKey: new Uint8Array(32), proof: endorsement.proof }, current.publicKey)).toBe(false);
    expect(verify(side, { ...endorsement, proof: endorsement.proof.subarray(0, 16) }, current.publicKey)).toBe(false);
  });
});
