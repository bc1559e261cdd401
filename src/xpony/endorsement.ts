/**
 * Key rollover in the handshake (docs/PROTOCOL.md sections 7 and 11): a server that changed its
 * Noise static key proves, in message 2, that each of its previous keys vouches for the current
 * one. A client that pinned a previous key may then accept the current one.
 *
 *   proof = HMAC-SHA256(X25519(previous private, client ephemeral public),
 *                       "blackpony endorsement v1" || h1 || current static public key)
 *
 * h1 is the handshake hash right after message 1: it covers the prologue (the plaintext session)
 * and the client's ephemeral, so a proof is good for one handshake only; the current key in the
 * data makes it good for that key only. Only the client (its ephemeral private key) and the holder
 * of the previous private key can compute it.
 */
import { NoiseKeyError } from '../crypto/noise/index.js';
import { constantTimeEqual, hmacSha256, x25519, type X25519KeyPair } from '../crypto/primitives.js';
import type { Endorsement } from './payload.js';

const LABEL = new TextEncoder().encode('blackpony endorsement v1');

/** The server's endorsement of `currentKey` by `previous`, for the client whose ephemeral is `clientEphemeral`. */
export function endorse(previous: X25519KeyPair, clientEphemeral: Uint8Array, h1: Uint8Array, currentKey: Uint8Array): Endorsement {
  const secret = x25519(previous.privateKey, clientEphemeral);
  return { previousKey: Uint8Array.from(previous.publicKey), proof: hmacSha256(secret, LABEL, h1, currentKey) };
}

/**
 * Whether `endorsement` proves that its previous key vouches for `currentKey` in this handshake.
 * `agreeWithEphemeral` is the client's HandshakeState.localEphemeralAgreement; a low-order
 * previous key makes it throw, and is reported as not verifying.
 */
export function verifyEndorsement(
  endorsement: Endorsement,
  agreeWithEphemeral: (publicKey: Uint8Array) => Uint8Array,
  h1: Uint8Array,
  currentKey: Uint8Array,
): boolean {
  let secret: Uint8Array;
  try {
    secret = agreeWithEphemeral(endorsement.previousKey);
  } catch (error) {
    if (error instanceof NoiseKeyError) return false;
    throw error;
  }
  return constantTimeEqual(hmacSha256(secret, LABEL, h1, currentKey), endorsement.proof);
}
