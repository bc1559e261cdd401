/**
 * Interoperability with the reference age CLI (Debian's age 1.1.1, Go; X25519 only): files we seal
 * open byte-exact with `age -d`, files `age -e` seals (binary and `-a` armored) open byte-exact here.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AGE, describeWith } from '../harness/requirements.js';
import { generateX25519Identity, identityToRecipient, open, seal } from '../../src/crypto/age/index.js';

const SIZES = [0, 1, 65536, 65537, 1_048_577];

function age(args: string[], input: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile('/usr/bin/age', args, { encoding: 'buffer', maxBuffer: 8 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`age ${args.join(' ')}: ${error.message}: ${stderr.toString()}`));
      else resolve(stdout);
    });
    child.stdin?.end(input);
  });
}

describeWith([AGE], 'age interop with the age CLI', () => {
  let directory: string;
  let keyFile: string;
  const identity = generateX25519Identity();
  const recipient = identityToRecipient(identity);

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'blackpony-age-'));
    keyFile = join(directory, 'key.txt');
    await writeFile(keyFile, `# test key\n${identity}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  for (const armor of [false, true]) {
    const form = armor ? 'armored' : 'binary';

    it(`we seal (${form}), age -d opens byte-exact: ${SIZES.join(', ')} bytes`, async () => {
      for (const size of SIZES) {
        const plaintext = randomBytes(size);
        const file = await seal(plaintext, [recipient], { armor });
        expect((await age(['-d', '-i', keyFile], file)).equals(plaintext), `${size} bytes`).toBe(true);
      }
    });

    it(`age -e ${armor ? '-a ' : ''}seals, we open byte-exact: ${SIZES.join(', ')} bytes`, async () => {
      for (const size of SIZES) {
        const plaintext = randomBytes(size);
        const file = await age(['-e', ...(armor ? ['-a'] : []), '-r', recipient], plaintext);
        expect(file.subarray(0, 10).toString()).toBe(armor ? '-----BEGIN' : 'age-encryp');
        expect(Buffer.from(await open(file, [identity])).equals(plaintext), `${size} bytes`).toBe(true);
      }
    });
  }

  it('we seal armored with CRLF line ends (as a sealed message carries it), age -d opens byte-exact', async () => {
    for (const size of SIZES) {
      const plaintext = randomBytes(size);
      const file = Buffer.from(await seal(plaintext, [recipient], { armor: true, armorLineEnding: 'crlf' }));
      expect(file.toString('latin1')).toMatch(/^-----BEGIN AGE ENCRYPTED FILE-----\r\n([A-Za-z0-9+/=]{1,64}\r\n)+-----END AGE ENCRYPTED FILE-----\r\n$/);
      expect((await age(['-d', '-i', keyFile], file)).equals(plaintext), `${size} bytes`).toBe(true);
    }
  });

  it('age -d refuses a file we sealed to another key, and we refuse one age sealed to another key', async () => {
    const other = generateX25519Identity();
    const ours = await seal(randomBytes(100), [identityToRecipient(other)]);
    await expect(age(['-d', '-i', keyFile], ours)).rejects.toThrow(/no identity matched/);
    const theirs = await age(['-e', '-r', identityToRecipient(other)], randomBytes(100));
    await expect(open(theirs, [identity])).rejects.toMatchObject({ name: 'AgeError', kind: 'no-match' });
  });
});
