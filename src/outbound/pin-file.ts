/**
 * The pin file format: one JSON file per domain, e.g. pins/example.org.json (pins.ts stores them):
 *
 *   {"version":1,"domain":"example.org","keys":[{"key":"<base64>","firstSeen":"<ISO>","lastSeen":"<ISO>","expiresAt":"<ISO>"}]}
 *
 * A key whose server announced the sealed relay in the handshake that last refreshed it also has
 * "sealedRelayTo":"<age recipient>" (files without it read as before, and older readers ignore it).
 */
import { base64 } from '@scure/base';
import { parseRecipient } from '../crypto/age/index.js';
import { X25519_KEY_LENGTH } from '../crypto/primitives.js';

export const PIN_FILE_VERSION = 1;

export interface PinnedKey {
  key: Uint8Array;
  firstSeen: Date;
  lastSeen: Date;
  expiresAt: Date;
  /**
   * The age recipient a sealed relay seals to (the hybrid one the server announced, if any), when
   * the server said in that handshake that its domain takes mail sealed to it through its other
   * MX hosts (policy.ts).
   */
  sealedRelayTo?: string;
}

export interface Pin {
  domain: string;
  keys: PinnedKey[];
}

/** What is wrong with a pin file's text. */
export class PinFileFormatError extends Error {
  override readonly name = 'PinFileFormatError';
}

interface StoredKey {
  key: string;
  firstSeen: string;
  lastSeen: string;
  expiresAt: string;
  sealedRelayTo?: string;
}

/** A pin file's text. */
export function encodePinFile(pin: Pin): string {
  const stored = {
    version: PIN_FILE_VERSION,
    domain: pin.domain,
    keys: pin.keys.map((k): StoredKey => ({
      key: base64.encode(k.key),
      firstSeen: k.firstSeen.toISOString(),
      lastSeen: k.lastSeen.toISOString(),
      expiresAt: k.expiresAt.toISOString(),
      ...(k.sealedRelayTo === undefined ? {} : { sealedRelayTo: k.sealedRelayTo }),
    })),
  };
  return `${JSON.stringify(stored, null, 2)}\n`;
}

/** The pin in a pin file's text; throws PinFileFormatError saying what is wrong with it. */
export function parsePinFile(domain: string, text: string): Pin {
  const corrupt = (reason: string): PinFileFormatError => new PinFileFormatError(reason);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw corrupt('not valid JSON');
  }
  if (!isObject(value)) throw corrupt('expected a JSON object');
  if (value.version !== PIN_FILE_VERSION) throw corrupt(`unsupported version ${JSON.stringify(value.version)} (expected ${PIN_FILE_VERSION})`);
  if (value.domain !== domain) throw corrupt(`names domain ${JSON.stringify(value.domain)}, expected "${domain}"`);
  if (!Array.isArray(value.keys) || value.keys.length === 0) throw corrupt('expected a non-empty "keys" list');
  const seen = new Set<string>();
  const keys = value.keys.map((entry: unknown, index: number): PinnedKey => {
    const where = `key ${index + 1}`;
    if (!isObject(entry) || typeof entry.key !== 'string') throw corrupt(`${where}: expected an object with a base64 "key"`);
    let key: Uint8Array;
    try {
      key = base64.decode(entry.key);
    } catch {
      throw corrupt(`${where}: not canonical base64`);
    }
    if (key.length !== X25519_KEY_LENGTH) throw corrupt(`${where}: expected ${X25519_KEY_LENGTH} bytes, got ${key.length}`);
    if (seen.has(entry.key)) throw corrupt(`${where}: repeats an earlier key`);
    seen.add(entry.key);
    return {
      key,
      firstSeen: date(entry.firstSeen, `${where}: firstSeen`),
      lastSeen: date(entry.lastSeen, `${where}: lastSeen`),
      expiresAt: date(entry.expiresAt, `${where}: expiresAt`),
      ...(entry.sealedRelayTo === undefined ? {} : { sealedRelayTo: recipient(entry.sealedRelayTo, `${where}: sealedRelayTo`) }),
    };
  });
  return { domain, keys };

  function recipient(field: unknown, what: string): string {
    try {
      if (typeof field === 'string') return parseRecipient(field).toString();
    } catch {
      // named below
    }
    throw corrupt(`${what}: expected an age recipient`);
  }

  function date(field: unknown, what: string): Date {
    const parsed = typeof field === 'string' ? new Date(field) : new Date(NaN);
    if (Number.isNaN(parsed.getTime())) throw corrupt(`${what}: expected an ISO date`);
    return parsed;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
