/**
 * A lock file per name in a directory, for read-merge-write updates shared by several processes:
 * created with O_EXCL, removed after the update. A lock older than LOCK_STALE_MS is taken to be
 * left by a crashed process and broken; a process that stalls longer than that while holding the
 * lock can lose its update (the race window).
 */
import { mkdir, open, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrorCode } from '../error-message.js';

export const LOCK_STALE_MS = 10_000;
const LOCK_WAIT_MS = 15_000;
const LOCK_RETRY_MS = 10;

export class FileLockError extends Error {
  override readonly name = 'FileLockError';
}

/** Runs `update` holding `directory/.<name>.lock` (the directory is made, mode 0700, if need be). */
export async function withFileLock<T>(directory: string, name: string, update: () => Promise<T>): Promise<T> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const lock = join(directory, `.${name}.lock`);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(lock, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      break;
    } catch (error) {
      if (!isErrorCode(error, 'EEXIST')) throw error;
    }
    await breakStaleLock(lock);
    if (Date.now() > deadline) throw new FileLockError(`lock ${lock} held for over ${LOCK_WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS));
  }
  try {
    return await update();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

async function breakStaleLock(lock: string): Promise<void> {
  try {
    const info = await stat(lock);
    if (Date.now() - info.mtimeMs > LOCK_STALE_MS) await unlink(lock);
  } catch (error) {
    if (!isErrorCode(error, 'ENOENT')) throw error;
  }
}
