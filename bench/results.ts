/**
 * bench/results/latest.json: the rows of every `npm run bench` program in one file. Each program
 * replaces its own rows and keeps the others', so the end-to-end rows and the smtp-sink rows of
 * one `npm run bench` sit side by side.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Where the rows are. */
export const RESULTS_FILE = join(import.meta.dirname, '..', '..', 'bench', 'results', 'latest.json');

export interface ResultRow {
  scenario: string;
}

/** Every row in the file (none when there is no file yet). */
export async function readRows(): Promise<ResultRow[]> {
  const text = await readFile(RESULTS_FILE, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '[]';
    throw error;
  });
  return JSON.parse(text) as ResultRow[];
}

/** Writes `rows` in place of the rows `owned` picks from the file; resolves with the file's path. */
export async function saveRows(rows: readonly ResultRow[], owned: (row: ResultRow) => boolean): Promise<string> {
  const kept = (await readRows()).filter((row) => !owned(row));
  await mkdir(join(RESULTS_FILE, '..'), { recursive: true });
  await writeFile(RESULTS_FILE, `${JSON.stringify([...kept, ...rows], null, 2)}\n`);
  return RESULTS_FILE;
}
