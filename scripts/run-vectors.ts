/**
 * `npm run vectors -- FILE [--verbose]`: runs a Noise test-vector file (cacophony/snow JSON format)
 * and prints "N passed, N failed, N skipped" as its last line. Exit status 1 when any vector failed,
 * 2 when the file cannot be read. Vectors naming an unsupported pattern, DH, cipher, hash or
 * modifier are skipped.
 */
import { readFileSync } from 'node:fs';
import { parseVectorFile, runVector, summarize } from './noise-vectors.js';

function main(args: string[]): number {
  const verbose = args.includes('--verbose');
  const files = args.filter((a) => a !== '--verbose');
  const [file] = files;
  if (file === undefined || files.length !== 1) {
    console.error('usage: run-vectors FILE [--verbose]');
    return 2;
  }
  let vectors;
  try {
    vectors = parseVectorFile(readFileSync(file, 'utf8'));
  } catch (error) {
    console.error(`${file}: ${(error as Error).message}`);
    return 2;
  }
  const outcomes = vectors.map(runVector);
  for (const outcome of outcomes) {
    if (outcome.status === 'failed') console.log(`FAIL ${outcome.name}: ${outcome.reason}`);
    else if (verbose) console.log(outcome.status === 'skipped' ? `skip ${outcome.name}: ${outcome.reason}` : `ok   ${outcome.name}`);
  }
  const { passed, failed, skipped } = summarize(outcomes);
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  return failed > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
