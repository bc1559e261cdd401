import { spawn } from 'node:child_process';
import { chown, mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64 } from '@scure/base';
import { generateX25519Identity, identityToRecipient } from '../../src/crypto/age/index.js';
import { LOCK_STALE_MS } from '../../src/outbound/file-lock.js';
import { openPinStore, pinDomain, PinDomainError, PinFileCorruptError, PinStoreError } from '../../src/outbound/pins.js';
import { describeWith, ROOT } from '../harness/requirements.js';
import { systemUser } from '../harness/system-users.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { loadScaled, waitFor } from '../harness/wait.js';
import { bundleTypeScript } from '../harness/typescript-child.js';

const DAY = 86_400_000;
const T0 = new Date('2026-11-01T00:00:00.000Z');
const at = (days: number): Date => new Date(T0.getTime() + days * DAY);

function key(tag: number, index = 0): Uint8Array {
  const k = new Uint8Array(32);
  k[0] = tag;
  k[1] = index;
  return k;
}
const b64 = (k: Uint8Array): string => base64.encode(k);

let dirs: string[] = [];
async function stateDir(): Promise<string> {
  const dir = await makeTempDir('pins');
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs) await removeTempDir(dir);
  dirs = [];
});

describe('pin store', () => {
  it('persists pins across instances, one file per domain named by its A-label', async () => {
    const dir = await stateDir();
    await (await openPinStore(dir)).pin('Bücher.Example.', key(1), 30, T0);
    const again = await openPinStore(dir);
    const pin = await again.get('xn--bcher-kva.example', at(1));
    expect(pin?.domain).toBe('xn--bcher-kva.example');
    expect(pin?.keys.map((k) => b64(k.key))).toEqual([b64(key(1))]);
    expect(pin?.keys[0]).toMatchObject({ firstSeen: T0, lastSeen: T0, expiresAt: at(30) });
    expect(await readdir(join(dir, 'pins'))).toEqual(['xn--bcher-kva.example.json']);
  });

  it('refreshes a key on each success, keeping first-seen, and adds new keys beside it', async () => {
    const store = await openPinStore(await stateDir());
    await store.pin('d.test', key(1), 30, T0);
    await store.pin('d.test', key(1), 30, at(10));
    await store.pin('d.test', key(2), 30, at(20));
    const pin = await store.get('d.test', at(21));
    expect(pin?.keys.map((k) => [b64(k.key), k.firstSeen, k.lastSeen, k.expiresAt])).toEqual([
      [b64(key(1)), T0, at(10), at(40)],
      [b64(key(2)), at(20), at(20), at(50)],
    ]);
  });

  it('sees what another process wrote since its last read, and a file removed behind its back', async () => {
    const dir = await stateDir();
    const [mine, theirs] = [await openPinStore(dir), await openPinStore(dir)];
    await mine.pin('d.test', key(1), 30, T0);
    expect((await mine.get('d.test', at(1)))?.keys).toHaveLength(1);
    await theirs.pin('d.test', key(2), 30, at(1));
    expect((await mine.get('d.test', at(1)))?.keys.map((k) => b64(k.key))).toEqual([b64(key(1)), b64(key(2))]);
    await theirs.forget('d.test');
    expect(await mine.get('d.test', at(1))).toBeNull();
  });

  it('forgets keys max-age after they were last seen; get() then returns null', async () => {
    const store = await openPinStore(await stateDir());
    await store.pin('d.test', key(1), 10, T0);
    await store.pin('d.test', key(2), 30, at(5));
    expect((await store.get('d.test', at(11)))?.keys.map((k) => b64(k.key))).toEqual([b64(key(2))]);
    expect(await store.get('d.test', at(35))).toBeNull();
    expect(await store.get('never.test', T0)).toBeNull();
  });

  it('prune() drops expired keys and deletes pins left without keys', async () => {
    const dir = await stateDir();
    const store = await openPinStore(dir);
    await store.pin('old.test', key(1), 1, T0);
    await store.pin('mixed.test', key(1), 1, T0);
    await store.pin('mixed.test', key(2), 60, T0);
    await store.pin('new.test', key(3), 60, T0);
    expect(await store.prune(at(2))).toEqual(['old.test']);
    expect((await readdir(join(dir, 'pins'))).sort()).toEqual(['mixed.test.json', 'new.test.json']);
    const mixed = (await store.list()).find((l) => l.domain === 'mixed.test');
    expect(mixed !== undefined && 'pin' in mixed && mixed.pin.keys.map((k) => b64(k.key))).toEqual([b64(key(2))]);
  });

  it('prune() also deletes temporary files a crashed writer left, once stale, and not a live one', async () => {
    const dir = await stateDir();
    const store = await openPinStore(dir);
    await store.pin('d.test', key(1), 60, T0);
    const [stale, live] = ['.d.test.4242.aaaaaaaaaaaa.tmp', '.d.test.4243.bbbbbbbbbbbb.tmp'];
    for (const name of [stale, live]) await writeFile(join(dir, 'pins', name), '{"version":1');
    const old = new Date(Date.now() - LOCK_STALE_MS - 60_000);
    await utimes(join(dir, 'pins', stale), old, old);
    expect(await store.prune(at(1))).toEqual([]);
    expect((await readdir(join(dir, 'pins'))).sort()).toEqual([live, 'd.test.json']);
  });

  it('forget() deletes the pin, and says whether there was one', async () => {
    const store = await openPinStore(await stateDir());
    await store.pin('d.test', key(1), 30, T0);
    expect(await store.forget('D.TEST')).toBe(true);
    expect(await store.get('d.test', T0)).toBeNull();
    expect(await store.forget('d.test')).toBe(false);
  });

  it('list() is sorted and reports a corrupt file instead of hiding it', async () => {
    const dir = await stateDir();
    const store = await openPinStore(dir);
    expect(await store.list()).toEqual([]);
    await store.pin('b.test', key(1), 30, T0);
    await store.pin('a.test', key(2), 30, T0);
    await writeFile(join(dir, 'pins', 'c.test.json'), '{"version":1');
    const listing = await store.list();
    expect(listing.map((l) => l.domain)).toEqual(['a.test', 'b.test', 'c.test']);
    expect('error' in listing[2]! && listing[2].error).toBeInstanceOf(PinFileCorruptError);
  });

  it('reading creates nothing', async () => {
    const dir = await stateDir();
    const store = await openPinStore(join(dir, 'state'));
    expect(await store.get('d.test')).toBeNull();
    expect(await store.list()).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses domain names that are not plain host names (no path tricks)', async () => {
    const store = await openPinStore(await stateDir());
    for (const bad of [
      '../etc',
      'a/b.test',
      'a?b.test',
      'a#b.test',
      'a\\b.test',
      ' d.test',
      'd.test\n',
      '',
      '.',
      'a..test',
      '-a.test',
      'a_b.test',
      'x'.repeat(64) + '.test',
    ]) {
      await expect(store.pin(bad, key(1), 30, T0)).rejects.toBeInstanceOf(PinDomainError);
      await expect(store.get(bad)).rejects.toBeInstanceOf(PinDomainError);
    }
    expect(pinDomain('Example.ORG.')).toBe('example.org');
  });

  it('refuses a key of the wrong length and a non-positive max-age', async () => {
    const store = await openPinStore(await stateDir());
    await expect(store.pin('d.test', new Uint8Array(31), 30, T0)).rejects.toThrow(PinStoreError);
    await expect(store.pin('d.test', key(1), 0, T0)).rejects.toThrow(/max-age/);
    await expect(store.pin('d.test', key(1), Number.NaN, T0)).rejects.toThrow(/max-age/);
  });
});

