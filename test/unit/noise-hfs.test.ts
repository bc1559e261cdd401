/**
 * The Noise HFS modifier with ML-KEM-768 (src/crypto/noise/kem.ts): token placement per the HFS
 * spec's rule, the project's vectors (test/vectors/noise-hfs.txt, made by scripts/hfs-vectors.ts)
 * replayed byte for byte, the message layout checked against noble's ML-KEM directly, tampering
 * refused, and native ML-KEM against noble by running the handshake both ways (under Node 24:
 * test/unit/node24-crypto.test.ts runs this file there, where that group must not skip).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { describe, expect, it } from 'vitest';
import { loadNativeMlKem768 } from '../../src/crypto/age/mlkem-native.js';
import { nobleMlKem768 } from '../harness/noble-mlkem.js';
import type { MlKem768 } from '../../src/crypto/age/mlkem.js';
import {
  HandshakeState,
  handshakePattern,
  NoiseAuthenticationError,
  NoiseMessageSizeError,
  NoiseProtocolNameError,
  NoiseStateError,
  NoiseUnsupportedError,
  parseProtocolName,
} from '../../src/crypto/noise/index.js';
import { parseVectorFile, runVector, type NoiseVector } from '../../scripts/noise-vectors.js';
import { x25519GenerateKeyPair } from '../../src/crypto/primitives.js';

const XXHFS = 'Noise_XXhfs_25519+MLKEM768_ChaChaPoly_SHA256';
const VECTORS = parseVectorFile(readFileSync(fileURLToPath(new URL('../vectors/noise-hfs.txt', import.meta.url)), 'utf8'));
const hex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'));
const EMPTY = new Uint8Array(0);

function pair(options: { initiatorKem?: MlKem768; responderKem?: MlKem768 } = {}) {
  const initiator = new HandshakeState({ protocolName: XXHFS, initiator: true, s: x25519GenerateKeyPair(), kemImplementation: options.initiatorKem });
  const responder = new HandshakeState({ protocolName: XXHFS, initiator: false, s: x25519GenerateKeyPair(), kemImplementation: options.responderKem });
  return { initiator, responder };
}

/** A whole XXhfs handshake, then one transport message each way. */
function handshake(options: { initiatorKem?: MlKem768; responderKem?: MlKem768 } = {}) {
  const { initiator, responder } = pair(options);
  responder.readMessage(initiator.writeMessage(EMPTY));
  initiator.readMessage(responder.writeMessage(EMPTY));
  responder.readMessage(initiator.writeMessage(EMPTY));
  const a = initiator.split();
  const b = responder.split();
  const text = new TextEncoder().encode('hybrid');
  expect(b.receive.decryptWithAd(EMPTY, a.send.encryptWithAd(EMPTY, text))).toEqual(text);
  expect(a.receive.decryptWithAd(EMPTY, b.send.encryptWithAd(EMPTY, text))).toEqual(text);
  expect(initiator.handshakeHash).toEqual(responder.handshakeHash);
}

describe('the hfs modifier', () => {
  it('places e1 and ekem1 as the HFS spec does', () => {
    const tokens = (name: string) => handshakePattern(name).messages.map((message) => message.join(', '));
    expect(tokens('XXhfs')).toEqual(['e, e1', 'e, ee, ekem1, s, es', 's, se']);
    expect(tokens('NNhfs')).toEqual(['e, e1', 'e, ee, ekem1']);
    // After the DH that follows e in the same message, so the KEM public key travels encrypted.
    expect(tokens('NKhfs')).toEqual(['e, es, e1', 'e, ee, ekem1']);
    expect(tokens('IKhfs')).toEqual(['e, es, e1, s, ss', 'e, ee, ekem1, se']);
    expect(tokens('IXhfs')).toEqual(['e, e1, s', 'e, ee, ekem1, se, s, es']);
  });

  it('needs the KEM in the protocol name, and refuses what the spec does not define', () => {
    expect(parseProtocolName(XXHFS)).toMatchObject({ kem: 'MLKEM768', hash: 'SHA256' });
    expect(parseProtocolName('Noise_XX_25519_ChaChaPoly_SHA256').kem).toBeUndefined();
    expect(() => parseProtocolName('Noise_XXhfs_25519_ChaChaPoly_SHA256')).toThrow(NoiseProtocolNameError);
    expect(() => parseProtocolName('Noise_XX_25519+MLKEM768_ChaChaPoly_SHA256')).toThrow(NoiseProtocolNameError);
    expect(() => parseProtocolName('Noise_XXhfs_25519+Kyber1024_ChaChaPoly_SHA256')).toThrow(/KEM "Kyber1024" is not supported/);
    expect(() => parseProtocolName('Noise_Xhfs_25519+MLKEM768_ChaChaPoly_SHA256')).toThrow(NoiseUnsupportedError);
    expect(() => parseProtocolName('Noise_XXhfs+psk3_25519+MLKEM768_ChaChaPoly_SHA256')).toThrow(/hfs together with psk/);
    expect(() => new HandshakeState({ protocolName: 'Noise_NN_25519_ChaChaPoly_SHA256', initiator: true, kemEphemeral: new Uint8Array(64) })).toThrow(
      NoiseStateError,
    );
  });
});

