/**
 * Runs Noise test vectors in the JSON format shared by cacophony and snow
 * ({"vectors": [{protocol_name, init_*, resp_*, handshake_hash?, messages: [{payload, ciphertext}]}]}).
 * Used by the unit tests and by `npm run vectors -- FILE`.
 *
 * The messages run past the handshake into transport messages: one-way patterns send them from
 * initiator to responder only; interactive ones keep alternating from whoever would send next.
 *
 * hfs vectors (Noise HFS) carry each side's KEM randomness as noise-c's hybrid vectors do:
 * `init_hybrid_ephemeral` / `resp_hybrid_ephemeral`, here the 64-byte ML-KEM seed of the side
 * that sends e1 and the 32-byte encapsulation randomness of the side that sends ekem1.
 */
import { x25519StaticKey } from '../src/crypto/primitives.js';
import { HandshakeState, NoiseUnsupportedError, parseProtocolName, type HandshakeOptions, type TransportCiphers } from '../src/crypto/noise/index.js';

export interface NoiseVectorMessage {
  payload: string;
  ciphertext: string;
}

export interface NoiseVector {
  protocol_name: string;
  init_prologue?: string;
  init_static?: string;
  init_ephemeral?: string;
  init_remote_static?: string;
  init_psks?: string[];
  init_hybrid_ephemeral?: string;
  resp_prologue?: string;
  resp_static?: string;
  resp_ephemeral?: string;
  resp_remote_static?: string;
  resp_psks?: string[];
  resp_hybrid_ephemeral?: string;
  handshake_hash?: string;
  messages: NoiseVectorMessage[];
}

export type VectorOutcome =
  { name: string; status: 'passed'; messagesChecked: number; handshakeHashChecked: boolean } | { name: string; status: 'failed' | 'skipped'; reason: string };

export interface VectorSummary {
  passed: number;
  failed: number;
  skipped: number;
}

export class VectorFileError extends Error {
  override readonly name = 'VectorFileError';
}

export function parseVectorFile(text: string): NoiseVector[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new VectorFileError(`vector file: not JSON (${(error as Error).message})`);
  }
  const vectors = (parsed as { vectors?: unknown } | null)?.vectors;
  if (!Array.isArray(vectors)) throw new VectorFileError('vector file: expected an object with a "vectors" array');
  vectors.forEach((vector: unknown, i) => {
    const v = vector as Partial<NoiseVector> | null;
    if (typeof v?.protocol_name !== 'string' || !Array.isArray(v.messages)) {
      throw new VectorFileError(`vector file: vector ${i + 1}: expected "protocol_name" and a "messages" array`);
    }
  });
  return vectors as NoiseVector[];
}

function fromHex(text: string | undefined, what: string): Uint8Array {
  if (text === undefined) return new Uint8Array(0);
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(text)) throw new VectorFileError(`${what}: not hex: "${text.slice(0, 40)}"`);
  return new Uint8Array(Buffer.from(text, 'hex'));
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}

function sideOptions(vector: NoiseVector, side: 'init' | 'resp'): HandshakeOptions {
  const field = (name: 'prologue' | 'static' | 'ephemeral' | 'remote_static' | 'hybrid_ephemeral') => vector[`${side}_${name}`];
  const key = (name: 'static' | 'ephemeral') => {
    const hex = field(name);
    return hex === undefined ? undefined : x25519StaticKey(fromHex(hex, `${side}_${name}`));
  };
  const remote = field('remote_static');
  const hybrid = field('hybrid_ephemeral');
  return {
    protocolName: vector.protocol_name,
    initiator: side === 'init',
    prologue: fromHex(field('prologue'), `${side}_prologue`),
    s: key('static'),
    e: key('ephemeral'),
    rs: remote === undefined ? undefined : fromHex(remote, `${side}_remote_static`),
    psks: (vector[`${side}_psks`] ?? []).map((psk, i) => fromHex(psk, `${side}_psks[${i}]`)),
    ...(hybrid === undefined ? {} : { kemEphemeral: fromHex(hybrid, `${side}_hybrid_ephemeral`) }),
  };
}

function expectHex(actual: Uint8Array, expected: string, what: string): void {
  if (toHex(actual) !== expected.toLowerCase()) throw new Error(`${what}: expected ${expected}, got ${toHex(actual)}`);
}

