/** Resident memory of a process, from /proc/PID/status, in MiB: its peak (VmHWM), and the peak set back to now. */
import { readFile, writeFile } from 'node:fs/promises';

export async function peakRssMib(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`/proc/${pid}/status: no VmHWM line`);
  return Number(kib) / 1024;
}

/**
 * Sets the process's peak back to its current resident memory (proc(5): "5" to clear_refs, Linux
 * 4.0 and later), so that peakRssMib measures what happens from now on; resolves with that value.
 */
export async function resetPeakRssMib(pid: number): Promise<number> {
  await writeFile(`/proc/${pid}/clear_refs`, '5');
  return peakRssMib(pid);
}
