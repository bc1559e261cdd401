import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateHybridIdentity, generateX25519Identity, identityToRecipient } from '../../src/crypto/age/index.js';
import { fingerprint } from '../../src/crypto/fingerprint.js';
import { KeyFileError, generateKeys, loadKeyFile, parseKeyFile, rotateKeys, serializeKeyFile, writeKeyFile, type Keys } from '../../src/crypto/keyfile.js';
import { x25519PublicKey } from '../../src/crypto/primitives.js';

const keys = generateKeys();
const text = serializeKeyFile(keys);
/** The field lines of `text`, by name. */
const line = (name: string): string => text.split('\n').find((l) => l.startsWith(`${name}:`))!;
const FIELD_LINES = ['blackpony-key-file: 1', line('noise-static'), line('age-x25519'), line('age-hybrid')];
/** The secret parts of the file, which no error message may quote. */
const SECRETS = [
  line('noise-static').slice('noise-static: '.length),
  keys.ageX25519Identity.slice('AGE-SECRET-KEY-1'.length),
  keys.ageHybridIdentity.slice('AGE-SECRET-KEY-PQ-1'.length),
];

function keyFileError(f: () => unknown): KeyFileError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(KeyFileError);
    return error as KeyFileError;
  }
  throw new Error('expected a KeyFileError');
}

/** Parsing `input` fails with `reason` on `lineNumber`, and the message quotes no secret. */
function rejects(input: string, reason: RegExp, lineNumber?: number): KeyFileError {
  const error = keyFileError(() => parseKeyFile(input));
  expect(error.reason).toMatch(reason);
  expect(error.line).toBe(lineNumber);
  expect(error.message).toBe(lineNumber === undefined ? `key file ${error.reason}` : `key file: line ${lineNumber}: ${error.reason}`);
  for (const secret of SECRETS) {
    for (let i = 0; i + 12 <= secret.length; i++) expect(error.message).not.toContain(secret.slice(i, i + 12));
  }
  return error;
}

describe('key file: generating and serializing', () => {
  it('derives every public half from the secrets', () => {
    expect(keys.noise.publicKey).toEqual(x25519PublicKey(keys.noise.privateKey));
    expect(keys.ageX25519Identity).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    expect(keys.ageHybridIdentity).toMatch(/^AGE-SECRET-KEY-PQ-1/);
    expect(keys.ageX25519Recipient).toBe(identityToRecipient(keys.ageX25519Identity));
    expect(keys.ageHybridRecipient).toBe(identityToRecipient(keys.ageHybridIdentity));
    expect(keys.ageHybridRecipient).toMatch(/^age1pq1/);
    const other = generateKeys();
    expect(other.noise.privateKey).not.toEqual(keys.noise.privateKey);
    expect(other.ageX25519Identity).not.toBe(keys.ageX25519Identity);
  });

  it('writes the documented format', () => {
    const created = new Date('2026-11-21T00:00:00Z');
    const noise = Buffer.from(keys.noise.publicKey).toString('base64');
    expect(serializeKeyFile(keys, created)).toBe(
      [
        '# blackpony key file: secret, keep it mode 0600',
        '# created: 2026-11-21T00:00:00.000Z',
        `# noise public key: ${noise}`,
        `# fingerprint: ${fingerprint(keys.noise.publicKey)}`,
        `# age recipient: ${keys.ageX25519Recipient}`,
        'blackpony-key-file: 1',
        `noise-static: ${Buffer.from(keys.noise.privateKey).toString('base64')}`,
        `age-x25519: ${keys.ageX25519Identity}`,
        `age-hybrid: ${keys.ageHybridIdentity}`,
        '',
      ].join('\n'),
    );
  });

  it('round-trips', () => {
    expect(parseKeyFile(text)).toEqual(keys);
  });
});

