/**
 * The fingerprint of a Noise static public key: a short, stable form that people can read aloud,
 * compare by eye, and paste into a pin (docs/PROTOCOL.md, "Key file").
 *
 *   fingerprint = groups of 4 of base32-lower( SHA-256("blackpony fingerprint v1" || 0x00 || key)[0..20] )
 *
 * e.g. `7xq2-m4kd-...` (8 groups, 39 characters). 160 bits keep second preimages out of reach; the
 * label keeps the value apart from any other SHA-256 of the same key. base32 (RFC 4648, lower case,
 * no padding: 20 bytes are exactly 32 characters) has no look-alike pairs such as 0/O or 1/l.
 */
import { base32nopad } from '@scure/base';
import { sha256, X25519_KEY_LENGTH, KeyError } from './primitives.js';

const FINGERPRINT_LABEL = new TextEncoder().encode('blackpony fingerprint v1\0');
const FINGERPRINT_BYTES = 20;
const GROUP_LENGTH = 4;

export function fingerprint(noisePublicKey: Uint8Array): string {
  if (noisePublicKey.length !== X25519_KEY_LENGTH) {
    throw new KeyError(`fingerprint: expected a ${X25519_KEY_LENGTH}-byte X25519 public key, got ${noisePublicKey.length} bytes`);
  }
  const digest = sha256(FINGERPRINT_LABEL, noisePublicKey).subarray(0, FINGERPRINT_BYTES);
  const text = base32nopad.encode(digest).toLowerCase();
  const groups: string[] = [];
  for (let i = 0; i < text.length; i += GROUP_LENGTH) groups.push(text.slice(i, i + GROUP_LENGTH));
  return groups.join('-');
}
