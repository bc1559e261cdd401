/**
 * The part of HPKE (RFC 9180) age's post-quantum stanzas use: the base-mode key schedule with
 * HKDF-SHA-256 and ChaCha20-Poly1305, giving the key and nonce for one single-shot seal.
 */
import { hmacSha256 } from '../primitives.js';

const KDF_HKDF_SHA256 = 0x0001;
const AEAD_CHACHA20_POLY1305 = 0x0003;
const MODE_BASE = 0x00;
const KEY_LENGTH = 32;
const NONCE_LENGTH = 12;
const VERSION_LABEL = Buffer.from('HPKE-v1');
const EMPTY = new Uint8Array(0);

function u16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value);
  return out;
}

function suiteId(kemId: number): Buffer {
  return Buffer.concat([Buffer.from('HPKE'), u16(kemId), u16(KDF_HKDF_SHA256), u16(AEAD_CHACHA20_POLY1305)]);
}

/** HKDF-Extract with HPKE's label framing; an empty salt is HMAC's all-zero key. */
function labeledExtract(suite: Buffer, salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array {
  return hmacSha256(salt, VERSION_LABEL, suite, Buffer.from(label), ikm);
}

/** HKDF-Expand with HPKE's label framing, for outputs of at most one SHA-256 block. */
function labeledExpand(suite: Buffer, prk: Uint8Array, label: string, info: Uint8Array, length: number): Uint8Array {
  const labeledInfo = Buffer.concat([u16(length), VERSION_LABEL, suite, Buffer.from(label), info]);
  return hmacSha256(prk, labeledInfo, Uint8Array.of(1)).subarray(0, length);
}

export interface HpkeContext {
  key: Uint8Array;
  nonce: Uint8Array;
}

/** KeySchedule(mode_base, shared_secret, info, psk = "", psk_id = ""), first (sequence 0) nonce. */
export function hpkeBaseContext(kemId: number, sharedSecret: Uint8Array, info: Uint8Array): HpkeContext {
  const suite = suiteId(kemId);
  const pskIdHash = labeledExtract(suite, EMPTY, 'psk_id_hash', EMPTY);
  const infoHash = labeledExtract(suite, EMPTY, 'info_hash', info);
  const context = Buffer.concat([Uint8Array.of(MODE_BASE), pskIdHash, infoHash]);
  const secret = labeledExtract(suite, sharedSecret, 'secret', EMPTY);
  return {
    key: labeledExpand(suite, secret, 'key', context, KEY_LENGTH),
    nonce: labeledExpand(suite, secret, 'base_nonce', context, NONCE_LENGTH),
  };
}
