/**
 * How each `npm run bench` program runs: its main function, then, whatever happened, every
 * process and temporary directory the harness started is cleaned up; a failure prints its stack
 * and sets a non-zero exit status.
 */
import { stopAllProcesses } from '../test/harness/processes.js';
import { removeAllTempDirs } from '../test/harness/temp-dir.js';

export function runBench(main: () => Promise<void>): void {
  main()
    .catch((error: unknown) => {
      console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
      process.exitCode = 1;
    })
    .finally(async () => {
      await stopAllProcesses();
      await removeAllTempDirs();
    });
}