describe('pin store: the sealed relay a pinned key announced', () => {
  const recipient = identityToRecipient(generateX25519Identity());

  it('is stored with the key, read back after a restart, and dropped when a later handshake does not announce it', async () => {
    const dir = await stateDir();
    const store = await openPinStore(dir);
    await store.pin('d.test', key(1), 30, T0, recipient);
    expect((await (await openPinStore(dir)).get('d.test', T0))?.keys[0]?.sealedRelayTo).toBe(recipient);
    expect(JSON.parse(await readFile(join(dir, 'pins', 'd.test.json'), 'utf8')).keys[0].sealedRelayTo).toBe(recipient);
    // Within the hour a refresh is skipped, but not one that changes the announcement.
    await store.pin('d.test', key(1), 30, new Date(T0.getTime() + 60_000));
    const pin = await (await openPinStore(dir)).get('d.test', T0);
    expect(pin?.keys[0]).not.toHaveProperty('sealedRelayTo');
    expect(pin?.keys[0]?.lastSeen).toEqual(new Date(T0.getTime() + 60_000));
  });

  it('a file with a sealedRelayTo that is not an age recipient is corrupt', async () => {
    const dir = await stateDir();
    const store = await openPinStore(dir);
    await store.pin('d.test', key(1), 30, T0, recipient);
    const path = join(dir, 'pins', 'd.test.json');
    const stored = JSON.parse(await readFile(path, 'utf8'));
    stored.keys[0].sealedRelayTo = 'age1forger';
    await writeFile(path, JSON.stringify(stored));
    await expect(store.get('d.test', T0)).rejects.toThrow(/key 1: sealedRelayTo: expected an age recipient/);
  });
});

