/**
 * SymmetricState (section 5.2): the chaining key ck, the handshake hash h, and the handshake's
 * CipherState. HKDF is the spec's own definition (section 4.3) over HMAC.
 */
import { hash, hmac, HASH_LENGTH, type HashName } from '../primitives.js';
import { CIPHER_KEY_LENGTH, type CipherFunction } from './cipher-functions.js';
import { CipherState } from './cipher-state.js';

const EMPTY = new Uint8Array(0);
const BYTE_1 = Uint8Array.of(1);
const BYTE_2 = Uint8Array.of(2);
const BYTE_3 = Uint8Array.of(3);

/** HKDF(chainingKey, inputKeyMaterial, 2): two HASHLEN outputs. */
function hkdf2(hashName: HashName, chainingKey: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array] {
  const tempKey = hmac(hashName, chainingKey, ikm);
  const output1 = hmac(hashName, tempKey, BYTE_1);
  const output2 = hmac(hashName, tempKey, output1, BYTE_2);
  return [output1, output2];
}

/** HKDF(chainingKey, inputKeyMaterial, 3): three HASHLEN outputs (for psk). */
function hkdf3(hashName: HashName, chainingKey: Uint8Array, ikm: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const tempKey = hmac(hashName, chainingKey, ikm);
  const output1 = hmac(hashName, tempKey, BYTE_1);
  const output2 = hmac(hashName, tempKey, output1, BYTE_2);
  const output3 = hmac(hashName, tempKey, output2, BYTE_3);
  return [output1, output2, output3];
}

/** With a 64-byte hash, HKDF outputs used as cipher keys are truncated to 32 bytes. */
function cipherKey(output: Uint8Array): Uint8Array {
  return output.subarray(0, CIPHER_KEY_LENGTH);
}

export class SymmetricState {
  readonly #hashName: HashName;
  readonly #cipher: CipherFunction;
  #chainingKey: Uint8Array;
  #h: Uint8Array;
  #cipherState: CipherState;

  /** InitializeSymmetric(protocol_name). */
  constructor(protocolName: string, hashName: HashName, cipher: CipherFunction) {
    this.#hashName = hashName;
    this.#cipher = cipher;
    const name = new TextEncoder().encode(protocolName);
    const hashLength = HASH_LENGTH[hashName];
    if (name.length <= hashLength) {
      this.#h = new Uint8Array(hashLength);
      this.#h.set(name);
    } else {
      this.#h = hash(hashName, name);
    }
    this.#chainingKey = this.#h;
    this.#cipherState = new CipherState(cipher);
  }

  get handshakeHash(): Uint8Array {
    return this.#h;
  }

  hasKey(): boolean {
    return this.#cipherState.hasKey();
  }

  mixKey(inputKeyMaterial: Uint8Array): void {
    const [chainingKey, tempKey] = hkdf2(this.#hashName, this.#chainingKey, inputKeyMaterial);
    this.#chainingKey = chainingKey;
    this.#cipherState = new CipherState(this.#cipher, cipherKey(tempKey));
  }

  mixHash(data: Uint8Array): void {
    this.#h = hash(this.#hashName, this.#h, data);
  }

  mixKeyAndHash(inputKeyMaterial: Uint8Array): void {
    const [chainingKey, tempHash, tempKey] = hkdf3(this.#hashName, this.#chainingKey, inputKeyMaterial);
    this.#chainingKey = chainingKey;
    this.mixHash(tempHash);
    this.#cipherState = new CipherState(this.#cipher, cipherKey(tempKey));
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.#cipherState.encryptWithAd(this.#h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.#cipherState.decryptWithAd(this.#h, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** Split(): the initiator-to-responder and responder-to-initiator cipher states. */
  split(): [CipherState, CipherState] {
    const [key1, key2] = hkdf2(this.#hashName, this.#chainingKey, EMPTY);
    return [new CipherState(this.#cipher, cipherKey(key1)), new CipherState(this.#cipher, cipherKey(key2))];
  }
}
