/**
 * The Noise implementation from the attacker's side: every altered, truncated, oversized, replayed
 * or misdirected input fails with a typed NoiseError, and a failed state refuses further use.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CipherState,
  HandshakeState,
  NoiseAuthenticationError,
  NoiseError,
  NoiseKeyError,
  NoiseMessageSizeError,
  NoiseNonceExhaustedError,
  NoiseProtocolNameError,
  NoiseStateError,
  NoiseUnsupportedError,
  parseProtocolName,
  type HandshakeOptions,
  type TransportCiphers,
} from '../../src/crypto/noise/index.js';
import { CHACHA_POLY } from '../../src/crypto/noise/cipher-functions.js';
import { aeadSeal, joinBytes, randomBytes, x25519, x25519GenerateKeyPair, type X25519KeyPair } from '../../src/crypto/primitives.js';

const XX = 'Noise_XX_25519_ChaChaPoly_SHA256';
const EMPTY = new Uint8Array(0);
const text = (s: string) => new TextEncoder().encode(s);

function flipBit(message: Uint8Array, index: number): Uint8Array {
  const copy = Uint8Array.from(message);
  copy[index] = (copy[index] ?? 0) ^ 1;
  return copy;
}

interface Peers {
  initiator: HandshakeState;
  responder: HandshakeState;
  initiatorStatic: X25519KeyPair;
  responderStatic: X25519KeyPair;
}

/** Initiator and responder for a pattern, with static keys and pre-message keys as it needs them. */
function peers(pattern: string, overrides: { initiator?: Partial<HandshakeOptions>; responder?: Partial<HandshakeOptions> } = {}): Peers {
  const protocolName = `Noise_${pattern}_25519_ChaChaPoly_SHA256`;
  const { pattern: p } = parseProtocolName(protocolName);
  const initiatorStatic = x25519GenerateKeyPair();
  const responderStatic = x25519GenerateKeyPair();
  const usesStatic = (pre: readonly string[], even: boolean) => pre.includes('s') || p.messages.some((t, i) => (i % 2 === 0) === even && t.includes('s'));
  const initiator = new HandshakeState({
    protocolName,
    initiator: true,
    s: usesStatic(p.initiatorPreMessage, true) ? initiatorStatic : undefined,
    rs: p.responderPreMessage.includes('s') ? responderStatic.publicKey : undefined,
    ...overrides.initiator,
  });
  const responder = new HandshakeState({
    protocolName,
    initiator: false,
    s: usesStatic(p.responderPreMessage, false) ? responderStatic : undefined,
    rs: p.initiatorPreMessage.includes('s') ? initiatorStatic.publicKey : undefined,
    ...overrides.responder,
  });
  return { initiator, responder, initiatorStatic, responderStatic };
}

/** Runs the whole handshake and returns each side's transport ciphers. */
function complete({ initiator, responder }: Peers): { initiator: TransportCiphers; responder: TransportCiphers } {
  let [sender, receiver] = [initiator, responder];
  while (!initiator.isComplete) {
    receiver.readMessage(sender.writeMessage(text('payload')));
    [sender, receiver] = [receiver, sender];
  }
  return { initiator: initiator.split(), responder: responder.split() };
}

