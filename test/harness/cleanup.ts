import { stopAllProcesses } from './processes.js';
import { removeAllTempDirs } from './temp-dir.js';

/** For afterAll: stops every component the harness started and removes their directories. */
export async function stopAll(): Promise<void> {
  await stopAllProcesses();
  await removeAllTempDirs();
}
