/**
 * Crash-safe writes of the small files in the state directory (pins, XPONY sightings): the new
 * content goes to a temporary file `.<name>.<pid>.<random>.tmp` that is fsynced, renamed over
 * `<name>` (atomic) and the directory fsynced, so a reader sees the old file or the new one,
 * never a mix, and a crash leaves at most a stale temporary file (pins prune removes those).
 */
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from '../crypto/primitives.js';
import { isErrorCode } from '../error-message.js';

/** Replaces `directory/name` with `content` (mode 0600); the directory is made (0700) if missing. */
export async function writeStateFile(directory: string, name: string, content: string): Promise<void> {
  // The first state written may be a sighting, before any pin made the directory (file-lock.ts).
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const temporary = join(directory, `.${name}.${process.pid}.${Buffer.from(randomBytes(6)).toString('hex')}.tmp`);
  const file = await open(temporary, 'wx', 0o600);
  try {
    await keepDirectoryOwner(file, directory);
    await file.writeFile(content);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await rename(temporary, join(directory, name));
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  await syncDirectory(directory);
}

/**
 * An operator running `blackpony pins ...` as root must not leave files the daemon's own user
 * cannot read (it would defer mail to those domains): a new file gets the directory's owner.
 */
async function keepDirectoryOwner(file: FileHandle, directory: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const owner = await stat(directory);
  await file.chown(owner.uid, owner.gid);
}

/** Makes a rename or unlink in `directory` durable. */
export async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Deletes the temporary files of writers that crashed before their rename: those older than `staleMs` (no live write owns them). */
export async function removeStaleTemporaryFiles(directory: string, staleMs: number): Promise<void> {
  let files: string[];
  try {
    files = await readdir(directory);
  } catch (error) {
    if (isErrorCode(error, 'ENOENT')) return;
    throw error;
  }
  for (const file of files.filter((name) => name.startsWith('.') && name.endsWith('.tmp'))) {
    const path = join(directory, file);
    try {
      if (Date.now() - (await stat(path)).mtimeMs > staleMs) await unlink(path);
    } catch (error) {
      if (!isErrorCode(error, 'ENOENT')) throw error;
    }
  }
}