describe('pin store: a corrupt pin file is an error, never "no pin"', () => {
  const good = (): Record<string, unknown> => ({
    version: 1,
    domain: 'd.test',
    keys: [{ key: b64(key(1)), firstSeen: T0.toISOString(), lastSeen: T0.toISOString(), expiresAt: at(30).toISOString() }],
  });
  const withKey = (change: Record<string, unknown>): Record<string, unknown> => ({ ...good(), keys: [{ ...(good().keys as object[])[0], ...change }] });
  const cases: [string, string, RegExp][] = [
    ['empty', '', /not valid JSON/],
    ['truncated', JSON.stringify(good()).slice(0, 40), /not valid JSON/],
    ['garbage', '\u0000\u00ff garbage', /not valid JSON/],
    ['an array', '[]', /expected a JSON object/],
    ['another version', JSON.stringify({ ...good(), version: 2 }), /unsupported version 2/],
    ['another domain', JSON.stringify({ ...good(), domain: 'evil.test' }), /names domain "evil.test"/],
    ['no keys', JSON.stringify({ ...good(), keys: [] }), /non-empty "keys"/],
    ['a short key', JSON.stringify(withKey({ key: base64.encode(new Uint8Array(31)) })), /key 1: expected 32 bytes, got 31/],
    ['bad base64', JSON.stringify(withKey({ key: '!!!' })), /key 1: not canonical base64/],
    ['a bad date', JSON.stringify(withKey({ expiresAt: 'tomorrow' })), /key 1: expiresAt: expected an ISO date/],
    ['a missing date', JSON.stringify(withKey({ lastSeen: undefined })), /key 1: lastSeen/],
    ['a repeated key', JSON.stringify({ ...good(), keys: [...(good().keys as object[]), ...(good().keys as object[])] }), /key 2: repeats/],
  ];
  for (const [what, text, reason] of cases) {
    it(`${what}: get() and pin() throw PinFileCorruptError; forget() clears it`, async () => {
      const dir = await stateDir();
      const store = await openPinStore(dir);
      await store.pin('d.test', key(1), 30, T0);
      expect(await store.get('d.test', T0)).not.toBeNull(); // read once, so rewritten in place below
      const path = join(dir, 'pins', 'd.test.json');
      await writeFile(path, text);
      const error = await store.get('d.test', T0).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(PinFileCorruptError);
      expect((error as PinFileCorruptError).reason).toMatch(reason);
      expect((error as Error).message).toContain('blackpony pins forget d.test');
      await expect(store.pin('d.test', key(2), 30, T0)).rejects.toBeInstanceOf(PinFileCorruptError);
      expect(await readFile(path, 'utf8')).toBe(text); // not overwritten by the failed pin
      expect(await store.forget('d.test')).toBe(true);
      expect(await store.get('d.test', T0)).toBeNull();
    });
  }

  it('the valid file the store writes parses back (bit flips in it do not pass silently)', async () => {
    const dir = await stateDir();
    const store = await openPinStore(dir);
    await store.pin('d.test', key(1), 30, T0);
    const path = join(dir, 'pins', 'd.test.json');
    const text = await readFile(path, 'utf8');
    expect(JSON.parse(text)).toEqual(good());
    // Flip the key's base64 to another valid key: parses (this is a different pin), but the domain field guards renames.
    await writeFile(join(dir, 'pins', 'e.test.json'), text);
    await expect(store.get('e.test', T0)).rejects.toThrow(/names domain "d.test", expected "e.test"/);
  });
});

