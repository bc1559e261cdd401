/**
 * Recipient and identity strings: generation, parsing (dispatching on the type prefix) and the
 * identity-to-recipient mapping.
 */
import { AgeError } from './errors.js';
import { generateFileKey } from './file-key.js';
import { HYBRID_IDENTITY_PREFIX, HYBRID_RECIPIENT_PREFIX, HybridIdentity, HybridRecipient } from './hybrid.js';
import type { Identity, Recipient } from './recipient.js';
import { X25519_IDENTITY_PREFIX, X25519_RECIPIENT_PREFIX, X25519Identity, X25519Recipient } from './x25519.js';

export function generateX25519Identity(): string {
  return X25519Identity.generate().encode();
}

export function generateHybridIdentity(): string {
  return HybridIdentity.generate().encode();
}

/** Decodes a recipient string by its type prefix; key checks happen when it wraps a file key. */
export function decodeRecipient(s: string): Recipient {
  if (s.startsWith(`${HYBRID_RECIPIENT_PREFIX}1`)) return HybridRecipient.parse(s);
  if (s.startsWith(`${X25519_RECIPIENT_PREFIX}1`)) return X25519Recipient.parse(s);
  throw new AgeError('key', `age recipient: unsupported type ${JSON.stringify(s.slice(0, 16))} (expected "age1..." or "age1pq1...")`);
}

/**
 * The value kept in `cache` for the key string `s`, or `parse(s)`, kept there (at most `max`
 * entries, the oldest going first). A parse that throws keeps nothing.
 */
function parseOnce<T>(cache: Map<string, T>, max: number, s: string, parse: (s: string) => T): T {
  const cached = cache.get(s);
  if (cached !== undefined) return cached;
  const parsed = parse(s);
  if (cache.size === max) cache.delete(cache.keys().next().value as string);
  cache.set(s, parsed);
  return parsed;
}

/**
 * Recipients recently validated. The same few key strings come back all the time (a peer's keys in
 * every handshake with it, a domain's record for every message to it), and the trial wrap of a
 * hybrid recipient costs an ML-KEM encapsulation (~0.4 ms in JavaScript). A recipient is immutable
 * and its validity depends on the string alone, so one object serves every caller, and a hybrid
 * one keeps its expanded ML-KEM key for every message sealed to it (about 10 KiB each in
 * JavaScript, so at most about 2.5 MiB here). Bounded; the oldest entry goes first.
 */
const validatedRecipients = new Map<string, Recipient>();
const VALIDATED_RECIPIENTS_MAX = 256;

/**
 * Decodes and fully validates a recipient: a trial wrap runs the public-key checks (ML-KEM's
 * encapsulation-key check, X25519 low order) so a bad key fails here, not when mail is sealed.
 */
export function parseRecipient(s: string): Recipient {
  return parseOnce(validatedRecipients, VALIDATED_RECIPIENTS_MAX, s, (text) => {
    const recipient = decodeRecipient(text);
    recipient.wrapFileKey(generateFileKey());
    return recipient;
  });
}

/**
 * Identities recently parsed from strings. Callers that open every message with the same key
 * strings would otherwise redo the key expansion (an ML-KEM key generation for hybrid identities,
 * ~0.5 ms) per message. Bounded to a few entries; it keeps those key strings alive, which a
 * daemon holding its keys does anyway.
 */
const parsedIdentities = new Map<string, Identity>();
const PARSED_IDENTITIES_MAX = 16;

export function parseIdentity(s: string): Identity {
  return parseOnce(parsedIdentities, PARSED_IDENTITIES_MAX, s, (text) => {
    if (text.startsWith(`${HYBRID_IDENTITY_PREFIX}1`)) return HybridIdentity.parse(text);
    if (text.startsWith(`${X25519_IDENTITY_PREFIX}1`)) return X25519Identity.parse(text);
    // Never echo the string: it may be a secret key with a typo.
    throw new AgeError('key', 'age identity: unsupported type (expected "AGE-SECRET-KEY-1..." or "AGE-SECRET-KEY-PQ-1...")');
  });
}

export function identityToRecipient(identity: string): string {
  return parseIdentity(identity).recipient().toString();
}