describe('Noise HFS vectors (test/vectors/noise-hfs.txt)', () => {
  it('replays every vector: each handshake and transport message and the handshake hash', () => {
    expect(VECTORS.length).toBeGreaterThanOrEqual(26);
    for (const vector of VECTORS) {
      expect(runVector(vector), vector.protocol_name).toMatchObject({ status: 'passed', handshakeHashChecked: true, messagesChecked: 6 });
    }
    const names = VECTORS.map((v) => v.protocol_name);
    for (const hash of ['SHA256', 'SHA512', 'BLAKE2s', 'BLAKE2b']) expect(names).toContain(`Noise_XXhfs_25519+MLKEM768_ChaChaPoly_${hash}`);
  });

  it('depends on both KEM inputs: other KEM randomness on either side fails the vector', () => {
    const vector = VECTORS.find((v) => v.protocol_name === XXHFS)!;
    const flip = (field: string) => field.replace(/^../, (byte) => (Number.parseInt(byte, 16) ^ 1).toString(16).padStart(2, '0'));
    const altered: NoiseVector[] = [
      { ...vector, init_hybrid_ephemeral: flip(vector.init_hybrid_ephemeral!) },
      { ...vector, resp_hybrid_ephemeral: flip(vector.resp_hybrid_ephemeral!) },
    ];
    for (const v of altered) expect(runVector(v)).toMatchObject({ status: 'failed' });
  });

  it('lays out XXhfs as specified: e and the clear ML-KEM key, then e, the encrypted ciphertext, s', () => {
    const vector = VECTORS.find((v) => v.protocol_name === XXHFS)!;
    const [message1, message2, message3] = vector.messages.map((m) => hex(m.ciphertext));
    const payload1 = hex(vector.messages[0]!.payload);
    // -> e, e1: 32 + 1184 octets in clear (no key yet), then the payload in clear.
    expect(message1!.length).toBe(32 + 1184 + payload1.length);
    const kemKey = ml_kem768.keygen(hex(vector.init_hybrid_ephemeral!));
    expect(message1!.subarray(32, 32 + 1184)).toEqual(kemKey.publicKey);
    expect(message1!.subarray(32 + 1184)).toEqual(payload1);
    // <- e, ee, ekem1, s, es: 32 + (1088 + 16) + (32 + 16) + payload + 16.
    expect(message2!.length).toBe(32 + 1104 + 48 + hex(vector.messages[1]!.payload).length + 16);
    // -> s, se: as in XX.
    expect(message3!.length).toBe(48 + hex(vector.messages[2]!.payload).length + 16);
  });
});

describe('XXhfs under attack', () => {
  it('a flipped octet of the encrypted KEM ciphertext fails authentication at the initiator', () => {
    const { initiator, responder } = pair();
    responder.readMessage(initiator.writeMessage(EMPTY));
    const message2 = responder.writeMessage(EMPTY);
    message2[32 + 500]! ^= 1;
    expect(() => initiator.readMessage(message2)).toThrow(NoiseAuthenticationError);
  });

  it('a substituted KEM public key in message 1 fails the handshake at message 2', () => {
    const { initiator, responder } = pair();
    const message1 = initiator.writeMessage(EMPTY);
    message1.set(ml_kem768.keygen().publicKey, 32);
    responder.readMessage(message1);
    expect(() => initiator.readMessage(responder.writeMessage(EMPTY))).toThrow(NoiseAuthenticationError);
  });

  it('a truncated message 1 or 2 is refused by size, before any KEM work on it', () => {
    const { initiator, responder } = pair();
    const message1 = initiator.writeMessage(EMPTY);
    expect(() => responder.readMessage(message1.subarray(0, 32 + 1183))).toThrow(/truncated: e1 needs 1184 bytes/);
    const again = pair();
    again.responder.readMessage(again.initiator.writeMessage(EMPTY));
    const message2 = again.responder.writeMessage(EMPTY);
    expect(() => again.initiator.readMessage(message2.subarray(0, 32 + 1000))).toThrow(NoiseMessageSizeError);
  });
});

const native = loadNativeMlKem768();
const NATIVE_REQUIRED = process.env.BLACKPONY_EXPECT_NATIVE_MLKEM === '1';
const nativeReason = `this Node (${process.version}) has no native ML-KEM; test/unit/node24-crypto.test.ts runs this under Node 24`;
const describeNative = native !== null || NATIVE_REQUIRED ? describe : describe.skip;

describeNative(
  native !== null || NATIVE_REQUIRED ? 'XXhfs with native ML-KEM against noble' : `XXhfs with native ML-KEM against noble (skipped: ${nativeReason})`,
  () => {
    const kem = () => {
      if (native === null) throw new Error(`native ML-KEM required (BLACKPONY_EXPECT_NATIVE_MLKEM=1) but ${nativeReason}`);
      return native;
    };

    it('completes with a native initiator and a noble responder, and the other way round', () => {
      handshake({ initiatorKem: kem(), responderKem: nobleMlKem768 });
      handshake({ initiatorKem: nobleMlKem768, responderKem: kem() });
      handshake({ initiatorKem: kem(), responderKem: kem() });
    });
  },
);

it('XXhfs completes with the ML-KEM this Node picked', () => {
  handshake();
});
