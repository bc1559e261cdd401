/**
 * HandshakeState (section 5.3): runs any pattern from the table, message by message, for one side.
 * Any failure while reading (or writing) makes the state unusable: a handshake is never retried
 * with a different message.
 */
import { CIPHER_TAG_LENGTH } from './cipher-functions.js';
import { CipherState, MAX_MESSAGE_LENGTH } from './cipher-state.js';
import { checkPublicKey, dh, DH_LENGTH, generateDhKey, prepareDhKey, type DhKey, type DhKeyInput } from './dh.js';
import { NoiseError, NoiseKeyError, NoiseMessageSizeError, NoiseStateError } from './errors.js';
import { KEM_CIPHERTEXT_LENGTH, KEM_PUBLIC_KEY_LENGTH, mlkem768KemFunction, type KemFunction, type KemKeyPair } from './kem.js';
import type { MlKem768 } from '../age/index.js';
import type { Token } from './patterns.js';
import { parseProtocolName, type NoiseProtocol } from './protocol-name.js';
import { SymmetricState } from './symmetric-state.js';

const PSK_LENGTH = 32;

export interface HandshakeOptions {
  /** e.g. "Noise_XX_25519_ChaChaPoly_SHA256". */
  protocolName: string;
  initiator: boolean;
  prologue?: Uint8Array;
  /** Local static key: raw pair, or a prepared key (reuse one across handshakes to skip the import). */
  s?: DhKeyInput;
  /** Fixed local ephemeral key, for test vectors only; otherwise a fresh one is generated. */
  e?: DhKeyInput;
  /** Remote static public key, only for patterns where it is known in advance (a pre-message). */
  rs?: Uint8Array;
  /** Pre-shared keys (32 bytes each), in the order the pattern's psk tokens use them. */
  psks?: readonly Uint8Array[];
  /**
   * Fixed KEM randomness of an hfs pattern, for test vectors only: for the side that sends e1 the
   * 64-byte ML-KEM seed of its KEM key pair, for the side that sends ekem1 the 32-byte
   * encapsulation message m (then noble's ML-KEM encapsulates: node:crypto takes no randomness).
   */
  kemEphemeral?: Uint8Array;
  /** The ML-KEM-768 behind the hfs tokens (default: the one mlkem.ts picked); tests cross-check both. */
  kemImplementation?: MlKem768;
}

/**
 * The transport cipher states, oriented for this side. After a one-way pattern (N, K, X) only the
 * initiator's send and the responder's receive carry messages (section 7.4).
 */
export interface TransportCiphers {
  send: CipherState;
  receive: CipherState;
}

export class HandshakeState {
  readonly protocol: NoiseProtocol;
  readonly initiator: boolean;
  readonly #symmetric: SymmetricState;
  readonly #s: DhKey | undefined;
  #e: DhKey | undefined;
  #fixedE: DhKey | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  readonly #kem: KemFunction | undefined;
  #kemEphemeral: Uint8Array | undefined;
  #e1: KemKeyPair | undefined;
  #re1: Uint8Array | undefined;
  readonly #psks: Uint8Array[];
  #messageIndex = 0;
  #transport: [CipherState, CipherState] | undefined;
  #splitDone = false;
  #failure: NoiseError | undefined;

