/**
 * The `_pony` DNS record: a TXT record at `_pony.<domain>` that publishes the domain's Noise static
 * keys and age recipient (docs/PROTOCOL.md, "The _pony DNS record").
 *
 *   v=pony1; n=<base64 key>[,<base64 key>...]; a=<age X25519 recipient>; p=enforce|testing[; max-age=<seconds>][; relay=sealed]
 *
 * - `v=pony1` comes first; a record starting otherwise is not a version-1 record.
 * - Tags are `name=value`, separated by `;` (optional spaces or tabs around tags, names and values;
 *   one trailing `;` allowed). Tag names are case-sensitive. Unknown tags are ignored, so later
 *   versions can add tags; a tag that appears twice is an error.
 * - `n` (required): 1 to 4 Noise static public keys, canonical base64 of exactly 32 bytes, separated
 *   by `,`. The first is the current key; the others are accepted too, for key rollover.
 * - `a` (required): the domain's age X25519 recipient (`age1...`).
 * - `p` (optional): `enforce` or `testing`; absent means `testing`.
 * - `max-age` (optional): decimal seconds, 0 to 31557600 (one year).
 * - `relay` (optional): `sealed` lets a sender that cannot reach an MX offering XPONY deliver the
 *   message sealed to `a=` through the domain's other MX hosts (a backup MX relays it on, seeing
 *   the envelope, never the content); `none` or absent: it waits. Senders that predate the tag
 *   ignore it, as any unknown tag, and wait.
 *
 * A record that fits a classic 512-octet UDP answer never needs TCP or EDNS, so the serializer only
 * emits records that fit even under the longest possible owner name.
 */
import { base64 } from '@scure/base';
import { AgeError, parseRecipient } from './age/index.js';
import { normalizeDomain } from './domain-name.js';
import { X25519_KEY_LENGTH } from './primitives.js';

export const PONY_RECORD_VERSION = 'pony1';
export const PONY_RECORD_LABEL = '_pony';
/** Noise keys in one record: the current one and up to three others during a rollover. */
export const MAX_NOISE_KEYS = 4;
/** The longest `max-age`: one year, as MTA-STS. */
export const MAX_MAX_AGE = 31_557_600;
/** The parser refuses longer input (a TXT record can hold 64 KiB; a version-1 record needs < 512). */
export const MAX_RECORD_TEXT = 8192;
export const DEFAULT_TTL = 3600;

export type PonyPolicy = 'enforce' | 'testing';
const POLICIES: readonly PonyPolicy[] = ['enforce', 'testing'];

export interface PonyRecord {
  /** Noise static public keys (32 bytes each), current first. */
  noiseKeys: Uint8Array[];
  /** The domain's age X25519 recipient. */
  ageRecipient: string;
  policy: PonyPolicy;
  /** Seconds; undefined when the record has no max-age tag. */
  maxAge?: number;
  /** `relay=sealed`: sealed messages may go through the domain's MX hosts without XPONY. */
  sealedRelay?: boolean;
}

export class PonyRecordError extends Error {
  override readonly name = 'PonyRecordError';
  constructor(readonly reason: string) {
    super(`_pony record: ${reason}`);
  }
}

/** A value from the input, quoted and cut short, for error messages. */
function shown(value: string): string {
  return JSON.stringify(value.length > 48 ? `${value.slice(0, 48)}...` : value);
}

const TAG = /^([A-Za-z][A-Za-z0-9_-]*)[ \t]*=[ \t]*(.*)$/;
const PRINTABLE_ASCII = /^[\x20-\x7e\t]*$/;

function trimWhitespace(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '');
}

/** One `name=value` tag, or null when the text is not one. */
function splitTag(text: string): { name: string; value: string } | null {
  const match = TAG.exec(trimWhitespace(text));
  return match === null ? null : { name: match[1]!, value: match[2]! };
}

/** Whether a TXT value claims to be a version-1 record: its first tag is v=pony1. */
function isVersion1(text: string): boolean {
  const first = splitTag(text.split(';', 1)[0]!);
  return first !== null && first.name === 'v' && first.value === PONY_RECORD_VERSION;
}

