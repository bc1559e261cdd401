/**
 * What both ends of an XPONY handshake share (docs/PROTOCOL.md sections 3 and 7): the Noise
 * HandshakeState bound to the plaintext transcript, and the strict base64 of handshake messages.
 */
import { base64 } from '@scure/base';
import { HandshakeState } from '../crypto/noise/index.js';
import type { X25519KeyPair } from '../crypto/primitives.js';
import { NOISE_PROTOCOL } from './limits.js';
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
}

export function startHandshake(initiator: boolean, transcript: PlaintextTranscript, keys: HandshakeKeys): HandshakeState {
  return new HandshakeState({
    protocolName: NOISE_PROTOCOL,
    initiator,
    prologue: buildPrologue(transcript),
    s: keys.staticKey,
    ...(keys.fixedEphemeral === undefined ? {} : { e: keys.fixedEphemeral }),
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
