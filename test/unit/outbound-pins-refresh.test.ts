import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openPinStore, PIN_REFRESH_MS } from '../../src/outbound/pins.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';

const DAY = 86_400_000;
const T0 = new Date('2026-11-01T00:00:00.000Z');
const after = (ms: number): Date => new Date(T0.getTime() + ms);
const KEY = new Uint8Array(32).fill(1);

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await removeTempDir(dir);
});

async function store(): Promise<{ pins: Awaited<ReturnType<typeof openPinStore>>; file: string }> {
  const dir = await makeTempDir('pins-refresh');
  dirs.push(dir);
  return { pins: await openPinStore(dir), file: join(dir, 'pins', 'd.test.json') };
}

// A busy peer: one pin() per delivered message. Rewriting the file (lock, fsync, rename) each time
// cost the sender more CPU than sealing the message (bench/smtp.ts).
describe('pin store: refreshing a key', () => {
  it('leaves a key refreshed within PIN_REFRESH_MS as stored (no write), and says so in the returned pin', async () => {
    const { pins, file } = await store();
    await pins.pin('d.test', KEY, 30, T0);
    const written = (await stat(file)).mtimeMs;
    await new Promise((resolve) => setTimeout(resolve, 20));
    const pin = await pins.pin('d.test', KEY, 30, after(PIN_REFRESH_MS - 1000));
    expect((await stat(file)).mtimeMs).toBe(written);
    expect(pin.keys.map((k) => [k.lastSeen, k.expiresAt])).toEqual([[T0, after(30 * DAY)]]);
  });

  it('writes again once the key was last seen PIN_REFRESH_MS ago', async () => {
    const { pins } = await store();
    await pins.pin('d.test', KEY, 30, T0);
    await pins.pin('d.test', KEY, 30, after(PIN_REFRESH_MS));
    const pin = await pins.get('d.test', after(PIN_REFRESH_MS));
    expect(pin?.keys.map((k) => [k.firstSeen, k.lastSeen, k.expiresAt])).toEqual([[T0, after(PIN_REFRESH_MS), after(PIN_REFRESH_MS + 30 * DAY)]]);
  });

  it('writes at once when the new max-age would extend the expiry by PIN_REFRESH_MS or more', async () => {
    const { pins } = await store();
    await pins.pin('d.test', KEY, 30, T0);
    await pins.pin('d.test', KEY, 60, after(1000));
    expect((await pins.get('d.test', after(1000)))?.keys[0]?.expiresAt).toEqual(after(1000 + 60 * DAY));
  });

  it('writes at once when the new max-age shortens the expiry (a domain preparing to leave)', async () => {
    const { pins } = await store();
    await pins.pin('d.test', KEY, 30, T0);
    await pins.pin('d.test', KEY, 1, after(1000));
    expect((await pins.get('d.test', after(1000)))?.keys[0]?.expiresAt).toEqual(after(1000 + DAY));
  });

  it('writes a key that is not pinned yet, and one whose file was forgotten meanwhile', async () => {
    const { pins, file } = await store();
    await pins.pin('d.test', KEY, 30, T0);
    const other = new Uint8Array(32).fill(2);
    await pins.pin('d.test', other, 30, after(1000));
    expect((await pins.get('d.test', after(1000)))?.keys).toHaveLength(2);
    expect(await pins.forget('d.test')).toBe(true);
    await pins.pin('d.test', KEY, 30, after(2000));
    expect((await stat(file)).isFile()).toBe(true);
    expect((await pins.get('d.test', after(2000)))?.keys.map((k) => k.firstSeen)).toEqual([after(2000)]);
  });
});