/** Splits the tag list into a name -> value map, checking the syntax, the version and duplicates. */
function parseTags(text: string): Map<string, string> {
  if (text.length > MAX_RECORD_TEXT) {
    throw new PonyRecordError(`too long: ${text.length} characters (limit ${MAX_RECORD_TEXT})`);
  }
  if (!PRINTABLE_ASCII.test(text)) throw new PonyRecordError('contains a character outside printable ASCII');
  const parts = text.split(';');
  if (parts.length > 1 && trimWhitespace(parts[parts.length - 1]!) === '') parts.pop();
  const tags = new Map<string, string>();
  parts.forEach((part, index) => {
    const tag = splitTag(part);
    if (tag === null) throw new PonyRecordError(`tag ${index + 1}: expected name=value, got ${shown(part)}`);
    if (index === 0 && !isVersion1(part)) {
      throw new PonyRecordError(
        tag.name === 'v' ? `unsupported version ${shown(tag.value)} (expected "${PONY_RECORD_VERSION}")` : `must begin with v=${PONY_RECORD_VERSION}`,
      );
    }
    if (tags.has(tag.name)) throw new PonyRecordError(`duplicate tag "${tag.name}"`);
    tags.set(tag.name, tag.value);
  });
  return tags;
}

function requiredTag(tags: Map<string, string>, name: string): string {
  const value = tags.get(name);
  if (value === undefined) throw new PonyRecordError(`missing tag "${name}"`);
  return value;
}

function parseNoiseKeys(value: string): Uint8Array[] {
  const items = value.split(',').map(trimWhitespace);
  if (items.length > MAX_NOISE_KEYS) throw new PonyRecordError(`n: ${items.length} keys (limit ${MAX_NOISE_KEYS})`);
  const seen = new Set<string>();
  return items.map((item, index) => {
    let key: Uint8Array;
    try {
      key = base64.decode(item);
    } catch {
      throw new PonyRecordError(`n: key ${index + 1}: not canonical base64: ${shown(item)}`);
    }
    if (key.length !== X25519_KEY_LENGTH) {
      throw new PonyRecordError(`n: key ${index + 1}: expected ${X25519_KEY_LENGTH} bytes, got ${key.length}`);
    }
    if (seen.has(item)) throw new PonyRecordError(`n: key ${index + 1} repeats an earlier key`);
    seen.add(item);
    return key;
  });
}

const X25519_RECIPIENT_PREFIX = 'age1';
const HYBRID_RECIPIENT_PREFIX = 'age1pq1';

function parseAgeX25519Recipient(value: string): string {
  if (!value.startsWith(X25519_RECIPIENT_PREFIX) || value.startsWith(HYBRID_RECIPIENT_PREFIX)) {
    throw new PonyRecordError(`a: expected an age X25519 recipient (age1...), got ${shown(value)}`);
  }
  try {
    parseRecipient(value);
  } catch (error) {
    if (error instanceof AgeError) throw new PonyRecordError(`a: ${error.message}`);
    throw error;
  }
  return value;
}

function parsePolicy(value: string | undefined): PonyPolicy {
  if (value === undefined) return 'testing';
  const policy = POLICIES.find((p) => p === value);
  if (policy === undefined) throw new PonyRecordError(`p: expected enforce or testing, got ${shown(value)}`);
  return policy;
}

function parseMaxAge(value: string): number {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(value) || Number(value) > MAX_MAX_AGE) {
    throw new PonyRecordError(`max-age: expected whole seconds from 0 to ${MAX_MAX_AGE}, got ${shown(value)}`);
  }
  return Number(value);
}

const RELAY_VALUES = ['sealed', 'none'] as const;

function parseRelay(value: string): boolean {
  if (!RELAY_VALUES.some((v) => v === value)) throw new PonyRecordError(`relay: expected sealed or none, got ${shown(value)}`);
  return value === 'sealed';
}

/**
 * Parses a `_pony` record. DNS may hand a long TXT value back as several strings of at most 255
 * octets; pass them as they came and they are joined without separators (RFC 7208 style).
 */
export function parsePonyRecord(strings: string[] | string): PonyRecord {
  const tags = parseTags(typeof strings === 'string' ? strings : strings.join(''));
  const record: PonyRecord = {
    noiseKeys: parseNoiseKeys(requiredTag(tags, 'n')),
    ageRecipient: parseAgeX25519Recipient(requiredTag(tags, 'a')),
    policy: parsePolicy(tags.get('p')),
  };
  const maxAge = tags.get('max-age');
  if (maxAge !== undefined) record.maxAge = parseMaxAge(maxAge);
  const relay = tags.get('relay');
  if (relay !== undefined && parseRelay(relay)) record.sealedRelay = true;
  return record;
}

