/**
 * The Noise prologue of an XPONY handshake (docs/PROTOCOL.md section 7): it binds the plaintext
 * greeting and EHLO exchange each side saw, so an edited capability line breaks the handshake.
 */
import type { ProtocolVersion } from './limits.js';

const LABEL = Buffer.from('blackpony-xpony\0', 'latin1');

export interface PlaintextTranscript {
  /** The server's whole greeting reply, CRLFs included. */
  greeting: Buffer;
  /** The client's EHLO line that preceded XPONY, CRLF included. */
  ehloLine: Buffer;
  /** The server's whole reply to that EHLO, CRLFs included. */
  ehloReply: Buffer;
  /** The version token of the XPONY command. */
  version: ProtocolVersion;
}

function lengthPrefixed(part: Uint8Array): Buffer[] {
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(part.length, 0);
  return [length, Buffer.from(part.buffer, part.byteOffset, part.length)];
}

export function buildPrologue(transcript: PlaintextTranscript): Uint8Array {
  return Buffer.concat([
    LABEL,
    ...lengthPrefixed(transcript.greeting),
    ...lengthPrefixed(transcript.ehloLine),
    ...lengthPrefixed(transcript.ehloReply),
    ...lengthPrefixed(Buffer.from(transcript.version, 'latin1')),
  ]);
}
