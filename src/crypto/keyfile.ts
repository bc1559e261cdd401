/**
 * The key file: one secret text file holding a host's Noise static X25519 key pair and its age
 * identities (docs/PROTOCOL.md, "Key file").
 *
 *   # blackpony key file: secret, keep it mode 0600
 *   # created: 2026-11-21T00:00:00.000Z
 *   # noise public key: <base64>
 *   # fingerprint: <fingerprint>
 *   # age recipient: age1...
 *   blackpony-key-file: 1
 *   noise-static: <canonical base64 of the 32-byte X25519 private key>
 *   age-x25519: AGE-SECRET-KEY-1...
 *   age-hybrid: AGE-SECRET-KEY-PQ-1...
 *   noise-static-previous: <base64>     (0 to 2 times, after a key rotation)
 *
 * Lines end in LF (CRLF accepted). Blank lines and lines starting with `#` are ignored: the public
 * halves in the comments are for people, and are derived again on load. Every other line is a
 * field `name: value`. The first field is the format version, `blackpony-key-file: 1`; each of the
 * other three appears exactly once, in any order; `noise-static-previous` (the Noise keys this host
 * had before, newest first, which vouch for the current one in handshakes) up to twice; any other
 * field is an error. Errors name the line and never echo a value (a broken line may hold a secret).
 */
import { constants } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { base64 } from '@scure/base';
import { AgeError, generateHybridIdentity, generateX25519Identity, identityToRecipient, parseIdentity } from './age/index.js';
import { fingerprint } from './fingerprint.js';
import { X25519_KEY_LENGTH, x25519GenerateKeyPair, x25519PublicKey, type X25519KeyPair } from './primitives.js';

export const KEY_FILE_VERSION = '1';
/** Previous Noise static keys a key file keeps after rotations, newest first. */
export const MAX_PREVIOUS_NOISE_KEYS = 2;
/** A key file is about 0.5 KiB; anything much larger is not one. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;
/** Permission bits a key file must not have: any access by group or others. */
const GROUP_OR_OTHER_ACCESS = 0o077;

export interface Keys {
  /** The Noise static key pair (the public half derived from the private one). */
  noise: X25519KeyPair;
  ageX25519Identity: string;
  ageHybridIdentity: string;
  /** `age1...`, derived from ageX25519Identity. */
  ageX25519Recipient: string;
  /** `age1pq1...`, derived from ageHybridIdentity. */
  ageHybridRecipient: string;
  /** The Noise static keys this host had before, newest first (at most MAX_PREVIOUS_NOISE_KEYS). */
  previousNoise: X25519KeyPair[];
}

export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
  /**
   * @param reason what is wrong: about one line, or else a predicate on the file ("exists; ...")
   * @param line the 1-based line it is on, when it is about one line
   * @param source the file's path, or "key file" for text not read from a file
   */
  constructor(
    readonly reason: string,
    readonly line?: number,
    readonly source = 'key file',
  ) {
    super(line === undefined ? `${source} ${reason}` : `${source}: line ${line}: ${reason}`);
  }
}

/** Keys with the public halves derived from the secret ones. */
function keysFrom(noisePrivateKey: Uint8Array, ageX25519Identity: string, ageHybridIdentity: string, previousNoise: X25519KeyPair[] = []): Keys {
  return {
    noise: noiseKeyPair(noisePrivateKey),
    ageX25519Identity,
    ageHybridIdentity,
    ageX25519Recipient: identityToRecipient(ageX25519Identity),
    ageHybridRecipient: identityToRecipient(ageHybridIdentity),
    previousNoise,
  };
}

function noiseKeyPair(privateKey: Uint8Array): X25519KeyPair {
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
}

export function generateKeys(): Keys {
  return keysFrom(x25519GenerateKeyPair().privateKey, generateX25519Identity(), generateHybridIdentity());
}