/**
 * Picks the `_pony` record among all TXT answers at `_pony.<domain>` (each answer as its list of
 * strings, as node:dns resolveTxt returns them). Answers not starting with `v=pony1` are ignored;
 * none gives null, more than one is an error (the domain's intent is unclear).
 */
export function selectPonyRecord(answers: (string[] | string)[]): PonyRecord | null {
  const candidates = answers.map((answer) => (typeof answer === 'string' ? answer : answer.join(''))).filter(isVersion1);
  if (candidates.length > 1) throw new PonyRecordError(`ambiguous: ${candidates.length} TXT records start with v=${PONY_RECORD_VERSION}`);
  const [only] = candidates;
  return only === undefined ? null : parsePonyRecord(only);
}

// DNS wire sizes (RFC 1035 section 4): a response to a TXT query carries a 12-octet header, the
// question (name, type, class) and the answer record, whose owner name every server compresses to a
// 2-octet pointer to the question; type, class, TTL and RDLENGTH take 10 more octets.
const DNS_HEADER = 12;
const QUESTION_FIXED = 4;
const ANSWER_FIXED = 2 + 10;
/** The longest domain name in wire format (RFC 1035 section 2.3.4). */
export const MAX_NAME_WIRE_OCTETS = 255;
export const UDP_ANSWER_LIMIT = 512;
const TXT_STRING_MAX = 255;

/** TXT strings of at most 255 octets each; the text is ASCII, so characters are octets. */
export function txtStrings(text: string): string[] {
  const strings: string[] = [];
  for (let i = 0; i < text.length; i += TXT_STRING_MAX) strings.push(text.slice(i, i + TXT_STRING_MAX));
  return strings.length === 0 ? [''] : strings;
}

/** Octets of a DNS response answering a TXT query for a name of `nameWireOctets` with one record of `text`. */
export function udpAnswerSize(nameWireOctets: number, text: string): number {
  const rdata = txtStrings(text).reduce((sum, s) => sum + 1 + s.length, 0);
  return DNS_HEADER + nameWireOctets + QUESTION_FIXED + ANSWER_FIXED + rdata;
}

/**
 * The record text for `record`. Throws PonyRecordError when a field is invalid (the text is checked
 * by the parser, so nothing is emitted that a client would refuse) or when the answer would not fit
 * 512 octets of UDP under the longest possible owner name.
 */
export function serializePonyRecord(record: PonyRecord): string {
  const tags = [
    `v=${PONY_RECORD_VERSION}`,
    `n=${record.noiseKeys.map((key) => base64.encode(key)).join(',')}`,
    `a=${record.ageRecipient}`,
    `p=${record.policy}`,
  ];
  if (record.maxAge !== undefined) tags.push(`max-age=${record.maxAge}`);
  if (record.sealedRelay === true) tags.push('relay=sealed');
  const text = tags.join('; ');
  parsePonyRecord(text);
  const size = udpAnswerSize(MAX_NAME_WIRE_OCTETS, text);
  if (size > UDP_ANSWER_LIMIT) {
    throw new PonyRecordError(`too large: a DNS answer would take ${size} octets for the longest owner name (limit ${UDP_ANSWER_LIMIT}); publish fewer keys`);
  }
  return text;
}

/** `_pony.<domain>` in lower-case ASCII (IDNs as A-labels), without the trailing dot. */
export function ponyRecordName(domain: string): string {
  const ascii = normalizeDomain(domain);
  if (ascii === null) throw new PonyRecordError(`domain ${shown(domain)} is not a valid domain name`);
  const name = `${PONY_RECORD_LABEL}.${ascii}`;
  if (name.length + 2 > MAX_NAME_WIRE_OCTETS) throw new PonyRecordError(`domain ${shown(domain)} is too long`);
  return name;
}

/** The zone-file line publishing `record` for `domain`, e.g. `_pony.example.org. 3600 IN TXT "v=pony1; ..."`. */
export function zoneFileLine(domain: string, record: PonyRecord, ttl: number = DEFAULT_TTL): string {
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 2 ** 31 - 1) {
    throw new PonyRecordError(`TTL ${ttl}: expected whole seconds from 0 to ${2 ** 31 - 1}`);
  }
  // No escaping needed: the fields (base64, Bech32, words, digits) hold no quote or backslash.
  const quoted = txtStrings(serializePonyRecord(record)).map((s) => `"${s}"`);
  return `${ponyRecordName(domain)}. ${ttl} IN TXT ${quoted.join(' ')}`;
}
