/**
 * Fixed keys and handshake states for fuzzing: every seed in test/fuzz/corpus was made with these,
 * so a mutated seed gets past the layers a random input cannot (base64, the header, the MAC) and
 * reaches the checks behind them. They are public test values, never a host's keys.
 */
import { bech32Encode } from '../src/crypto/age/encoding.js';
import { identityToRecipient } from '../src/crypto/age/index.js';
import { CHACHA_POLY } from '../src/crypto/noise/cipher-functions.js';
import { CipherState, type HandshakeState } from '../src/crypto/noise/index.js';
import { x25519PublicKey, type X25519KeyPair } from '../src/crypto/primitives.js';
import { startHandshake } from '../src/xpony/handshake.js';
import { encodePayload } from '../src/xpony/payload.js';
import type { PlaintextTranscript } from '../src/xpony/prologue.js';

function keyPair(fill: number): X25519KeyPair {
  const privateKey = new Uint8Array(32).fill(fill);
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}

/** The age identity every sealed seed is addressed to. */
export const FUZZ_AGE_IDENTITY = bech32Encode('AGE-SECRET-KEY-', new Uint8Array(32).fill(0x11), true);
export const FUZZ_AGE_RECIPIENT = identityToRecipient(FUZZ_AGE_IDENTITY);

/** The tunnel key of the frame seeds (one direction, nonce from 0). */
const FRAME_KEY = new Uint8Array(32).fill(0x42);

export function frameCipher(): CipherState {
  return new CipherState(CHACHA_POLY, Uint8Array.from(FRAME_KEY));
}

const CLIENT_STATIC = keyPair(0x21);
const CLIENT_EPHEMERAL = keyPair(0x22);
const SERVER_STATIC = keyPair(0x31);
const SERVER_EPHEMERAL = keyPair(0x32);

const TRANSCRIPT: PlaintextTranscript = {
  greeting: Buffer.from('220 mx.example.test ESMTP\r\n', 'latin1'),
  ehloLine: Buffer.from('EHLO client.example.test\r\n', 'latin1'),
  ehloReply: Buffer.from('250-mx.example.test\r\n250 XPONY 1\r\n', 'latin1'),
  version: '1',
};

/** What the server puts in Noise message 2 and the client in message 3. */
export const SERVER_PAYLOAD = encodePayload({ ageRecipients: [FUZZ_AGE_RECIPIENT], hostName: 'mx.example.test' });
export const CLIENT_PAYLOAD = encodePayload({ ageRecipients: [], hostName: 'client.example.test' });

/** The client, having sent Noise message 1: ready to read message 2. */
export function clientAwaitingMessage2(): { client: HandshakeState; message1: Uint8Array } {
  const client = startHandshake(true, TRANSCRIPT, { staticKey: CLIENT_STATIC, fixedEphemeral: CLIENT_EPHEMERAL });
  return { client, message1: client.writeMessage(new Uint8Array(0)) };
}

/** The server, before Noise message 1. */
export function serverAwaitingMessage1(): HandshakeState {
  return startHandshake(false, TRANSCRIPT, { staticKey: SERVER_STATIC, fixedEphemeral: SERVER_EPHEMERAL });
}

/** The server, having answered message 1 with message 2: ready to read message 3. */
export function serverAwaitingMessage3(): { server: HandshakeState; message2: Uint8Array } {
  const server = serverAwaitingMessage1();
  server.readMessage(clientAwaitingMessage2().message1);
  return { server, message2: server.writeMessage(SERVER_PAYLOAD) };
}

/** The three messages of a successful handshake. */
export function handshakeMessages(): [Uint8Array, Uint8Array, Uint8Array] {
  const { client, message1 } = clientAwaitingMessage2();
  const { message2 } = serverAwaitingMessage3();
  client.readMessage(message2);
  return [message1, message2, client.writeMessage(CLIENT_PAYLOAD)];
}