function expectThrows(action: () => unknown, type: new (...args: never[]) => NoiseError, message?: RegExp): void {
  let thrown: unknown;
  try {
    action();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(type);
  if (message !== undefined) expect((thrown as Error).message).toMatch(message);
}

describe('Noise handshake under attack', () => {
  it('every single-bit flip anywhere in XX message 2 (e, encrypted s, payload) fails authentication', () => {
    for (let index = 0; index < 32 + 48 + 17 + 16; index++) {
      const { initiator, responder } = peers('XX');
      responder.readMessage(initiator.writeMessage(EMPTY));
      const message2 = responder.writeMessage(text('responder payload'));
      expect(message2).toHaveLength(32 + 48 + 17 + 16);
      expectThrows(() => initiator.readMessage(flipBit(message2, index)), NoiseAuthenticationError);
    }
  });

  it('a flipped bit in the unauthenticated message 1 is caught by the next message', () => {
    const { initiator, responder } = peers('XX');
    const message1 = initiator.writeMessage(text('hi'));
    responder.readMessage(flipBit(message1, message1.length - 1));
    expectThrows(() => initiator.readMessage(responder.writeMessage(EMPTY)), NoiseAuthenticationError);
  });

  it('a flipped bit in message 3 fails, and the failed state refuses the genuine message afterwards', () => {
    const { initiator, responder } = peers('XX');
    responder.readMessage(initiator.writeMessage(EMPTY));
    initiator.readMessage(responder.writeMessage(EMPTY));
    const message3 = initiator.writeMessage(text('last'));
    expectThrows(() => responder.readMessage(flipBit(message3, 5)), NoiseAuthenticationError);
    expectThrows(() => responder.readMessage(message3), NoiseStateError, /unusable after an earlier failure/);
    expect(responder.isComplete).toBe(false);
    expectThrows(() => responder.split(), NoiseStateError);
  });

  it('truncated handshake messages are rejected with a size error', () => {
    // XX message 2 with an empty payload: e (32) + encrypted s (48) + payload tag (16) = 96 bytes.
    for (const length of [0, 31, 32, 79, 80, 95]) {
      const fresh = peers('XX');
      fresh.responder.readMessage(fresh.initiator.writeMessage(EMPTY));
      const m2 = fresh.responder.writeMessage(EMPTY);
      expectThrows(() => fresh.initiator.readMessage(m2.subarray(0, length)), NoiseMessageSizeError, /truncated/);
    }
    expectThrows(() => peers('XX').responder.readMessage(new Uint8Array(31)), NoiseMessageSizeError, /truncated: e needs 32 bytes/);
  });

  it('messages over 65535 bytes are refused on write (state untouched) and on read', () => {
    const { initiator, responder } = peers('XX');
    // Message 1 of XX is e (32 bytes) + plaintext payload.
    expectThrows(() => initiator.writeMessage(new Uint8Array(65535 - 32 + 1)), NoiseMessageSizeError, /65536 bytes, over the 65535-byte limit/);
    const largest = initiator.writeMessage(new Uint8Array(65535 - 32));
    expect(largest).toHaveLength(65535);
    responder.readMessage(largest);
    // Message 2 carries e, encrypted s and an encrypted payload: 96 bytes of overhead.
    expectThrows(() => responder.writeMessage(new Uint8Array(65535 - 96 + 1)), NoiseMessageSizeError);
    expect(responder.writeMessage(new Uint8Array(65535 - 96))).toHaveLength(65535);
    expectThrows(() => peers('XX').responder.readMessage(new Uint8Array(65536)), NoiseMessageSizeError, /exceeds the 65535-byte limit/);
  });

  it('a different prologue on one side fails at the first authenticated message', () => {
    for (const pattern of ['NN', 'XX', 'IK']) {
      const pair = peers(pattern, { responder: { prologue: text('other prologue') }, initiator: { prologue: text('prologue') } });
      const message1 = pair.initiator.writeMessage(EMPTY);
      if (pattern === 'IK') {
        expectThrows(() => pair.responder.readMessage(message1), NoiseAuthenticationError);
      } else {
        pair.responder.readMessage(message1);
        expectThrows(() => pair.initiator.readMessage(pair.responder.writeMessage(EMPTY)), NoiseAuthenticationError);
      }
    }
  });

  it('a wrong expected remote static key fails in IK, XK, NK and KK', () => {
    for (const pattern of ['IK', 'XK', 'NK', 'KK']) {
      const impostor = x25519GenerateKeyPair().publicKey;
      const pair = peers(pattern, { initiator: { rs: impostor } });
      expectThrows(() => pair.responder.readMessage(pair.initiator.writeMessage(text('secret'))), NoiseAuthenticationError);
    }
    // KK: the responder expects another initiator.
    const pair = peers('KK', { responder: { rs: x25519GenerateKeyPair().publicKey } });
    expectThrows(() => pair.responder.readMessage(pair.initiator.writeMessage(EMPTY)), NoiseAuthenticationError);
  });

  it('XX reports the peer static key it authenticated', () => {
    const pair = peers('XX');
    complete(pair);
    expect(pair.initiator.remoteStaticKey).toEqual(pair.responderStatic.publicKey);
    expect(pair.responder.remoteStaticKey).toEqual(pair.initiatorStatic.publicKey);
    expect(pair.initiator.handshakeHash).toEqual(pair.responder.handshakeHash);
  });

  it("exposes the peer's ephemeral and agreements with this side's own ephemeral, once they exist", () => {
    const pair = peers('XX');
    const other = x25519GenerateKeyPair();
    expect(pair.responder.remoteEphemeralKey).toBeUndefined();
    expectThrows(() => pair.initiator.localEphemeralAgreement(other.publicKey), NoiseStateError, /no local ephemeral/);
    pair.responder.readMessage(pair.initiator.writeMessage(EMPTY));
    const initiatorEphemeral = pair.responder.remoteEphemeralKey!;
    expect(initiatorEphemeral).toHaveLength(32);
    // Only the holder of other's private key (or of the ephemeral) can compute the same secret.
    expect(pair.initiator.localEphemeralAgreement(other.publicKey)).toEqual(x25519(other.privateKey, initiatorEphemeral));
    expectThrows(() => pair.initiator.localEphemeralAgreement(new Uint8Array(32)), NoiseKeyError, /low order|all-zero/);
    expectThrows(() => pair.initiator.localEphemeralAgreement(new Uint8Array(31)), NoiseKeyError, /expected 32 bytes/);
  });

  it('a low-order ephemeral key is refused with a key error', () => {
    const { responder } = peers('IK');
    expectThrows(() => responder.readMessage(new Uint8Array(32 + 48 + 16)), NoiseKeyError, /low order|all-zero/);
    const xx = peers('XX');
    xx.responder.readMessage(new Uint8Array(32));
    expectThrows(() => xx.responder.writeMessage(EMPTY), NoiseKeyError);
  });

  it('random garbage never yields anything but a NoiseError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom('XX', 'IK', 'NK'), (garbage, pattern) => {
        const pair = peers(pattern);
        if (pattern === 'XX') {
          pair.responder.readMessage(pair.initiator.writeMessage(EMPTY));
          pair.responder.writeMessage(EMPTY);
          expect(() => pair.initiator.readMessage(garbage)).toThrow(NoiseError);
        } else {
          expect(() => pair.responder.readMessage(garbage)).toThrow(NoiseError);
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe('Noise handshake API misuse', () => {
  it('refuses to write or read out of turn, after completion, and split before or twice', () => {
    const pair = peers('XX');
    expectThrows(() => pair.responder.writeMessage(EMPTY), NoiseStateError, /peer's turn/);
    expectThrows(() => pair.initiator.readMessage(new Uint8Array(32)), NoiseStateError, /local side's turn/);
    expectThrows(() => pair.initiator.split(), NoiseStateError, /before the handshake completed/);
    complete(pair);
    expectThrows(() => pair.initiator.writeMessage(EMPTY), NoiseStateError, /already complete/);
    expectThrows(() => pair.responder.readMessage(new Uint8Array(64)), NoiseStateError, /already complete/);
    expectThrows(() => pair.initiator.split(), NoiseStateError, /split called twice/);
  });

  it('refuses missing, superfluous and malformed keys', () => {
    expectThrows(() => new HandshakeState({ protocolName: XX, initiator: true }), NoiseKeyError, /needs a local static key/);
    expectThrows(() => new HandshakeState({ protocolName: 'Noise_NN_25519_ChaChaPoly_SHA256', initiator: true, s: x25519GenerateKeyPair() }), NoiseStateError);
    expectThrows(
      () => new HandshakeState({ protocolName: XX, initiator: true, s: x25519GenerateKeyPair(), rs: x25519GenerateKeyPair().publicKey }),
      NoiseStateError,
      /transmits the remote static key/,
    );
    expectThrows(
      () => new HandshakeState({ protocolName: 'Noise_IK_25519_ChaChaPoly_SHA256', initiator: true, s: x25519GenerateKeyPair() }),
      NoiseKeyError,
      /rs/,
    );
    expectThrows(
      () => new HandshakeState({ protocolName: 'Noise_NK_25519_ChaChaPoly_SHA256', initiator: true, rs: new Uint8Array(31) }),
      NoiseKeyError,
      /expected 32 bytes, got 31/,
    );
    const mismatched = { privateKey: x25519GenerateKeyPair().privateKey, publicKey: x25519GenerateKeyPair().publicKey };
    expectThrows(() => new HandshakeState({ protocolName: XX, initiator: true, s: mismatched }), NoiseKeyError, /does not belong/);
    expectThrows(
      () => new HandshakeState({ protocolName: 'Noise_XXpsk3_25519_ChaChaPoly_SHA256', initiator: true, s: x25519GenerateKeyPair() }),
      NoiseKeyError,
      /1 pre-shared keys, 0 given/,
    );
  });

  it('parses protocol names and tells malformed from unsupported', () => {
    const parsed = parseProtocolName('Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b');
    expect(parsed.hash).toBe('BLAKE2b');
    expect(parsed.pattern.messages).toEqual([['e'], ['e', 'ee', 's', 'es'], ['s', 'se', 'psk']]);
    expect(parseProtocolName('Noise_NNpsk0+psk2_25519_ChaChaPoly_SHA256').pattern.messages).toEqual([
      ['psk', 'e'],
      ['e', 'ee', 'psk'],
    ]);
    for (const name of [
      '',
      'Noise_XX_25519_ChaChaPoly',
      'Nois_XX_25519_ChaChaPoly_SHA256',
      'Noise__25519_ChaChaPoly_SHA256',
      'Noise_xx_25519_ChaChaPoly_SHA256',
      'Noise_XXpsk9_25519_ChaChaPoly_SHA256',
    ]) {
      expectThrows(() => parseProtocolName(name), NoiseProtocolNameError);
    }
    for (const name of [
      'Noise_XX_448_ChaChaPoly_SHA256',
      'Noise_XX_25519_AESGCM_SHA256',
      'Noise_XX_25519_ChaChaPoly_SHA3',
      'Noise_XXfallback_25519_ChaChaPoly_SHA256',
      'Noise_ZZ_25519_ChaChaPoly_SHA256',
    ]) {
      expectThrows(() => parseProtocolName(name), NoiseUnsupportedError);
    }
  });
});

describe('Noise transport under attack', () => {
  it('a bit flip anywhere in a transport frame fails, and the receiving state is then unusable', () => {
    const frame = randomBytes(64);
    for (const index of [0, 31, 63, 64, 79]) {
      const { initiator, responder } = complete(peers('XX'));
      const sealed = initiator.send.encryptWithAd(EMPTY, frame);
      expectThrows(() => responder.receive.decryptWithAd(EMPTY, flipBit(sealed, index)), NoiseAuthenticationError);
      expectThrows(() => responder.receive.decryptWithAd(EMPTY, sealed), NoiseStateError, /tear the session down/);
    }
  });

  it('replayed and reordered frames fail authentication (the nonce is implicit)', () => {
    const replay = complete(peers('XX'));
    const first = replay.initiator.send.encryptWithAd(EMPTY, text('first'));
    expect(replay.responder.receive.decryptWithAd(EMPTY, first)).toEqual(text('first'));
    expectThrows(() => replay.responder.receive.decryptWithAd(EMPTY, first), NoiseAuthenticationError);

    const reorder = complete(peers('IK'));
    reorder.responder.send.encryptWithAd(EMPTY, text('one'));
    const two = reorder.responder.send.encryptWithAd(EMPTY, text('two'));
    expectThrows(() => reorder.initiator.receive.decryptWithAd(EMPTY, two), NoiseAuthenticationError);
  });

  it('a frame sent back to its own sender fails (each direction has its own key)', () => {
    const { initiator } = complete(peers('XX'));
    expectThrows(() => initiator.receive.decryptWithAd(EMPTY, initiator.send.encryptWithAd(EMPTY, text('echo'))), NoiseAuthenticationError);
  });

  it('truncated and oversized transport frames are rejected', () => {
    const { initiator, responder } = complete(peers('XX'));
    expectThrows(() => initiator.send.encryptWithAd(EMPTY, new Uint8Array(65535 - 16 + 1)), NoiseMessageSizeError);
    const largest = initiator.send.encryptWithAd(EMPTY, new Uint8Array(65535 - 16));
    expect(largest).toHaveLength(65535);
    expect(responder.receive.decryptWithAd(EMPTY, largest)).toHaveLength(65519);
    expectThrows(() => responder.receive.decryptWithAd(EMPTY, new Uint8Array(65536)), NoiseMessageSizeError);

    const short = complete(peers('XX'));
    expectThrows(() => short.responder.receive.decryptWithAd(EMPTY, new Uint8Array(15)), NoiseMessageSizeError, /shorter than its 16-byte tag/);
    const cut = complete(peers('XX'));
    const sealed = cut.initiator.send.encryptWithAd(EMPTY, text('a sentence cut short'));
    expectThrows(() => cut.responder.receive.decryptWithAd(EMPTY, sealed.subarray(0, sealed.length - 1)), NoiseAuthenticationError);
  });

  it('a message in pieces opens wherever it was cut, the tag included, and fails as the whole does', () => {
    const { initiator, responder } = complete(peers('XX'));
    const sealed = joinBytes(initiator.send.encryptPartsWithAd(EMPTY, [text('split '), text('across '), text('pieces')]));
    const cuts = [1, 5, sealed.length - 16, sealed.length - 15, sealed.length - 8, sealed.length - 1];
    const pieces = [0, ...cuts, sealed.length].slice(1).map((end, i, ends) => sealed.subarray(i === 0 ? 0 : ends[i - 1], end));
    expect(Buffer.concat(responder.receive.decryptPartsWithAd(EMPTY, pieces))).toEqual(Buffer.from('split across pieces'));

    const cut = complete(peers('XX'));
    const again = joinBytes(cut.initiator.send.encryptPartsWithAd(EMPTY, [text('tampered tag')]));
    const tampered = [again.subarray(0, again.length - 3), flipBit(again, again.length - 2).subarray(again.length - 3)];
    expectThrows(() => cut.responder.receive.decryptPartsWithAd(EMPTY, tampered), NoiseAuthenticationError);
    expectThrows(() => cut.responder.receive.decryptPartsWithAd(EMPTY, [again]), NoiseStateError, /tear the session down/);
    expectThrows(() => cut.initiator.send.encryptPartsWithAd(EMPTY, [new Uint8Array(40000), new Uint8Array(25520)]), NoiseMessageSizeError);
  });

  it('nonce 2^64-1 is never used: the state is exhausted after 2^64-2', () => {
    const { initiator, responder } = complete(peers('XX'));
    initiator.send.setNonce(2n ** 64n - 2n);
    responder.receive.setNonce(2n ** 64n - 2n);
    expect(responder.receive.decryptWithAd(EMPTY, initiator.send.encryptWithAd(EMPTY, text('last')))).toEqual(text('last'));
    expect(initiator.send.nonce).toBe(2n ** 64n - 1n);
    expectThrows(() => initiator.send.encryptWithAd(EMPTY, text('one too many')), NoiseNonceExhaustedError);
    expectThrows(() => responder.receive.decryptWithAd(EMPTY, new Uint8Array(16)), NoiseNonceExhaustedError);
    // The 32-bit halves carry over: 2^32-1 -> 2^32.
    const carry = complete(peers('XX'));
    carry.initiator.send.setNonce(2n ** 32n - 1n);
    carry.responder.receive.setNonce(2n ** 32n - 1n);
    for (let i = 0; i < 2; i++) carry.responder.receive.decryptWithAd(EMPTY, carry.initiator.send.encryptWithAd(EMPTY, text('carry')));
    expect(carry.responder.receive.nonce).toBe(2n ** 32n + 1n);
  });

  it('rekey on both sides keeps working; on one side only, decryption fails', () => {
    const { initiator, responder } = complete(peers('XX'));
    initiator.send.rekey();
    responder.receive.rekey();
    expect(responder.receive.decryptWithAd(EMPTY, initiator.send.encryptWithAd(EMPTY, text('after rekey')))).toEqual(text('after rekey'));
    initiator.send.rekey();
    expectThrows(() => responder.receive.decryptWithAd(EMPTY, initiator.send.encryptWithAd(EMPTY, text('one-sided'))), NoiseAuthenticationError);
  });

  it('rekey is REKEY(k) = ENCRYPT(k, 2^64-1, empty, 32 zero bytes) truncated to 32 bytes, nonce kept', () => {
    const key = randomBytes(32);
    const maxNonce = Uint8Array.from([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    const expectedKey = aeadSeal(key, maxNonce, new Uint8Array(32)).subarray(0, 32);
    const rekeyed = new CipherState(CHACHA_POLY, key);
    rekeyed.setNonce(7n);
    rekeyed.rekey();
    expect(rekeyed.nonce).toBe(7n);
    const reference = new CipherState(CHACHA_POLY, expectedKey);
    reference.setNonce(7n);
    expect(reference.decryptWithAd(text('ad'), rekeyed.encryptWithAd(text('ad'), text('payload')))).toEqual(text('payload'));
  });

  it('one-way patterns: the initiator sends, the responder receives', () => {
    for (const pattern of ['N', 'K', 'X']) {
      const { initiator, responder } = complete(peers(pattern));
      expect(responder.receive.decryptWithAd(EMPTY, initiator.send.encryptWithAd(EMPTY, text(pattern)))).toEqual(text(pattern));
    }
  });
});