describe('pin store: several processes', () => {
  let bundle: string;
  beforeAll(async () => {
    bundle = await bundleTypeScript('test/unit/outbound-pins-child.ts', await stateDir());
  });

  function child(dir: string, tag: number, count: number): Promise<string> {
    return new Promise((resolvePromise, reject) => {
      const process_ = spawn(process.execPath, [bundle, dir, 'd.test', String(tag), String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      process_.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      process_.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      process_.on('error', reject);
      process_.on('close', (code) => (code === 0 ? resolvePromise(output) : reject(new Error(`pins child exited ${code}: ${output}`))));
    });
  }

  it('two writers at once lose no key and leave a valid file and no temporary files', async () => {
    const dir = await stateDir();
    const count = 40;
    expect(await Promise.all([child(dir, 1, count), child(dir, 2, count)])).toEqual(['done\n', 'done\n']);
    const store = await openPinStore(dir);
    const pin = await store.get('d.test');
    const stored = new Set(pin?.keys.map((k) => b64(k.key)));
    const expected = [1, 2].flatMap((tag) => Array.from({ length: count }, (_, i) => b64(key(tag, i))));
    expect(stored).toEqual(new Set(expected));
    expect(await readdir(join(dir, 'pins'))).toEqual(['d.test.json']);
  });

  it('a writer SIGKILLed at any moment leaves the old file or the new one, never a broken one; its stale lock is broken', async () => {
    const dir = await stateDir();
    const store = await openPinStore(dir);
    await store.pin('d.test', key(9), 30);
    let killedMidWrite = 0;
    // Until a kill lands inside a write (lock or temporary file left behind); most do.
    for (const [round, delayMs] of [3, 17, 7, 23, 1].entries()) {
      if (killedMidWrite > 0) break;
      const writer = spawn(process.execPath, [bundle, dir, 'd.test', String(3 + round), '1000'], { stdio: 'ignore' });
      // Once it is writing (its first key is in the file), a little later.
      await waitFor('the writer writing', async () => ((await store.get('d.test'))?.keys.some((k) => k.key[0] === 3 + round) ? true : undefined));
      await new Promise((resolvePromise) => setTimeout(resolvePromise, delayMs));
      writer.kill('SIGKILL');
      await new Promise((resolvePromise) => writer.once('close', resolvePromise));
      // Whatever the moment: a pin file that parses, with the first key still in it.
      const pin = await store.get('d.test');
      expect(pin?.keys.map((k) => b64(k.key))).toContain(b64(key(9)));
      const names = await readdir(join(dir, 'pins'));
      if (names.some((name) => name.endsWith('.lock') || name.endsWith('.tmp'))) killedMidWrite++;
    }
    expect(killedMidWrite).toBeGreaterThan(0);
    // A lock left by the killed writer is broken once stale (LOCK_STALE_MS): the next write goes through.
    const started = performance.now();
    await store.pin('d.test', key(10), 30);
    expect(performance.now() - started).toBeLessThan(LOCK_STALE_MS + loadScaled(5_000));
    expect((await store.get('d.test'))?.keys.map((k) => b64(k.key))).toContain(b64(key(10)));
    expect((await readdir(join(dir, 'pins'))).filter((name) => !name.endsWith('.tmp'))).toEqual(['d.test.json']);
  });
});

describeWith([ROOT], 'pin store: run as root by the operator', () => {
  it("gives a file it writes the pin directory's owner, so the daemon's own user can still read it", async () => {
    const dir = await stateDir();
    await mkdir(join(dir, 'pins'), { mode: 0o700 });
    const nobody = systemUser('nobody');
    await chown(join(dir, 'pins'), nobody.uid, nobody.gid);
    await (await openPinStore(dir)).pin('owned.example', key(7), 30, T0);
    const written = await stat(join(dir, 'pins', 'owned.example.json'));
    expect([written.uid, written.gid]).toEqual([nobody.uid, nobody.gid]);
    expect(written.mode & 0o777).toBe(0o600);
  });
});
