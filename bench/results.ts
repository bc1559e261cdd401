/**
 * bench/results/latest.json: the rows of every `npm run bench` program in one file. Each program
 * replaces its own rows and keeps the others', so the end-to-end rows and the smtp-sink rows of
 * one `npm run bench` sit side by side.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const RESULTS = join(import.meta.dirname, '..', '..', 'bench', 'results', 'latest.json');

export interface ResultRow {
  scenario: string;
}

/** Writes `rows` in place of the rows `owned` picks from the file; resolves with the file's path. */
export async function saveRows(rows: readonly ResultRow[], owned: (row: ResultRow) => boolean): Promise<string> {
  const text = await readFile(RESULTS, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '[]';
    throw error;
  });
  const kept = (JSON.parse(text) as ResultRow[]).filter((row) => !owned(row));
  await mkdir(join(RESULTS, '..'), { recursive: true });
  await writeFile(RESULTS, `${JSON.stringify([...kept, ...rows], null, 2)}\n`);
  return RESULTS;
}
