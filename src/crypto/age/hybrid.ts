/**
 * The post-quantum hybrid recipient type, ML-KEM-768 + X25519 (https://c2sp.org/age, as in age 1.3
 * and typage): "-> mlkem768x25519 <X-Wing ciphertext>", the file key sealed with the HPKE context
 * of the X-Wing shared secret. Recipients are "age1pq1...", identities "AGE-SECRET-KEY-PQ-1...",
 * the identity being the 32-byte X-Wing seed.
 */
import { KeyError } from '../primitives.js';
import { base64DecodeCanonical, base64Encode, bech32Decode, bech32Encode } from './encoding.js';
import { AgeError } from './errors.js';
import { unwrapFileKey, wrapFileKey } from './file-key.js';
import type { Stanza } from './format.js';
import { hpkeBaseContext } from './hpke.js';
import type { Identity, Recipient } from './recipient.js';
import {
  XWING_CIPHERTEXT_LENGTH,
  XWING_PUBLIC_KEY_LENGTH,
  XWING_SEED_LENGTH,
  XWingDecapsulationKey,
  XWingEncapsulationKey,
  xwingGenerateSeed,
} from './xwing.js';

export const HYBRID_RECIPIENT_PREFIX = 'age1pq';
export const HYBRID_IDENTITY_PREFIX = 'AGE-SECRET-KEY-PQ-';
const STANZA_TYPE = 'mlkem768x25519';
/** The HPKE KEM identifier of X-Wing. */
const KEM_XWING = 0x647a;
const LABEL = Buffer.from('age-encryption.org/mlkem768x25519');

export class HybridRecipient implements Recipient {
  /** Made at the first wrap, which is where an invalid key is refused; kept for every later one. */
  private encapsulationKey: XWingEncapsulationKey | undefined;

  constructor(readonly publicKey: Uint8Array) {
    if (publicKey.length !== XWING_PUBLIC_KEY_LENGTH) {
      throw new AgeError('key', `hybrid recipient: ${publicKey.length} bytes, expected ${XWING_PUBLIC_KEY_LENGTH}`);
    }
  }

  static parse(s: string): HybridRecipient {
    return new HybridRecipient(bech32Decode('hybrid recipient', HYBRID_RECIPIENT_PREFIX, s));
  }

  toString(): string {
    return bech32Encode(HYBRID_RECIPIENT_PREFIX, this.publicKey, false);
  }

  wrapFileKey(fileKey: Uint8Array): Stanza[] {
    let encapsulation: ReturnType<XWingEncapsulationKey['encapsulate']>;
    try {
      this.encapsulationKey ??= new XWingEncapsulationKey(this.publicKey);
      encapsulation = this.encapsulationKey.encapsulate();
    } catch (error) {
      // ML-KEM's encapsulation-key check, or a low-order X25519 half.
      throw new AgeError('key', `hybrid recipient: invalid public key (${(error as Error).message})`);
    }
    const { key, nonce } = hpkeBaseContext(KEM_XWING, encapsulation.sharedSecret, LABEL);
    return [{ type: STANZA_TYPE, args: [base64Encode(encapsulation.ciphertext)], body: wrapFileKey(key, nonce, fileKey) }];
  }
}

export class HybridIdentity implements Identity {
  private readonly key: XWingDecapsulationKey;

  constructor(private readonly seed: Uint8Array) {
    if (seed.length !== XWING_SEED_LENGTH) throw new AgeError('key', `hybrid identity: ${seed.length} bytes, expected ${XWING_SEED_LENGTH}`);
    this.key = new XWingDecapsulationKey(seed);
  }

  static generate(): HybridIdentity {
    return new HybridIdentity(xwingGenerateSeed());
  }

  static parse(s: string): HybridIdentity {
    return new HybridIdentity(bech32Decode('hybrid identity', HYBRID_IDENTITY_PREFIX, s));
  }

  encode(): string {
    return bech32Encode(HYBRID_IDENTITY_PREFIX, this.seed, true);
  }

  recipient(): HybridRecipient {
    return new HybridRecipient(this.key.publicKey);
  }

  unwrapFileKey(stanzas: readonly Stanza[]): Uint8Array | null {
    for (const stanza of stanzas) {
      if (stanza.type !== STANZA_TYPE) continue;
      const [encapsulationText, ...extra] = stanza.args;
      if (encapsulationText === undefined || extra.length > 0) {
        throw new AgeError('header', `age header: ${STANZA_TYPE} stanza: expected 1 argument, got ${stanza.args.length}`);
      }
      const ciphertext = base64DecodeCanonical(encapsulationText);
      if (ciphertext === null || ciphertext.length !== XWING_CIPHERTEXT_LENGTH) {
        throw new AgeError('header', `age header: ${STANZA_TYPE} stanza: encapsulation is not canonical base64 of ${XWING_CIPHERTEXT_LENGTH} bytes`);
      }
      let sharedSecret: Uint8Array;
      try {
        sharedSecret = this.key.decapsulate(ciphertext);
      } catch (error) {
        if (error instanceof KeyError) throw new AgeError('header', `age header: ${STANZA_TYPE} stanza: ${error.message}`);
        throw error;
      }
      const { key, nonce } = hpkeBaseContext(KEM_XWING, sharedSecret, LABEL);
      const fileKey = unwrapFileKey(STANZA_TYPE, key, nonce, stanza.body);
      if (fileKey !== null) return fileKey;
    }
    return null;
  }
}

/** Whether a recipient is the post-quantum hybrid kind (the one a sender should prefer). */
export function isHybridRecipient(recipient: Recipient): boolean {
  return recipient instanceof HybridRecipient;
}
