/**
 * The handshake lines of each XPONY version against the line limits (src/xpony/limits.ts,
 * docs/PROTOCOL.md sections 3 and 6): version 2 carries an ML-KEM-768 key in the XPONY line and
 * a ciphertext in the challenge, and even with the largest payload both stay within the limits.
 */
import { describe, expect, it } from 'vitest';
import { x25519GenerateKeyPair } from '../../src/crypto/primitives.js';
import { encodeMessage, startHandshake } from '../../src/xpony/handshake.js';
import { MAX_CHALLENGE_LINE, MAX_COMMAND_LINE, MAX_PAYLOAD, SUPPORTED_VERSIONS, type ProtocolVersion } from '../../src/xpony/limits.js';

const transcript = (version: ProtocolVersion) => ({
  greeting: Buffer.from('220 mx\r\n'),
  ehloLine: Buffer.from('EHLO c\r\n'),
  ehloReply: Buffer.from('250 mx\r\n'),
  version,
});

/** The XPONY line and the longest possible challenge line of `version`, CRLF included. */
function lines(version: ProtocolVersion): { xpony: number; challenge: number } {
  const client = startHandshake(true, transcript(version), { staticKey: x25519GenerateKeyPair() });
  const server = startHandshake(false, transcript(version), { staticKey: x25519GenerateKeyPair() });
  const message1 = client.writeMessage(new Uint8Array(0));
  server.readMessage(message1);
  const message2 = server.writeMessage(new Uint8Array(MAX_PAYLOAD));
  return { xpony: `XPONY ${version} ${encodeMessage(message1)}\r\n`.length, challenge: `334 ${encodeMessage(message2)}\r\n`.length };
}

describe('handshake lines and their limits', () => {
  it('version 2: a 1634-octet XPONY line and a challenge of at most 7070 octets, within the limits', () => {
    expect(lines('2')).toEqual({ xpony: 1634, challenge: 7070 });
  });

  it('every version fits the limits even with the largest payload', () => {
    for (const version of SUPPORTED_VERSIONS) {
      const { xpony, challenge } = lines(version);
      expect(xpony, version).toBeLessThanOrEqual(MAX_COMMAND_LINE);
      expect(challenge, version).toBeLessThanOrEqual(MAX_CHALLENGE_LINE);
    }
    expect(lines('1')).toEqual({ xpony: 54, challenge: 5598 });
  });
});
