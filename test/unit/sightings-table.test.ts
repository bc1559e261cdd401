/**
 * The XPONY sightings' file (src/outbound/sightings-table.ts): what is written, and that a
 * renewal that moves a sighting's end by less than RENEWAL_WRITTEN_AFTER_MS past the file's is not
 * written again (each write is two fsyncs, and every new session to a blackpony peer renews one).
 * Sharing between workers is tested in test/integration/transport-lookup.test.ts.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RENEWAL_WRITTEN_AFTER_MS, SIGHTINGS_FILE, SightingsTable } from '../../src/outbound/sightings-table.js';
import { makeTempDir, removeAllTempDirs } from '../harness/temp-dir.js';

const DAY = 86_400_000;

afterAll(removeAllTempDirs);

async function stored(dir: string): Promise<Record<string, number>> {
  return (JSON.parse(await readFile(join(dir, SIGHTINGS_FILE), 'utf8')) as { seen: Record<string, number> }).seen;
}

describe('SightingsTable', () => {
  it('writes a new sighting, one moved earlier and a removal at once, a renewal only once it moves the end by an hour', async () => {
    const dir = await makeTempDir('sightings');
    let time = Date.parse('2026-12-07T12:00:00Z');
    const table = await SightingsTable.open({ stateDir: dir, persist: true, now: () => time });
    table.apply({ domain: 'a.test', seenUntil: time + 7 * DAY });
    await table.saved();
    expect(await stored(dir)).toEqual({ 'a.test': time + 7 * DAY });
    const first = time + 7 * DAY;
    const written = (await stat(join(dir, SIGHTINGS_FILE))).mtimeMs;

    // Renewals within the hour: kept in memory, the file left as it is.
    for (const minutes of [1, 30, 59]) {
      time = Date.parse('2026-12-07T12:00:00Z') + minutes * 60_000;
      table.apply({ domain: 'a.test', seenUntil: time + 7 * DAY });
    }
    await table.saved();
    expect(await stored(dir)).toEqual({ 'a.test': first });
    expect((await stat(join(dir, SIGHTINGS_FILE))).mtimeMs).toBe(written);

    // An hour past what the file holds: written.
    time = first - 7 * DAY + RENEWAL_WRITTEN_AFTER_MS;
    table.apply({ domain: 'a.test', seenUntil: time + 7 * DAY });
    table.apply({ domain: 'b.test', seenUntil: time + 7 * DAY });
    await table.saved();
    expect(await stored(dir)).toEqual({ 'a.test': time + 7 * DAY, 'b.test': time + 7 * DAY });

    // Moved earlier (a shorter sighting_days after a reload): written at once.
    table.apply({ domain: 'a.test', seenUntil: time + DAY });
    await table.saved();
    expect(await stored(dir)).toEqual({ 'a.test': time + DAY, 'b.test': time + 7 * DAY });

    // Seen there no more: written at once.
    table.apply({ domain: 'b.test', seenUntil: null });
    await table.saved();
    expect(await stored(dir)).toEqual({ 'a.test': time + DAY });
  });

  it('takes the file it read as what it holds: after a restart a renewal within the hour is not written', async () => {
    const dir = await makeTempDir('sightings-restart');
    let time = Date.parse('2026-12-07T12:00:00Z');
    const before = await SightingsTable.open({ stateDir: dir, persist: true, now: () => time });
    before.apply({ domain: 'a.test', seenUntil: time + DAY });
    await before.saved();

    time += 10 * 60_000;
    const after = await SightingsTable.open({ stateDir: dir, persist: true, now: () => time });
    expect(after.has('a.test')).toBe(true);
    after.apply({ domain: 'a.test', seenUntil: time + DAY });
    await after.saved();
    expect(await stored(dir)).toEqual({ 'a.test': time - 10 * 60_000 + DAY });
    // A sighting the file does not hold is written.
    after.apply({ domain: 'c.test', seenUntil: time + DAY });
    await after.saved();
    expect(Object.keys(await stored(dir)).sort()).toEqual(['a.test', 'c.test']);
  });
});
