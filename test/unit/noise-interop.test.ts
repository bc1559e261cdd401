/**
 * Live interop with @chainsafe/libp2p-noise 17, an independent Noise implementation. Its package
 * exports only the libp2p connection encrypter, so the test loads its raw XX handshake state
 * (dist/src/protocol.js: XXHandshakeState, one method per XX message) by file URL and drives it
 * message by message against ours: no libp2p framing or identity payloads involved.
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { HandshakeState, type TransportCiphers } from '../../src/crypto/noise/index.js';
import { randomBytes, x25519GenerateKeyPair, type X25519KeyPair } from '../../src/crypto/primitives.js';

const PROTOCOL = 'Noise_XX_25519_ChaChaPoly_SHA256';
const LIBP2P_NOISE = new URL('../../node_modules/@chainsafe/libp2p-noise/dist/src/', import.meta.url);

// The parts of libp2p-noise's untyped internals this test uses.
type Bytes = Uint8Array | { subarray(): Uint8Array };
interface TheirCipherState {
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Bytes;
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Bytes;
}
interface TheirHandshake {
  ss: { h: Uint8Array; split(): [TheirCipherState, TheirCipherState] };
  rs?: Bytes;
  writeMessageA(payload: Uint8Array): Bytes;
  writeMessageB(payload: Uint8Array): Bytes;
  writeMessageC(payload: Uint8Array): Bytes;
  readMessageA(message: unknown): Bytes;
  readMessageB(message: unknown): Bytes;
  readMessageC(message: unknown): Bytes;
}

let makeTheirs: (initiator: boolean, s: X25519KeyPair, prologue: Uint8Array) => TheirHandshake;
let list: (bytes: Uint8Array) => unknown;

beforeAll(async () => {
  const load = (file: string) => import(pathToFileURL(fileURLToPath(new URL(file, LIBP2P_NOISE))).href);
  const { XXHandshakeState } = await load('protocol.js');
  const { wrapCrypto } = await load('crypto.js');
  const { defaultCrypto } = await load('crypto/index.js');
  const { Uint8ArrayList } = await import(pathToFileURL(fileURLToPath(new URL('../../node_modules/uint8arraylist/dist/src/index.js', import.meta.url))).href);
  const crypto = wrapCrypto(defaultCrypto);
  makeTheirs = (initiator, s, prologue) => new XXHandshakeState({ crypto, protocolName: PROTOCOL, initiator, prologue, s });
  list = (bytes) => new Uint8ArrayList(bytes);
});

// Plain Uint8Array copies: their side returns Buffers and Uint8ArrayLists.
const bytes = (b: Bytes): Uint8Array => new Uint8Array(b instanceof Uint8Array ? b : b.subarray());
const text = (s: string) => new TextEncoder().encode(s);
const EMPTY = new Uint8Array(0);

interface Pair {
  ours: TransportCiphers;
  theirs: { send: TheirCipherState; receive: TheirCipherState };
}

/** Runs XX with our side as initiator or responder; checks payloads, static keys and handshake hashes. */
function handshake(oursInitiates: boolean, prologue: Uint8Array): Pair {
  const ourStatic = x25519GenerateKeyPair();
  const theirStatic = x25519GenerateKeyPair();
  const ours = new HandshakeState({ protocolName: PROTOCOL, initiator: oursInitiates, prologue, s: ourStatic });
  const theirs = makeTheirs(!oursInitiates, theirStatic, prologue);
  const payloads = [text('hello from message A'), text('message B payload'), text('message C payload')];

  if (oursInitiates) {
    expect(bytes(theirs.readMessageA(list(ours.writeMessage(payloads[0]!))))).toEqual(payloads[0]);
    expect(ours.readMessage(bytes(theirs.writeMessageB(payloads[1]!)))).toEqual(payloads[1]);
    expect(bytes(theirs.readMessageC(list(ours.writeMessage(payloads[2]!))))).toEqual(payloads[2]);
  } else {
    expect(ours.readMessage(bytes(theirs.writeMessageA(payloads[0]!)))).toEqual(payloads[0]);
    expect(bytes(theirs.readMessageB(list(ours.writeMessage(payloads[1]!))))).toEqual(payloads[1]);
    expect(ours.readMessage(bytes(theirs.writeMessageC(payloads[2]!)))).toEqual(payloads[2]);
  }
  expect(ours.isComplete).toBe(true);
  expect(ours.handshakeHash).toEqual(bytes(theirs.ss.h));
  expect(ours.remoteStaticKey).toEqual(theirStatic.publicKey);
  expect(bytes(theirs.rs ?? EMPTY)).toEqual(ourStatic.publicKey);

  const [initiatorToResponder, responderToInitiator] = theirs.ss.split();
  const theirCiphers = oursInitiates
    ? { send: responderToInitiator, receive: initiatorToResponder }
    : { send: initiatorToResponder, receive: responderToInitiator };
  return { ours: ours.split(), theirs: theirCiphers };
}

// Byte equality without vitest's element-by-element diff, which is slow for 64 KiB arrays.
function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  expect(Buffer.compare(actual, expected), `${what}: ${actual.length} bytes vs ${expected.length}`).toBe(0);
}

/** Several transport messages each way, small (their AssemblyScript path) and large (their node:crypto path). */
function exchange({ ours, theirs }: Pair): void {
  for (const size of [0, 1, 100, 1199, 1200, 16 * 1024, 65535 - 16]) {
    const toThem = randomBytes(size);
    expectSameBytes(bytes(theirs.receive.decryptWithAd(EMPTY, ours.send.encryptWithAd(EMPTY, toThem))), toThem, `${size} bytes to them`);
    const toUs = randomBytes(size);
    expectSameBytes(ours.receive.decryptWithAd(EMPTY, bytes(theirs.send.encryptWithAd(EMPTY, toUs))), toUs, `${size} bytes to us`);
  }
  // Two in a row from one side: nonces advance independently per direction.
  const first = ours.send.encryptWithAd(EMPTY, text('one'));
  const second = ours.send.encryptWithAd(EMPTY, text('two'));
  expect(bytes(theirs.receive.decryptWithAd(EMPTY, first))).toEqual(text('one'));
  expect(bytes(theirs.receive.decryptWithAd(EMPTY, second))).toEqual(text('two'));
  expect(ours.send.nonce).toBe(9n);
  expect(ours.receive.nonce).toBe(7n);
}

describe('Noise XX interop with @chainsafe/libp2p-noise 17', () => {
  for (const [label, prologue] of [
    ['empty prologue', EMPTY],
    ['a prologue', text('blackpony XPONY 1')],
  ] as const) {
    it(`our initiator against their responder (${label})`, () => {
      exchange(handshake(true, prologue));
    });

    it(`their initiator against our responder (${label})`, () => {
      exchange(handshake(false, prologue));
    });
  }

  it('a prologue mismatch with their side fails our read of message B', () => {
    const ours = new HandshakeState({ protocolName: PROTOCOL, initiator: true, prologue: text('ours'), s: x25519GenerateKeyPair() });
    const theirs = makeTheirs(false, x25519GenerateKeyPair(), text('theirs'));
    theirs.readMessageA(list(ours.writeMessage(EMPTY)));
    expect(() => ours.readMessage(bytes(theirs.writeMessageB(EMPTY)))).toThrow(/authentication/);
  });
});
