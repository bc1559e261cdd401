/**
 * What both ends of an XPONY handshake share (docs/PROTOCOL.md sections 3 and 7): the Noise
 * HandshakeState bound to the plaintext transcript, and the strict base64 of handshake messages.
 */
import { base64 } from '@scure/base';
import { HandshakeState, parseProtocolName } from '../crypto/noise/index.js';
import type { X25519KeyPair } from '../crypto/primitives.js';
import { NOISE_PROTOCOLS } from './limits.js';
import { buildPrologue, type PlaintextTranscript } from './prologue.js';

/** A base64 handshake message was not canonical RFC 4648 base64. */
export class Base64Error extends Error {
  override readonly name = 'Base64Error';
}

export interface HandshakeKeys {
  /** This side's Noise static key pair. */
  staticKey: X25519KeyPair;
  /** A fixed ephemeral key: for the documented example session (test vectors) only. */
  fixedEphemeral?: X25519KeyPair;
  /**
   * Fixed ML-KEM randomness of version 2 (the client's 64-octet key seed, the server's 32-octet
   * encapsulation randomness): for the documented example session only.
   */
  fixedKemEphemeral?: Uint8Array;
}

/** The Noise handshake of the version the XPONY command named (transcript.version). */
export function startHandshake(initiator: boolean, transcript: PlaintextTranscript, keys: HandshakeKeys): HandshakeState {
  const protocolName = NOISE_PROTOCOLS[transcript.version];
  const hfs = parseProtocolName(protocolName).pattern.hfs;
  return new HandshakeState({
    protocolName,
    initiator,
    prologue: buildPrologue(transcript),
    s: keys.staticKey,
    ...(keys.fixedEphemeral === undefined ? {} : { e: keys.fixedEphemeral }),
    ...(hfs && keys.fixedKemEphemeral !== undefined ? { kemEphemeral: keys.fixedKemEphemeral } : {}),
  });
}

export function encodeMessage(message: Uint8Array): string {
  return base64.encode(message);
}

/** Decodes canonical base64: padding required, no whitespace, zero spare bits, not empty. */
export function decodeMessage(text: string, what: string): Uint8Array {
  if (text.length === 0) throw new Base64Error(`${what}: empty`);
  let bytes: Uint8Array;
  try {
    bytes = base64.decode(text);
  } catch (err) {
    throw new Base64Error(`${what}: not canonical base64 (${(err as Error).message})`);
  }
  // Belt and braces: only the canonical encoding of the bytes is accepted.
  if (base64.encode(bytes) !== text) throw new Base64Error(`${what}: not canonical base64`);
  return bytes;
}
