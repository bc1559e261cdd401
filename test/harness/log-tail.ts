import { readFile } from 'node:fs/promises';

/** The last `lines` lines of a text file, or '' when it does not exist (yet). */
export async function readTail(path: string, lines = 40): Promise<string> {
  return lastLines(await readTextIfPresent(path), lines);
}

/** A whole text file, or '' when it does not exist (yet). */
export async function readTextIfPresent(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw error;
  }
}

function lastLines(text: string, lines: number): string {
  const all = text.trimEnd().split('\n');
  return all.slice(Math.max(0, all.length - lines)).join('\n');
}
