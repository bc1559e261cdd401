/**
 * `npm run -s vectors:hfs > test/vectors/noise-hfs.txt`: prints the project's Noise HFS test
 * vectors (ML-KEM-768) in the cacophony/snow JSON format; test/unit/noise-hfs.test.ts replays the
 * committed file. Keys, ephemerals and the KEM randomness
 * are fixed bytes (as cacophony's), so anyone can rebuild the inputs; no independent ML-KEM
 * Noise HFS implementation exists to make them with, so they pin this one down.
 */
import { completeVector, type NoiseVector } from './noise-vectors.js';
import { handshakePattern } from '../src/crypto/noise/patterns.js';
import { x25519PublicKey } from '../src/crypto/primitives.js';

/** The interactive fundamental patterns (section 7.5), each with the hfs modifier. */
const PATTERNS = ['NN', 'NK', 'NX', 'XN', 'XK', 'XX', 'KN', 'KK', 'KX', 'IN', 'IK', 'IX'];
/** Every pattern with SHA256 and BLAKE2b; XXhfs, which blackpony runs, with every hash. */
const HASHES = ['SHA256', 'BLAKE2b'];
const XX_HASHES = ['SHA256', 'SHA512', 'BLAKE2s', 'BLAKE2b'];

/** Octets first, first+1, ... as hex. */
function counting(first: number, length: number): string {
  return Buffer.from(Array.from({ length }, (_, i) => (first + i) % 256)).toString('hex');
}

const INIT_STATIC = counting(0x00, 32);
const RESP_STATIC = counting(0x01, 32);
const publicOf = (privateHex: string) => Buffer.from(x25519PublicKey(Buffer.from(privateHex, 'hex'))).toString('hex');
// "John Galt" and the payloads of the cacophony vectors, handshake and transport messages alike.
const PROLOGUE = Buffer.from('John Galt').toString('hex');
const PAYLOADS = ['Ludwig von Mises', 'Murray Rothbard', 'F. A. Hayek', 'Carl Menger', 'Jean-Baptiste Say', 'Eugen Böhm von Bawerk'].map((text) =>
  Buffer.from(text, 'utf8').toString('hex'),
);

function vector(pattern: string, hash: string): NoiseVector {
  const hfs = handshakePattern(`${pattern}hfs`);
  const sends = (initiator: boolean) => hfs.messages.some((tokens, i) => (i % 2 === 0) === initiator && tokens.includes('s'));
  const initiatorHasS = hfs.initiatorPreMessage.includes('s') || sends(true);
  const responderHasS = hfs.responderPreMessage.includes('s') || sends(false);
  return completeVector({
    protocol_name: `Noise_${pattern}hfs_25519+MLKEM768_ChaChaPoly_${hash}`,
    init_prologue: PROLOGUE,
    ...(initiatorHasS ? { init_static: INIT_STATIC } : {}),
    init_ephemeral: counting(0x20, 32),
    init_hybrid_ephemeral: counting(0x60, 64),
    ...(hfs.responderPreMessage.includes('s') ? { init_remote_static: publicOf(RESP_STATIC) } : {}),
    resp_prologue: PROLOGUE,
    ...(responderHasS ? { resp_static: RESP_STATIC } : {}),
    resp_ephemeral: counting(0x40, 32),
    resp_hybrid_ephemeral: counting(0xa0, 32),
    ...(hfs.initiatorPreMessage.includes('s') ? { resp_remote_static: publicOf(INIT_STATIC) } : {}),
    messages: PAYLOADS.map((payload) => ({ payload, ciphertext: '' })),
  });
}

const vectors = PATTERNS.flatMap((pattern) => (pattern === 'XX' ? XX_HASHES : HASHES).map((hash) => vector(pattern, hash)));
process.stdout.write(`${JSON.stringify({ vectors }, null, 2)}\n`);
