/**
 * What both ends of an XPONY handshake share (docs/PROTOCOL.md sections 3 and 7): the Noise
 * HandshakeState bound to the plaintext transcript, and the strict base64 of handshake messages.
 */
import { HandshakeState, parseProtocolName, prepareDhKey, type DhKey } from '../crypto/noise/index.js';
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

// A host's static key serves every handshake: importing it into OpenSSL costs as much as an
// agreement, so it is done once per key pair (the key pairs are the daemon's loaded key files).
const preparedStaticKeys = new WeakMap<X25519KeyPair, DhKey>();

function preparedStaticKey(keyPair: X25519KeyPair): DhKey {
  let key = preparedStaticKeys.get(keyPair);
  if (key === undefined) {
    key = prepareDhKey(keyPair, "this host's static key");
    preparedStaticKeys.set(keyPair, key);
  }
  return key;
}

/** The Noise handshake of the version the XPONY command named (transcript.version). */
export function startHandshake(initiator: boolean, transcript: PlaintextTranscript, keys: HandshakeKeys): HandshakeState {
  const protocolName = NOISE_PROTOCOLS[transcript.version];
  const hfs = parseProtocolName(protocolName).pattern.hfs;
  return new HandshakeState({
    protocolName,
    initiator,
    prologue: buildPrologue(transcript),
    s: preparedStaticKey(keys.staticKey),
    ...(keys.fixedEphemeral === undefined ? {} : { e: keys.fixedEphemeral }),
    ...(hfs && keys.fixedKemEphemeral !== undefined ? { kemEphemeral: keys.fixedKemEphemeral } : {}),
  });
}

// Node's own base64 (native) instead of @scure/base: measured here, encoding and decoding a
// 1.2 KB version-2 message costs 7 µs instead of 130 µs, on every handshake message of both sides.
// Node's decoder is lenient (whitespace, the URL alphabet, missing padding, spare bits), so the
// decoded bytes must encode back to exactly the text.
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function encodeMessage(message: Uint8Array): string {
  return Buffer.from(message.buffer, message.byteOffset, message.length).toString('base64');
}

/** Decodes canonical base64: padding required, no whitespace, zero spare bits, not empty. */
export function decodeMessage(text: string, what: string): Uint8Array {
  if (text.length === 0) throw new Base64Error(`${what}: empty`);
  const bytes = Buffer.from(text, 'base64');
  // Text that encodes back to itself is canonical; the pattern, which costs as much as the
  // decoding, only says why some text is not.
  if (bytes.toString('base64') !== text) {
    if (!CANONICAL_BASE64.test(text)) throw new Base64Error(`${what}: not canonical base64 (characters, length or padding)`);
    throw new Base64Error(`${what}: not canonical base64 (spare bits not zero)`);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}
