/** Peak resident memory of a process, from /proc/PID/status (VmHWM), in MiB. */
import { readFile } from 'node:fs/promises';

export async function peakRssMib(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`/proc/${pid}/status: no VmHWM line`);
  return Number(kib) / 1024;
}