  constructor(options: HandshakeOptions) {
    this.protocol = parseProtocolName(options.protocolName);
    this.initiator = options.initiator;
    const pattern = this.protocol.pattern;
    const localPre = this.initiator ? pattern.initiatorPreMessage : pattern.responderPreMessage;
    const remotePre = this.initiator ? pattern.responderPreMessage : pattern.initiatorPreMessage;
    const localSends = (token: Token) => pattern.messages.some((tokens, i) => (i % 2 === 0) === this.initiator && tokens.includes(token));
    const role = this.initiator ? 'initiator' : 'responder';
    const what = `${this.protocol.name} ${role}`;

    const needsS = localPre.includes('s') || localSends('s');
    if (needsS && options.s === undefined) throw new NoiseKeyError(`${what}: the pattern needs a local static key (s)`);
    if (!needsS && options.s !== undefined) throw new NoiseStateError(`${what}: a local static key (s) was given, but the pattern uses none`);
    this.#s = options.s === undefined ? undefined : prepareDhKey(options.s, `${what}: local static key`);
    this.#fixedE = options.e === undefined ? undefined : prepareDhKey(options.e, `${what}: local ephemeral key`);

    if (remotePre.includes('s')) {
      if (options.rs === undefined) throw new NoiseKeyError(`${what}: the pattern needs the remote static key (rs) in advance`);
      checkPublicKey(options.rs, `${what}: remote static key`);
      this.#rs = Uint8Array.from(options.rs);
    } else if (options.rs !== undefined) {
      throw new NoiseStateError(`${what}: rs was given, but the pattern transmits the remote static key; check remoteStaticKey after the handshake instead`);
    }

    const pskCount = pattern.messages.reduce((n, tokens) => n + tokens.filter((t) => t === 'psk').length, 0);
    const psks = options.psks ?? [];
    if (psks.length !== pskCount) throw new NoiseKeyError(`${what}: the pattern uses ${pskCount} pre-shared keys, ${psks.length} given`);
    psks.forEach((psk, i) => {
      if (psk.length !== PSK_LENGTH) throw new NoiseKeyError(`${what}: pre-shared key ${i + 1}: expected ${PSK_LENGTH} bytes, got ${psk.length}`);
    });
    this.#psks = psks.map((psk) => Uint8Array.from(psk));

    if (!pattern.hfs && (options.kemEphemeral !== undefined || options.kemImplementation !== undefined)) {
      throw new NoiseStateError(`${what}: KEM options were given, but the pattern has no hfs modifier`);
    }
    this.#kem = pattern.hfs ? mlkem768KemFunction(options.kemImplementation) : undefined;
    this.#kemEphemeral = options.kemEphemeral === undefined ? undefined : Uint8Array.from(options.kemEphemeral);

    this.#symmetric = new SymmetricState(this.protocol.name, this.protocol.hash, this.protocol.cipher);
    this.#symmetric.mixHash(options.prologue ?? new Uint8Array(0));
    // Pre-message keys, initiator's first (section 5.3 Initialize). Only "s" occurs in the table.
    const initiatorStatic = this.initiator ? this.#s?.publicKey : this.#rs;
    const responderStatic = this.initiator ? this.#rs : this.#s?.publicKey;
    if (pattern.initiatorPreMessage.includes('s') && initiatorStatic !== undefined) this.#symmetric.mixHash(initiatorStatic);
    if (pattern.responderPreMessage.includes('s') && responderStatic !== undefined) this.#symmetric.mixHash(responderStatic);
  }

  get isComplete(): boolean {
    return this.#messageIndex === this.protocol.pattern.messages.length;
  }

