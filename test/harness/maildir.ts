import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface MaildirMessage {
  path: string;
  bytes: Buffer;
}

/** Delivered messages of a Maildir (new/ and cur/, not tmp/), oldest first; none if it does not exist yet. */
export async function maildirMessages(maildir: string): Promise<MaildirMessage[]> {
  const files: { path: string; mtimeMs: number }[] = [];
  for (const sub of ['new', 'cur']) {
    for (const name of await listIfPresent(join(maildir, sub))) {
      const path = join(maildir, sub, name);
      files.push({ path, mtimeMs: (await stat(path)).mtimeMs });
    }
  }
  files.sort((a, b) => a.mtimeMs - b.mtimeMs || a.path.localeCompare(b.path));
  return Promise.all(files.map(async ({ path }) => ({ path, bytes: await readFile(path) })));
}

async function listIfPresent(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