describe('key file: parsing', () => {
  it('ignores comments and blank lines, accepts CRLF and fields in any order after the version', () => {
    const shuffled = ['', '  # a comment', FIELD_LINES[0], '#', FIELD_LINES[3], '', FIELD_LINES[1], FIELD_LINES[2], ''].join('\r\n');
    expect(parseKeyFile(shuffled)).toEqual(keys);
    expect(parseKeyFile(FIELD_LINES.join('\n'))).toEqual(keys); // no final newline
  });

  it('derives the public halves on load instead of trusting the comments', () => {
    const liar = generateKeys();
    const lying = serializeKeyFile(liar)
      .split('\n')
      .filter((l) => l.startsWith('#'))
      .concat(FIELD_LINES)
      .join('\n');
    const loaded = parseKeyFile(lying);
    expect(loaded.noise.publicKey).toEqual(keys.noise.publicKey);
    expect(loaded.ageX25519Recipient).toBe(keys.ageX25519Recipient);
  });

  it('requires the version field first', () => {
    rejects('', /no "blackpony-key-file" field/);
    rejects('# only comments\n\n', /no "blackpony-key-file" field/);
    rejects([FIELD_LINES[1], FIELD_LINES[0]].join('\n'), /not a blackpony key file: expected "blackpony-key-file: 1" as the first field/, 1);
    // What age-keygen writes.
    rejects(`# created: 2026-01-01T00:00:00Z\n# public key: ${keys.ageX25519Recipient}\n${keys.ageX25519Identity}\n`, /not a blackpony key file/, 3);
    rejects(text.replace('blackpony-key-file: 1', 'blackpony-key-file: 2'), /unsupported key file version \(this blackpony reads version 1\)/, 6);
    rejects(text.replace('blackpony-key-file: 1', 'blackpony-key-file: 01'), /unsupported key file version/, 6);
  });

  it('rejects unknown, duplicate and missing fields with their line numbers', () => {
    rejects(`${text}comment: hello\n`, /^unknown field "comment"$/, 10);
    rejects(`${text}noise-public: x\n`, /^unknown field "noise-public"$/, 10);
    rejects(`${text}Age-X25519: x\n`, /^expected "name: value"$/, 10);
    rejects(`${text}${line('age-x25519')}\n`, /^duplicate field "age-x25519" \(first on line 8\)$/, 10);
    rejects(`${text}blackpony-key-file: 1\n`, /^duplicate field "blackpony-key-file" \(first on line 6\)$/, 10);
    for (const [index, name] of [
      [1, 'noise-static'],
      [2, 'age-x25519'],
      [3, 'age-hybrid'],
    ] as const) {
      rejects(FIELD_LINES.filter((_, i) => i !== index).join('\n'), new RegExp(`^has no field "${name}"$`));
    }
  });

  it('rejects lines that are not fields, without quoting them', () => {
    rejects(`${text}garbage\n`, /^expected "name: value"$/, 10);
    rejects(`${text}${keys.ageX25519Identity}\n`, /^expected "name: value"$/, 10);
    rejects(`${text}noise-static ${line('noise-static').slice(14)}\n`, /^expected "name: value"$/, 10);
  });

  it('rejects a noise-static that is not canonical base64 of 32 bytes', () => {
    const withNoise = (value: string) => text.replace(line('noise-static'), `noise-static: ${value}`);
    rejects(withNoise(Buffer.alloc(31, 1).toString('base64')), /^noise-static: expected 32 bytes, got 31$/, 7);
    rejects(withNoise(Buffer.alloc(33, 1).toString('base64')), /^noise-static: expected 32 bytes, got 33$/, 7);
    rejects(withNoise(''), /^noise-static: expected 32 bytes, got 0$/, 7);
    rejects(withNoise(line('noise-static').slice(14, -1)), /^noise-static: not canonical base64$/, 7);
    rejects(withNoise(line('noise-static').slice(14).replace(/\+/g, '-').replace(/\//g, '_').replace('=', '')), /^noise-static: not canonical base64$/, 7);
    rejects(withNoise('not base64 at all!'), /^noise-static: not canonical base64$/, 7);
  });

  it('rejects an age identity of the wrong kind, truncated or altered, without quoting it', () => {
    const x25519 = keys.ageX25519Identity;
    const hybrid = keys.ageHybridIdentity;
    const swapped = text.replace(`age-x25519: ${x25519}`, `age-x25519: ${hybrid}`).replace(`age-hybrid: ${hybrid}`, `age-hybrid: ${x25519}`);
    rejects(swapped, /^age-x25519: expected an age X25519 identity \(AGE-SECRET-KEY-1\.\.\.\)$/, 8);
    rejects(text.replace(x25519, x25519.slice(0, -1)), /^age-x25519: expected an age X25519 identity/, 8);
    rejects(text.replace(x25519, x25519.toLowerCase()), /^age-x25519: expected an age X25519 identity/, 8);
    rejects(text.replace(hybrid, hybrid.slice(0, -1)), /^age-hybrid: expected an age hybrid post-quantum identity \(AGE-SECRET-KEY-PQ-1\.\.\.\)$/, 9);
    rejects(text.replace(hybrid, `${hybrid}Q`), /^age-hybrid: expected an age hybrid post-quantum identity/, 9);
  });

  it('rejects every truncation', () => {
    const body = text.trimEnd();
    for (let length = 0; length < body.length; length++) {
      keyFileError(() => parseKeyFile(body.slice(0, length)));
    }
  });

  it('rejects every single-bit flip in an age identity, and throws only KeyFileError for any flip', () => {
    const start = text.indexOf('age-x25519:');
    for (let i = text.indexOf('blackpony-key-file'); i < text.length; i++) {
      for (let bit = 0; bit < 7; bit++) {
        const flipped = text.slice(0, i) + String.fromCharCode(text.charCodeAt(i) ^ (1 << bit)) + text.slice(i + 1);
        let parsed: Keys | null = null;
        try {
          parsed = parseKeyFile(flipped);
        } catch (error) {
          expect(error).toBeInstanceOf(KeyFileError);
        }
        // The Bech32 checksum catches every flip in the identities; base64 has no checksum, so a
        // flip inside noise-static may give another valid key, never the same one.
        if (i >= start) expect(parsed, `flip of bit ${bit} at ${i}`).toBeNull();
        else if (parsed !== null) expect(parsed.noise.privateKey).not.toEqual(keys.noise.privateKey);
      }
    }
  });

  it('rejects oversized input', () => {
    rejects(`${text}${'#'.repeat(64 * 1024)}\n`, /^is larger than 65536 bytes$/);
  });
});

describe('key file: previous Noise keys after a rotation', () => {
  const rotated = rotateKeys(keys);
  const rotatedText = serializeKeyFile(rotated);
  const previousLine = (key: Keys['noise']) => `noise-static-previous: ${Buffer.from(key.privateKey).toString('base64')}`;

  it('rotation makes fresh keys and keeps the old Noise key, newest first, at most two', () => {
    expect(keys.previousNoise).toEqual([]);
    expect(rotated.noise.privateKey).not.toEqual(keys.noise.privateKey);
    expect(rotated.ageX25519Identity).not.toBe(keys.ageX25519Identity);
    expect(rotated.previousNoise).toEqual([keys.noise]);
    const twice = rotateKeys(rotated);
    expect(twice.previousNoise).toEqual([rotated.noise, keys.noise]);
    expect(rotateKeys(twice).previousNoise).toEqual([twice.noise, rotated.noise]);
  });

  it('writes one noise-static-previous line per previous key, with its public half in a comment, and reads them back in order', () => {
    const twice = rotateKeys(rotated);
    const written = serializeKeyFile(twice);
    const lines = written.split('\n');
    expect(lines.slice(-3)).toEqual([previousLine(rotated.noise), previousLine(keys.noise), '']);
    expect(lines).toContain(
      `# previous noise public key: ${Buffer.from(rotated.noise.publicKey).toString('base64')} (${fingerprint(rotated.noise.publicKey)})`,
    );
    expect(parseKeyFile(written)).toEqual(twice);
    expect(parseKeyFile(rotatedText).previousNoise[0]!.publicKey).toEqual(keys.noise.publicKey);
    // Anywhere after the version field, like the other fields.
    const moved = ['blackpony-key-file: 1', previousLine(keys.noise), ...FIELD_LINES.slice(1)].join('\n');
    expect(parseKeyFile(moved).previousNoise).toEqual([keys.noise]);
  });

  it('rejects a third previous key, a bad value and a previous key before the version field', () => {
    const three = `${serializeKeyFile(rotateKeys(rotateKeys(rotated)))}${previousLine(keys.noise)}\n`;
    const lineCount = three.split('\n').length - 1;
    rejects(three.replace(/^# previous.*\n/gm, ''), /^more than 2 "noise-static-previous" fields$/, lineCount - 2);
    rejects(`${text}noise-static-previous: ${line('noise-static').slice(14, -1)}\n`, /^noise-static-previous: not canonical base64$/, 10);
    rejects(`${text}noise-static-previous: ${Buffer.alloc(31, 1).toString('base64')}\n`, /^noise-static-previous: expected 32 bytes, got 31$/, 10);
    rejects(`${text}noise-static-previous: \n`, /^noise-static-previous: expected 32 bytes, got 0$/, 10);
    rejects([previousLine(keys.noise), ...FIELD_LINES].join('\n'), /not a blackpony key file/, 1);
  });
});

describe('key file: files and permissions', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'blackpony-keyfile-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the file with mode 0600 and loads it back', async () => {
    const path = join(dir, 'keys');
    await writeKeyFile(path, keys);
    expect(statSync(path).mode & 0o7777).toBe(0o600);
    expect(parseKeyFile(readFileSync(path, 'utf8'))).toEqual(keys);
    expect(await loadKeyFile(path)).toEqual(keys);
  });

  it('refuses to overwrite an existing file (O_EXCL), leaving it untouched', async () => {
    const path = join(dir, 'existing');
    writeFileSync(path, 'precious', { mode: 0o600 });
    const error = await writeKeyFile(path, keys).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KeyFileError);
    expect((error as KeyFileError).message).toBe(`${path} exists; refusing to overwrite`);
    expect(readFileSync(path, 'utf8')).toBe('precious');
  });

  it('refuses to write through a symbolic link, even a dangling one', async () => {
    const target = join(dir, 'link-target');
    const link = join(dir, 'link');
    symlinkSync(target, link);
    await expect(writeKeyFile(link, keys)).rejects.toThrow(`${link} exists; refusing to overwrite`);
    expect(existsSync(target)).toBe(false);
  });

  it('refuses to load a file that group or others may access, naming the path, mode and fix', async () => {
    const path = join(dir, 'shared');
    await writeKeyFile(path, keys);
    for (const mode of [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601, 0o660]) {
      chmodSync(path, mode);
      const error = await loadKeyFile(path).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(KeyFileError);
      const octal = mode.toString(8).padStart(4, '0');
      expect((error as KeyFileError).message).toBe(`${path} is accessible by group or others (mode ${octal}); a key file must be private: chmod 600 ${path}`);
    }
    for (const mode of [0o600, 0o400]) {
      chmodSync(path, mode);
      expect(await loadKeyFile(path)).toEqual(keys);
    }
  });

  it('names the path when the file is missing, not a file, too large or malformed', async () => {
    await expect(loadKeyFile(join(dir, 'missing'))).rejects.toThrow(`${join(dir, 'missing')} does not exist`);
    const sub = join(dir, 'a-directory');
    mkdirSync(sub, { mode: 0o700 });
    await expect(loadKeyFile(sub)).rejects.toThrow(`${sub} is not a regular file`);
    const big = join(dir, 'big');
    writeFileSync(big, `${text}${'#'.repeat(70_000)}\n`, { mode: 0o600 });
    await expect(loadKeyFile(big)).rejects.toThrow(`${big} is larger than 65536 bytes`);
    const broken = join(dir, 'broken');
    writeFileSync(broken, `${text}extra: 1\n`, { mode: 0o600 });
    await expect(loadKeyFile(broken)).rejects.toThrow(`${broken}: line 10: unknown field "extra"`);
  });

  it('reads identities generated elsewhere by the age module', () => {
    const x25519 = generateX25519Identity();
    const hybrid = generateHybridIdentity();
    const loaded = parseKeyFile([FIELD_LINES[0], FIELD_LINES[1], `age-x25519: ${x25519}`, `age-hybrid: ${hybrid}`].join('\n'));
    expect(loaded.ageX25519Recipient).toBe(identityToRecipient(x25519));
    expect(loaded.ageHybridRecipient).toBe(identityToRecipient(hybrid));
  });
});
