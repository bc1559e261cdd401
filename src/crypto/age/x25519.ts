/**
 * The X25519 recipient type (https://c2sp.org/age#the-x25519-recipient-type):
 * "-> X25519 <ephemeral share>" with the file key wrapped under
 * HKDF-SHA-256(ikm = shared secret, salt = share || recipient, info = "age-encryption.org/v1/X25519").
 */
import { KeyError, hkdfSha256, x25519Ephemeral, x25519GenerateKeyPair, x25519StaticKey, X25519_KEY_LENGTH, type X25519StaticKey } from '../primitives.js';
import { base64DecodeCanonical, base64Encode, bech32Decode, bech32Encode } from './encoding.js';
import { AgeError } from './errors.js';
import { unwrapFileKey, wrapFileKey } from './file-key.js';
import type { Stanza } from './format.js';
import type { Identity, Recipient } from './recipient.js';

export const X25519_RECIPIENT_PREFIX = 'age';
export const X25519_IDENTITY_PREFIX = 'AGE-SECRET-KEY-';
const STANZA_TYPE = 'X25519';
const LABEL = Buffer.from('age-encryption.org/v1/X25519');
const ZERO_NONCE = new Uint8Array(12);

function wrappingKey(sharedSecret: Uint8Array, share: Uint8Array, recipient: Uint8Array): Uint8Array {
  return hkdfSha256(sharedSecret, Buffer.concat([share, recipient]), LABEL, 32);
}

export class X25519Recipient implements Recipient {
  constructor(readonly publicKey: Uint8Array) {
    if (publicKey.length !== X25519_KEY_LENGTH) throw new AgeError('key', `X25519 recipient: ${publicKey.length} bytes, expected 32`);
  }

  static parse(s: string): X25519Recipient {
    return new X25519Recipient(bech32Decode('X25519 recipient', X25519_RECIPIENT_PREFIX, s));
  }

  toString(): string {
    return bech32Encode(X25519_RECIPIENT_PREFIX, this.publicKey, false);
  }

  wrapFileKey(fileKey: Uint8Array): Stanza[] {
    let ephemeral: ReturnType<typeof x25519Ephemeral>;
    try {
      ephemeral = x25519Ephemeral(this.publicKey);
    } catch (error) {
      if (error instanceof KeyError) throw new AgeError('key', `X25519 recipient: ${error.message}`);
      throw error;
    }
    const key = wrappingKey(ephemeral.sharedSecret, ephemeral.ephemeralPublicKey, this.publicKey);
    return [{ type: STANZA_TYPE, args: [base64Encode(ephemeral.ephemeralPublicKey)], body: wrapFileKey(key, ZERO_NONCE, fileKey) }];
  }
}

export class X25519Identity implements Identity {
  private readonly key: X25519StaticKey;

  constructor(private readonly privateKey: Uint8Array) {
    if (privateKey.length !== X25519_KEY_LENGTH) throw new AgeError('key', `X25519 identity: ${privateKey.length} bytes, expected 32`);
    this.key = x25519StaticKey(privateKey);
  }

  static generate(): X25519Identity {
    return new X25519Identity(x25519GenerateKeyPair().privateKey);
  }

  static parse(s: string): X25519Identity {
    return new X25519Identity(bech32Decode('X25519 identity', X25519_IDENTITY_PREFIX, s));
  }

  encode(): string {
    return bech32Encode(X25519_IDENTITY_PREFIX, this.privateKey, true);
  }

  recipient(): X25519Recipient {
    return new X25519Recipient(this.key.publicKey);
  }

  unwrapFileKey(stanzas: readonly Stanza[]): Uint8Array | null {
    for (const stanza of stanzas) {
      if (stanza.type !== STANZA_TYPE) continue;
      const [shareText, ...extra] = stanza.args;
      if (shareText === undefined || extra.length > 0) {
        throw new AgeError('header', `age header: X25519 stanza: expected 1 argument, got ${stanza.args.length}`);
      }
      const share = base64DecodeCanonical(shareText);
      if (share === null || share.length !== X25519_KEY_LENGTH) {
        throw new AgeError('header', `age header: X25519 stanza: share is not canonical base64 of 32 bytes`);
      }
      let secret: Uint8Array;
      try {
        secret = this.key.agree(share);
      } catch (error) {
        if (error instanceof KeyError) throw new AgeError('header', `age header: X25519 stanza: ${error.message}`);
        throw error;
      }
      const fileKey = unwrapFileKey('X25519', wrappingKey(secret, share, this.key.publicKey), ZERO_NONCE, stanza.body);
      if (fileKey !== null) return fileKey;
    }
    return null;
  }
}
