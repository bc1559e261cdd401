/** The accepted-messages store: what it remembers, for whom, across a restart, and for how long. */
import { randomBytes } from 'node:crypto';
import { appendFile, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { AcceptedMessages, type MessageIdentity } from '../../src/inbound/accepted-messages.js';
import { messageId } from '../../src/xpony/message-id.js';
import { runCommand } from '../harness/command.js';
import { makeTempDir, removeAllTempDirs } from '../harness/temp-dir.js';
import { bundleTypeScript } from '../harness/typescript-child.js';
import { keptIdentity } from './accepted-messages-open-child.js';

const DAY = 86_400_000;
const message: MessageIdentity = {
  peer: 'aaaa-bbbb',
  id: messageId('4Xk2Lw0Zbyz9sV', 'alice@a.test'),
  sender: 'alice@a.test',
  recipients: ['bob@b.test', 'carol@b.test'],
};

async function store(dir: string, now: () => number, options: { maxEntries?: number; errors?: Error[] } = {}): Promise<AcceptedMessages> {
  return AcceptedMessages.open({ dir, windowMs: 5 * DAY, maxEntries: options.maxEntries ?? 1000, now, onError: (error) => options.errors?.push(error) });
}

afterAll(removeAllTempDirs);

describe('AcceptedMessages', () => {
  it('knows a message from the moment it is remembered, before its line is on disk', async () => {
    const dir = await makeTempDir('accepted');
    const now = () => Date.parse('2026-12-04T12:00:00Z');
    const accepted = await store(dir, now);
    const written = accepted.remember(message, '2.0.0 Ok: queued as 4XkABC');
    // The retry of a client that lost our 250 can come while the append still waits.
    expect(await accepted.lookup(message)).toEqual({ at: now(), reply: '2.0.0 Ok: queued as 4XkABC' });
    await written;
    const restarted = await store(dir, now);
    expect((await restarted.lookup(message))?.reply).toBe('2.0.0 Ok: queued as 4XkABC');
    await Promise.all([accepted.close(), restarted.close()]);
  });

  it('remembers a message by peer, id, sender and recipients (in any order), and across a restart', async () => {
    const dir = await makeTempDir('accepted');
    const now = () => Date.parse('2026-12-04T12:00:00Z');
    const first = await store(dir, now);
    expect(await first.lookup(message)).toBeUndefined();
    await first.remember(message, '2.0.0 Ok: queued as 4XkABC');
    expect(await first.lookup({ ...message, recipients: ['carol@b.test', 'bob@b.test'] })).toEqual({ at: now(), reply: '2.0.0 Ok: queued as 4XkABC' });
    expect(await first.lookup({ ...message, peer: 'cccc-dddd' })).toBeUndefined();
    expect(await first.lookup({ ...message, recipients: ['bob@b.test'] })).toBeUndefined();
    expect(await first.lookup({ ...message, sender: 'mallory@a.test' })).toBeUndefined();
    expect(await first.lookup({ ...message, id: messageId('4Xk2Lw0Zbyz9sW', 'alice@a.test') })).toBeUndefined();
    await first.close();

    const restarted = await store(dir, now);
    expect((await restarted.lookup(message))?.reply).toBe('2.0.0 Ok: queued as 4XkABC');
    // The file names no address: only hashes.
    const text = await readFile(join(dir, '2026-12-04.log'), 'utf8');
    expect(text).not.toContain('b.test');
    await restarted.close();
  });

  it('answers for messages another process sharing the folder remembered (a worker), read as they come', async () => {
    const dir = await makeTempDir('accepted');
    let time = Date.parse('2026-12-04T23:59:00Z');
    const now = () => time;
    const [worker1, worker2] = [await store(dir, now), await store(dir, now)];
    await worker1.remember(message, '2.0.0 Ok: queued as 4XkABC');
    expect((await worker2.lookup(message))?.reply).toBe('2.0.0 Ok: queued as 4XkABC');
    // A line another process has only half written is read once it is whole.
    const other: MessageIdentity = { ...message, id: messageId('4Xk2Lw0Zbyz9sW', 'alice@a.test') };
    time += 120_000; // the next day's file
    const line = `${time} ${AcceptedMessages.key(other)} 2.0.0 Ok: queued as 4XkDEF\n`;
    await appendFile(join(dir, '2026-12-05.log'), line.slice(0, 20));
    expect(await worker2.lookup(other)).toBeUndefined();
    await appendFile(join(dir, '2026-12-05.log'), line.slice(20));
    expect((await worker2.lookup(other))?.reply).toBe('2.0.0 Ok: queued as 4XkDEF');
    await Promise.all([worker1.close(), worker2.close()]);
  });

  it('reads back none of its own lines, and still every line another process appended, before its own or between them', async () => {
    const dir = await makeTempDir('accepted');
    const now = (): number => Date.parse('2026-12-04T12:00:00Z');
    const [worker1, worker2] = [await store(dir, now), await store(dir, now)];
    const [first, second, third] = ['4Xk2Lw0Zbyz9s1', '4Xk2Lw0Zbyz9s2', '4Xk2Lw0Zbyz9s3'].map((id) => ({ ...message, id: messageId(id, 'alice@a.test') }));
    const probe = await open(join(dir, 'probe'), 'w');
    const read = vi.spyOn(Object.getPrototypeOf(probe) as { read(): Promise<unknown> }, 'read');
    await probe.close();
    try {
      await worker1.remember(first!, '2.0.0 Ok: queued as 1');
      read.mockClear();
      expect(await worker1.lookup(second!)).toBeUndefined();
      expect(read).not.toHaveBeenCalled();
      // worker2's line lands before worker1's next one: worker1 must not skip it as its own.
      await worker2.remember(second!, '2.0.0 Ok: queued as 2');
      await worker1.remember(third!, '2.0.0 Ok: queued as 3');
      read.mockClear(); // worker2 read the last octet of worker1's file as it opened the day
      expect((await worker1.lookup(second!))?.reply).toBe('2.0.0 Ok: queued as 2');
      expect(read).toHaveBeenCalledTimes(1);
      expect((await worker1.lookup(third!))?.reply).toBe('2.0.0 Ok: queued as 3');
      expect((await worker2.lookup(first!))?.reply).toBe('2.0.0 Ok: queued as 1');
      expect((await worker2.lookup(third!))?.reply).toBe('2.0.0 Ok: queued as 3');
    } finally {
      read.mockRestore();
      await Promise.all([worker1.close(), worker2.close()]);
    }
  });

  it("reads back none of its own lines while their write is under way, and finds another process's line of their length that came first", async () => {
    const dir = await makeTempDir('accepted');
    const at = Date.parse('2026-12-04T12:00:00Z');
    const errors: Error[] = [];
    const worker = await store(dir, () => at, { errors });
    const [first, mine, other, theirs, failing, later] = [
      '4Xk2Lw0Zbyz9s1',
      '4Xk2Lw0Zbyz9s2',
      '4Xk2Lw0Zbyz9s3',
      '4Xk2Lw0Zbyz9s4',
      '4Xk2Lw0Zbyz9s5',
      '4Xk2Lw0Zbyz9s6',
    ].map((id) => ({
      ...message,
      id: messageId(id, 'alice@a.test'),
    }));
    const probe = await open(join(dir, 'probe'), 'w');
    type Handle = typeof probe;
    const prototype = Object.getPrototypeOf(probe) as { read(): Promise<unknown>; appendFile(this: Handle, data: Buffer): Promise<void> };
    await probe.close();
    const appendFile = prototype.appendFile;
    // What happens around the store's next append: before its lines land, and after, before the store learns so.
    let around: { before?: () => Promise<void>; fail?: boolean; after?: () => void } = {};
    const append = vi.spyOn(prototype, 'appendFile').mockImplementation(async function (this: Handle, data: Buffer) {
      await around.before?.();
      if (around.fail === true) throw new Error('ENOSPC: no space left on device');
      await appendFile.call(this, data);
      around.after?.();
    });
    const read = vi.spyOn(prototype, 'read');
    try {
      await worker.remember(first!, '2.0.0 Ok: queued as 1'); // the day's file exists and is read
      // A lookup between the write and its end: it must wait for the write, not read the lines.
      let during: Promise<unknown> | undefined;
      around = { after: () => (during = worker.lookup(other!)) };
      read.mockClear();
      await worker.remember(mine!, '2.0.0 Ok: queued as 2');
      expect(await during).toBeUndefined();
      expect(read).not.toHaveBeenCalled();
      // Another process's line of the same length lands first: the lookup that then finds the file
      // grown by exactly our length must still read it once ours is written.
      const otherProcessAppends = (identity: MessageIdentity, reply: string) => async (): Promise<void> => {
        const otherProcess = await open(join(dir, '2026-12-04.log'), 'a');
        await appendFile.call(otherProcess, Buffer.from(`${at} ${AcceptedMessages.key(identity)} ${reply}\n`));
        await otherProcess.close();
        during = worker.lookup(identity);
      };
      around = { before: otherProcessAppends(theirs!, '2.0.0 Ok: queued as 4') };
      await worker.remember(other!, '2.0.0 Ok: queued as 3'); // a line of the same length
      expect(((await during) as { reply: string } | undefined)?.reply).toBe('2.0.0 Ok: queued as 4');
      // Our write fails after theirs landed: the waiting lookup goes on, and reads theirs.
      around = { before: otherProcessAppends(later!, '2.0.0 Ok: queued as 6'), fail: true };
      await worker.remember(failing!, '2.0.0 Ok: queued as 5');
      expect(errors.map((error) => error.message)).toEqual(['ENOSPC: no space left on device']);
      expect(((await during) as { reply: string } | undefined)?.reply).toBe('2.0.0 Ok: queued as 6');
    } finally {
      append.mockRestore();
      read.mockRestore();
      await worker.close();
    }
  });

  it("reads another process's lines from every day of the window since it opened, and answers none past it", async () => {
    const dir = await makeTempDir('accepted');
    let time = Date.parse('2026-12-01T12:00:00Z');
    const now = (): number => time;
    const [worker1, worker2] = [await store(dir, now), await store(dir, now)];
    await worker1.remember(message, '2.0.0 Ok: queued as 4XkABC');
    time += 4 * DAY; // still inside the 5-day window, three day files later
    expect((await worker2.lookup(message))?.reply).toBe('2.0.0 Ok: queued as 4XkABC');
    time += 2 * DAY; // past it
    expect(await worker2.lookup({ ...message, id: messageId('4Xk2Lw0Zbyz9sW', 'alice@a.test') })).toBeUndefined();
    expect(await worker2.lookup(message)).toBeUndefined();
    await Promise.all([worker1.close(), worker2.close()]);
  });

  it('passes over 1.5 MiB of damage without a line end, and reads the lines after it', async () => {
    const dir = await makeTempDir('accepted');
    const now = () => Date.parse('2026-12-04T12:00:00Z');
    const line = `${now()} ${AcceptedMessages.key(message)} 2.0.0 Ok: queued as 4XkABC\n`;
    await writeFile(join(dir, '2026-12-04.log'), `${'x'.repeat(1536 * 1024)}\n${line}`);
    const opened = await store(dir, now);
    expect((await opened.lookup(message))?.reply).toBe('2.0.0 Ok: queued as 4XkABC');
    await opened.close();
  });

  it('skips a line torn by a crash, and the next line written after it stays readable', async () => {
    const dir = await makeTempDir('accepted');
    const now = () => Date.parse('2026-12-04T12:00:00Z');
    await appendFile(join(dir, '2026-12-04.log'), `${now()} abcdefghij`);
    const first = await store(dir, now);
    await first.remember(message, '2.0.0 Ok');
    await first.close();
    const again = await store(dir, now);
    expect(again.size).toBe(1);
    expect((await again.lookup(message))?.reply).toBe('2.0.0 Ok');
    await again.close();
  });

  it('forgets after the window (deleting old days) and beyond the most entries, oldest first', async () => {
    const dir = await makeTempDir('accepted');
    let time = Date.parse('2026-12-01T12:00:00Z');
    const now = () => time;
    const first = await store(dir, now, { maxEntries: 2 });
    const other = (n: number): MessageIdentity => ({ ...message, id: messageId(`4Xk2Lw0Zbyz${n}`, message.sender) });
    await first.remember(message, '2.0.0 Ok');
    time += DAY;
    for (const n of [1, 2]) await first.remember(other(n), '2.0.0 Ok');
    expect(await first.lookup(message)).toBeUndefined();
    expect(await first.lookup(other(1))).toBeDefined();
    time += 4 * DAY + 1;
    expect(await first.lookup(other(1))).toBeDefined();
    time += DAY;
    expect(await first.lookup(other(1))).toBeUndefined();
    await first.remember(other(3), '2.0.0 Ok');
    await first.close();
    // 2026-12-01 is past the window entirely; 2026-12-02 still reaches into it.
    expect((await readdir(dir)).sort()).toEqual(['2026-12-02.log', '2026-12-07.log']);
    const restarted = await store(dir, now);
    expect(restarted.size).toBe(1);
    await restarted.close();
  });

  it('writes messages accepted together in one write and one fsync (a group commit), each on disk when it resolves', async () => {
    const dir = await makeTempDir('accepted');
    const now = (): number => Date.parse('2026-12-04T12:00:00Z');
    const accepted = await store(dir, now);
    const probe = await open(join(dir, 'probe'), 'w');
    const datasync = vi.spyOn(Object.getPrototypeOf(probe) as { datasync(): Promise<void> }, 'datasync');
    await probe.close();
    try {
      const messages = Array.from({ length: 20 }, (_, i) => ({ ...message, id: messageId(`4Xk2Lw0Zbyz9s${i}`, 'alice@a.test') }));
      await Promise.all(messages.map((m) => accepted.remember(m, '2.0.0 Ok')));
      expect(datasync).toHaveBeenCalledTimes(1);
      expect((await readFile(join(dir, '2026-12-04.log'), 'utf8')).split('\n')).toHaveLength(21);
      await accepted.remember(message, '2.0.0 Ok');
      expect(datasync).toHaveBeenCalledTimes(2);
      await accepted.close();
      const restarted = await store(dir, now);
      for (const m of [...messages, message]) expect((await restarted.lookup(m))?.reply).toBe('2.0.0 Ok');
      await restarted.close();
    } finally {
      datasync.mockRestore();
    }
  });

  it('reports a message it cannot write down, and resolves: Postfix has it, the client still hears 250', async () => {
    const dir = await makeTempDir('accepted');
    const errors: Error[] = [];
    const broken = await store(join(dir, 'gone'), () => Date.parse('2026-12-04T12:00:00Z'), { errors });
    await rm(join(dir, 'gone'), { recursive: true });
    await broken.remember(message, '2.0.0 Ok');
    expect(errors).toHaveLength(1);
    // This process still answers a retry of it; what is not on disk is gone after a restart.
    expect((await broken.lookup(message))?.reply).toBe('2.0.0 Ok');
  });

  it("opens a busy day's file in a small heap, and keeps its newest lines, also those across a read", async () => {
    const dir = await makeTempDir('accepted-busy');
    const now = Date.now();
    // Every line 100 octets, so the store's 1 MiB reads end 1,048,500 octets apart, each after
    // re-reading the 76 octets of the line that its previous read cut.
    const line = (at: number, key: string): string => `${at} ${key} 2.0.0 Ok: queued as ${'X'.repeat(21)}\n`;
    const filler = Array.from({ length: 10_485 }, (_, i) => line(now - 3_600_000 + i, randomBytes(32).toString('base64url').slice(0, 43))).join('');
    expect(filler.length).toBe(1_048_500);
    const kept = 1000;
    const last = Array.from({ length: kept }, (_, i) => line(now - 60_000 + i, AcceptedMessages.key(keptIdentity(i)))).join('');
    // 64 reads of filler, less 50 lines: the 65th read starts in the middle of the lines to keep.
    const day = join(dir, `${new Date(now).toISOString().slice(0, 10)}.log`);
    await writeFile(day, filler.repeat(64).slice(0, -5000) + last);
    const child = await bundleTypeScript('test/unit/accepted-messages-open-child.ts', await makeTempDir('accepted-child'));
    // 64 MiB of lines held whole (as a Buffer, its text and its lines) does not fit a 32 MiB heap.
    const opened = await runCommand(process.execPath, ['--max-old-space-size=32', child, dir, String(kept)]);
    expect(opened.stderr).toBe('');
    expect(JSON.parse(opened.stdout)).toEqual({ size: kept, found: kept });
  });
});