class VectorStepError extends Error {}

/**
 * Runs every message of one vector through an initiator and a responder and returns what they
 * produced. With `compare`, each output must equal the vector's (a vector being made has none yet).
 */
function play(vector: NoiseVector, oneWay: boolean, compare: boolean): { ciphertexts: string[]; handshakeHash: string } {
  const check = (actual: Uint8Array, expected: string, what: string) => {
    if (compare) expectHex(actual, expected, what);
  };
  let step = 'setup';
  try {
    const initiator = new HandshakeState(sideOptions(vector, 'init'));
    const responder = new HandshakeState(sideOptions(vector, 'resp'));
    let transport: { initiator: TransportCiphers; responder: TransportCiphers } | undefined;
    let handshakeHash = '';
    const ciphertexts: string[] = [];
    for (const [i, message] of vector.messages.entries()) {
      step = `message ${i + 1}`;
      const payload = fromHex(message.payload, 'payload');
      const initiatorSends = oneWay || i % 2 === 0;
      let ciphertext: Uint8Array;
      if (transport === undefined) {
        const [sender, receiver] = initiatorSends ? [initiator, responder] : [responder, initiator];
        ciphertext = sender.writeMessage(payload);
        check(ciphertext, message.ciphertext, 'ciphertext');
        expectHex(receiver.readMessage(compare ? fromHex(message.ciphertext, 'ciphertext') : ciphertext), message.payload, 'decrypted payload');
        if (initiator.isComplete && responder.isComplete) {
          expectHex(responder.handshakeHash, toHex(initiator.handshakeHash), 'responder handshake hash');
          handshakeHash = toHex(initiator.handshakeHash);
          transport = { initiator: initiator.split(), responder: responder.split() };
        }
      } else {
        const [sender, receiver] = initiatorSends ? [transport.initiator, transport.responder] : [transport.responder, transport.initiator];
        const empty = new Uint8Array(0);
        ciphertext = sender.send.encryptWithAd(empty, payload);
        check(ciphertext, message.ciphertext, 'transport ciphertext');
        expectHex(
          receiver.receive.decryptWithAd(empty, compare ? fromHex(message.ciphertext, 'ciphertext') : ciphertext),
          message.payload,
          'transport payload',
        );
      }
      ciphertexts.push(toHex(ciphertext));
    }
    if (transport === undefined) throw new Error('the vector ends before the handshake completes');
    return { ciphertexts, handshakeHash };
  } catch (error) {
    throw new VectorStepError(`${step}: ${(error as Error).message}`);
  }
}

/** Runs every message of one vector through an initiator and a responder. */
export function runVector(vector: NoiseVector): VectorOutcome {
  const name = vector.protocol_name;
  let oneWay: boolean;
  try {
    oneWay = parseProtocolName(name).pattern.oneWay;
  } catch (error) {
    if (error instanceof NoiseUnsupportedError) return { name, status: 'skipped', reason: error.message };
    return { name, status: 'failed', reason: (error as Error).message };
  }
  try {
    const { handshakeHash } = play(vector, oneWay, true);
    if (vector.handshake_hash !== undefined) expectHex(fromHex(handshakeHash, 'handshake hash'), vector.handshake_hash, 'handshake hash');
    return { name, status: 'passed', messagesChecked: vector.messages.length, handshakeHashChecked: vector.handshake_hash !== undefined };
  } catch (error) {
    return { name, status: 'failed', reason: (error as Error).message };
  }
}

/**
 * Makes a vector: the inputs and payloads of `vector` (its ciphertexts are ignored) run through
 * this implementation, the ciphertexts and handshake hash filled in from what it produced.
 */
export function completeVector(vector: NoiseVector): NoiseVector {
  const { ciphertexts, handshakeHash } = play(vector, parseProtocolName(vector.protocol_name).pattern.oneWay, false);
  return {
    ...vector,
    handshake_hash: handshakeHash,
    messages: vector.messages.map((message, i) => ({ payload: message.payload, ciphertext: ciphertexts[i]! })),
  };
}

export function summarize(outcomes: readonly VectorOutcome[]): VectorSummary {
  const count = (status: VectorOutcome['status']) => outcomes.filter((o) => o.status === status).length;
  return { passed: count('passed'), failed: count('failed'), skipped: count('skipped') };
}