/**
 * Fresh keys replacing `old`: old's Noise key becomes the newest previous key, its own previous
 * ones follow, the oldest beyond MAX_PREVIOUS_NOISE_KEYS dropped. The age identities are not kept:
 * mail is sealed per delivery, to the recipients the server announces in that very handshake.
 */
export function rotateKeys(old: Keys): Keys {
  const fresh = generateKeys();
  return { ...fresh, previousNoise: [old.noise, ...old.previousNoise].slice(0, MAX_PREVIOUS_NOISE_KEYS) };
}

export function serializeKeyFile(keys: Keys, created: Date = new Date()): string {
  return [
    '# blackpony key file: secret, keep it mode 0600',
    `# created: ${created.toISOString()}`,
    `# noise public key: ${base64.encode(keys.noise.publicKey)}`,
    `# fingerprint: ${fingerprint(keys.noise.publicKey)}`,
    `# age recipient: ${keys.ageX25519Recipient}`,
    ...keys.previousNoise.map((key) => `# previous noise public key: ${base64.encode(key.publicKey)} (${fingerprint(key.publicKey)})`),
    `blackpony-key-file: ${KEY_FILE_VERSION}`,
    `noise-static: ${base64.encode(keys.noise.privateKey)}`,
    `age-x25519: ${keys.ageX25519Identity}`,
    `age-hybrid: ${keys.ageHybridIdentity}`,
    ...keys.previousNoise.map((key) => `${PREVIOUS_FIELD}: ${base64.encode(key.privateKey)}`),
    '',
  ].join('\n');
}

const VERSION_FIELD = 'blackpony-key-file';
const KEY_FIELDS = ['noise-static', 'age-x25519', 'age-hybrid'] as const;
/** The only field that may repeat (up to MAX_PREVIOUS_NOISE_KEYS times). */
const PREVIOUS_FIELD = 'noise-static-previous';
type FieldName = typeof VERSION_FIELD | (typeof KEY_FIELDS)[number];
const FIELD_LINE = /^([a-z][a-z0-9-]{0,31}):[ \t]*(.*)$/;

interface Field {
  value: string;
  line: number;
}

function isFieldName(name: string): name is FieldName {
  return name === VERSION_FIELD || (KEY_FIELDS as readonly string[]).includes(name);
}

interface KeyFileFields {
  single: Map<FieldName, Field>;
  /** noise-static-previous, in file order. */
  previous: Field[];
}

/** The fields of a key file, after the line-level checks: version first, known names, each once but previous keys. */
function readFields(text: string, source: string): KeyFileFields {
  const fields = new Map<FieldName, Field>();
  const previous: Field[] = [];
  text.split('\n').forEach((rawLine, index) => {
    const lineNumber = index + 1;
    const line = rawLine.replace(/\r$/, '').replace(/^[ \t]+|[ \t]+$/g, '');
    if (line === '' || line.startsWith('#')) return;
    const match = FIELD_LINE.exec(line);
    const name = match?.[1];
    const value = match?.[2] ?? '';
    if (fields.size === 0) {
      if (name !== VERSION_FIELD) {
        throw new KeyFileError(`not a blackpony key file: expected "${VERSION_FIELD}: ${KEY_FILE_VERSION}" as the first field`, lineNumber, source);
      }
      if (value !== KEY_FILE_VERSION) {
        throw new KeyFileError(`unsupported key file version (this blackpony reads version ${KEY_FILE_VERSION})`, lineNumber, source);
      }
    }
    if (name === undefined) throw new KeyFileError('expected "name: value"', lineNumber, source);
    if (name === PREVIOUS_FIELD) {
      if (previous.length === MAX_PREVIOUS_NOISE_KEYS) {
        throw new KeyFileError(`more than ${MAX_PREVIOUS_NOISE_KEYS} "${PREVIOUS_FIELD}" fields`, lineNumber, source);
      }
      previous.push({ value, line: lineNumber });
      return;
    }
    if (!isFieldName(name)) throw new KeyFileError(`unknown field "${name}"`, lineNumber, source);
    const earlier = fields.get(name);
    if (earlier !== undefined) throw new KeyFileError(`duplicate field "${name}" (first on line ${earlier.line})`, lineNumber, source);
    fields.set(name, { value, line: lineNumber });
  });
  if (fields.size === 0) throw new KeyFileError(`is not a blackpony key file (no "${VERSION_FIELD}" field)`, undefined, source);
  return { single: fields, previous };
}