  /** True when the next handshake step is this side's writeMessage. */
  get isWriteTurn(): boolean {
    return !this.isComplete && (this.#messageIndex % 2 === 0) === this.initiator;
  }

  /** h: after completion, a value both sides share, for channel binding. */
  get handshakeHash(): Uint8Array {
    return this.#symmetric.handshakeHash;
  }

  /** The peer's static public key once known (in advance or received). */
  get remoteStaticKey(): Uint8Array | undefined {
    return this.#rs;
  }

  /** The peer's ephemeral public key once received. */
  get remoteEphemeralKey(): Uint8Array | undefined {
    return this.#re;
  }

  /**
   * DH of this side's ephemeral private key with `publicKey`, outside the handshake's own
   * transcript: lets a protocol prove something to the holder of this ephemeral (e.g. a key
   * endorsement). A low-order `publicKey` is refused with NoiseKeyError.
   */
  localEphemeralAgreement(publicKey: Uint8Array): Uint8Array {
    const e = this.#e;
    if (e === undefined) throw new NoiseStateError(`${this.protocol.name}: no local ephemeral key yet (it exists once this side sent e)`);
    checkPublicKey(publicKey, `${this.protocol.name}: ephemeral agreement`);
    return dh(e, publicKey, () => `${this.protocol.name}: ephemeral agreement`);
  }

  writeMessage(payload: Uint8Array): Uint8Array {
    const tokens = this.#nextTokens('write');
    const length = this.#messageLength(tokens, payload.length);
    if (length > MAX_MESSAGE_LENGTH) {
      throw new NoiseMessageSizeError(`${this.#describe()}: message would be ${length} bytes, over the ${MAX_MESSAGE_LENGTH}-byte limit`);
    }
    return this.#guard(() => {
      const message = new Uint8Array(length);
      let offset = 0;
      const append = (bytes: Uint8Array) => {
        message.set(bytes, offset);
        offset += bytes.length;
      };
      for (const token of tokens) {
        if (token === 'e') {
          const e = this.#fixedE ?? generateDhKey();
          this.#fixedE = undefined;
          this.#e = e;
          append(e.publicKey);
          this.#mixEphemeral(e.publicKey);
        } else if (token === 's') {
          append(this.#symmetric.encryptAndHash(this.#required(this.#s, 's').publicKey));
        } else if (token === 'e1') {
          this.#e1 = this.#requiredKem().generateKeyPair(this.#takeKemEphemeral());
          append(this.#symmetric.encryptAndHash(this.#e1.publicKey));
        } else if (token === 'ekem1') {
          const { ciphertext, sharedSecret } = this.#requiredKem().encapsulate(this.#required(this.#re1, token), this.#takeKemEphemeral());
          append(this.#symmetric.encryptAndHash(ciphertext));
          this.#symmetric.mixKey(sharedSecret);
        } else {
          this.#mixToken(token);
        }
      }
      append(this.#symmetric.encryptAndHash(payload));
      this.#finishMessage();
      return message;
    });
  }

  /** Processes the peer's message and returns its payload. */
  readMessage(message: Uint8Array): Uint8Array {
    const tokens = this.#nextTokens('read');
    return this.#guard(() => {
      if (message.length > MAX_MESSAGE_LENGTH) {
        throw new NoiseMessageSizeError(`${this.#describe()}: message of ${message.length} bytes exceeds the ${MAX_MESSAGE_LENGTH}-byte limit`);
      }
      let offset = 0;
      const take = (length: number, what: string) => {
        if (message.length - offset < length) {
          throw new NoiseMessageSizeError(`${this.#describe()}: truncated: ${what} needs ${length} bytes at offset ${offset}, message has ${message.length}`);
        }
        const bytes = message.subarray(offset, offset + length);
        offset += length;
        return bytes;
      };
      for (const token of tokens) {
        if (token === 'e') {
          this.#re = Uint8Array.from(take(DH_LENGTH, 'e'));
          this.#mixEphemeral(this.#re);
        } else if (token === 's') {
          const sealed = take(DH_LENGTH + (this.#symmetric.hasKey() ? CIPHER_TAG_LENGTH : 0), 's');
          this.#rs = Uint8Array.from(this.#symmetric.decryptAndHash(sealed));
        } else if (token === 'e1') {
          const sealed = take(KEM_PUBLIC_KEY_LENGTH + (this.#symmetric.hasKey() ? CIPHER_TAG_LENGTH : 0), 'e1');
          this.#re1 = Uint8Array.from(this.#symmetric.decryptAndHash(sealed));
        } else if (token === 'ekem1') {
          const sealed = take(KEM_CIPHERTEXT_LENGTH + (this.#symmetric.hasKey() ? CIPHER_TAG_LENGTH : 0), 'ekem1');
          const ciphertext = this.#symmetric.decryptAndHash(sealed);
          this.#symmetric.mixKey(this.#required(this.#e1, token).decapsulate(ciphertext));
        } else {
          this.#mixToken(token);
        }
      }
      if (this.#symmetric.hasKey() && message.length - offset < CIPHER_TAG_LENGTH) {
        throw new NoiseMessageSizeError(
          `${this.#describe()}: truncated: payload needs at least a ${CIPHER_TAG_LENGTH}-byte tag, ${message.length - offset} bytes left`,
        );
      }
      const payload = this.#symmetric.decryptAndHash(message.subarray(offset));
      this.#finishMessage();
      return payload;
    });
  }

  /** The transport cipher states; available once, after the handshake completed. */
  split(): TransportCiphers {
    if (this.#transport === undefined) throw new NoiseStateError(`${this.#describe()}: split before the handshake completed`);
    if (this.#splitDone) throw new NoiseStateError(`${this.protocol.name}: split called twice; the transport cipher states have one owner`);
    this.#splitDone = true;
    const [initiatorToResponder, responderToInitiator] = this.#transport;
    return this.initiator ? { send: initiatorToResponder, receive: responderToInitiator } : { send: responderToInitiator, receive: initiatorToResponder };
  }

  #describe(): string {
    const pattern = this.protocol.pattern;
    const index = Math.min(this.#messageIndex, pattern.messages.length - 1);
    const arrow = index % 2 === 0 ? '->' : '<-';
    return `${this.protocol.name} ${this.initiator ? 'initiator' : 'responder'}: handshake message ${index + 1} (${arrow} ${pattern.messages[index]?.join(', ')})`;
  }

  #nextTokens(action: 'write' | 'read'): readonly Token[] {
    if (this.#failure !== undefined) {
      throw new NoiseStateError(`${this.protocol.name}: handshake unusable after an earlier failure (${this.#failure.message})`);
    }
    if (this.isComplete) throw new NoiseStateError(`${this.protocol.name}: handshake already complete, cannot ${action} another handshake message`);
    if ((action === 'write') !== this.isWriteTurn) {
      throw new NoiseStateError(`${this.#describe()}: it is the ${action === 'write' ? 'peer' : 'local side'}'s turn to send, cannot ${action}`);
    }
    const tokens = this.protocol.pattern.messages[this.#messageIndex];
    if (tokens === undefined) throw new NoiseStateError(`${this.#describe()}: no such message`);
    return tokens;
  }

  /** The exact length writeMessage will produce, so an oversized payload is refused before any state changes. */
  #messageLength(tokens: readonly Token[], payloadLength: number): number {
    let hasKey = this.#symmetric.hasKey();
    let length = 0;
    for (const token of tokens) {
      if (token === 'e') {
        length += DH_LENGTH;
        hasKey ||= this.protocol.pattern.psk;
      } else if (token === 's') {
        length += DH_LENGTH + (hasKey ? CIPHER_TAG_LENGTH : 0);
      } else if (token === 'e1') {
        length += KEM_PUBLIC_KEY_LENGTH + (hasKey ? CIPHER_TAG_LENGTH : 0);
      } else if (token === 'ekem1') {
        length += KEM_CIPHERTEXT_LENGTH + (hasKey ? CIPHER_TAG_LENGTH : 0);
        hasKey = true;
      } else {
        hasKey = true;
      }
    }
    return length + payloadLength + (hasKey ? CIPHER_TAG_LENGTH : 0);
  }

  #mixEphemeral(publicKey: Uint8Array): void {
    this.#symmetric.mixHash(publicKey);
    if (this.protocol.pattern.psk) this.#symmetric.mixKey(publicKey);
  }

  #mixToken(token: Exclude<Token, 'e' | 's' | 'e1' | 'ekem1'>): void {
    if (token === 'psk') {
      const psk = this.#psks.shift();
      this.#symmetric.mixKeyAndHash(this.#required(psk, 'psk'));
      return;
    }
    // A DH token names the initiator's key first: es is the initiator's e with the responder's s.
    const [localKind, remoteKind] = this.initiator ? [token[0], token[1]] : [token[1], token[0]];
    const local = localKind === 'e' ? this.#e : this.#s;
    const remote = remoteKind === 'e' ? this.#re : this.#rs;
    const secret = dh(this.#required(local, token), this.#required(remote, token), () => `${this.#describe()}: ${token}`);
    this.#symmetric.mixKey(secret);
  }

  #requiredKem(): KemFunction {
    if (this.#kem === undefined) throw new NoiseStateError(`${this.#describe()}: no KEM function`);
    return this.#kem;
  }

  /** The fixed KEM randomness, used once (as a fixed e is). */
  #takeKemEphemeral(): Uint8Array | undefined {
    const fixed = this.#kemEphemeral;
    this.#kemEphemeral = undefined;
    return fixed;
  }

  #required<T>(value: T | undefined, token: Token): T {
    if (value === undefined) throw new NoiseStateError(`${this.#describe()}: a key for ${token} is not available`);
    return value;
  }

  #finishMessage(): void {
    this.#messageIndex += 1;
    if (this.isComplete) this.#transport = this.#symmetric.split();
  }

  #guard<T>(step: () => T): T {
    try {
      return step();
    } catch (error) {
      this.#failure = error instanceof NoiseError ? error : new NoiseStateError(String(error));
      throw error;
    }
  }
}