function noisePrivateKey(name: string, field: Field, source: string): Uint8Array {
  let key: Uint8Array;
  try {
    key = base64.decode(field.value);
  } catch {
    throw new KeyFileError(`${name}: not canonical base64`, field.line, source);
  }
  if (key.length !== X25519_KEY_LENGTH) {
    throw new KeyFileError(`${name}: expected ${X25519_KEY_LENGTH} bytes, got ${key.length}`, field.line, source);
  }
  return key;
}

/** The age identity in `field` when it is of the kind `prefix` names; the AgeError's text is dropped, it may quote the key. */
function ageIdentity(name: string, field: Field, prefix: string, kind: string, source: string): string {
  try {
    if (field.value.startsWith(prefix)) {
      parseIdentity(field.value);
      return field.value;
    }
  } catch (error) {
    if (!(error instanceof AgeError)) throw error;
  }
  throw new KeyFileError(`${name}: expected an age ${kind} identity (${prefix}...)`, field.line, source);
}

/**
 * Parses a key file's text. `source` names it in errors (its path). Throws KeyFileError with the
 * line number and reason.
 */
export function parseKeyFile(text: string, source = 'key file'): Keys {
  if (text.length > MAX_KEY_FILE_BYTES) throw new KeyFileError(`is larger than ${MAX_KEY_FILE_BYTES} bytes`, undefined, source);
  const fields = readFields(text, source);
  const field = (name: FieldName): Field => {
    const found = fields.single.get(name);
    if (found === undefined) throw new KeyFileError(`has no field "${name}"`, undefined, source);
    return found;
  };
  return keysFrom(
    noisePrivateKey('noise-static', field('noise-static'), source),
    ageIdentity('age-x25519', field('age-x25519'), 'AGE-SECRET-KEY-1', 'X25519', source),
    ageIdentity('age-hybrid', field('age-hybrid'), 'AGE-SECRET-KEY-PQ-1', 'hybrid post-quantum', source),
    fields.previous.map((previous) => noiseKeyPair(noisePrivateKey(PREVIOUS_FIELD, previous, source))),
  );
}

/**
 * Creates `path` holding `keys`, mode 0600. Never overwrites: O_EXCL refuses an existing file (and
 * an existing symbolic link, whose target is not followed).
 */
export async function writeKeyFile(path: string, keys: Keys): Promise<void> {
  let handle;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new KeyFileError('exists; refusing to overwrite', undefined, path);
    }
    throw error;
  }
  try {
    await handle.writeFile(serializeKeyFile(keys));
    await handle.sync();
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(path);
    throw error;
  }
}

function octalMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * Reads and parses the key file at `path`. Refuses a file that group or others may access, as ssh
 * does for private keys, and anything but a regular file.
 */
export async function loadKeyFile(path: string): Promise<Keys> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new KeyFileError(code === 'ENOENT' ? 'does not exist' : `cannot be opened (${code ?? String(error)})`, undefined, path);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new KeyFileError('is not a regular file', undefined, path);
    if ((stats.mode & GROUP_OR_OTHER_ACCESS) !== 0) {
      throw new KeyFileError(
        `is accessible by group or others (mode ${octalMode(stats.mode)}); a key file must be private: chmod 600 ${path}`,
        undefined,
        path,
      );
    }
    if (stats.size > MAX_KEY_FILE_BYTES) throw new KeyFileError(`is larger than ${MAX_KEY_FILE_BYTES} bytes`, undefined, path);
    return parseKeyFile(await handle.readFile('utf8'), path);
  } finally {
    await handle.close();
  }
}
