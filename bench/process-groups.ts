/**
 * CPU time and peak RSS of a group of processes: a Postfix master with every daemon it forks, or a
 * blackpony daemon with any processes it starts. Exited processes count too (Postfix's smtpd,
 * cleanup and smtp processes come and go during a run).
 *
 * Where the kernel offers a writable cgroup v2 hierarchy (/sys/fs/cgroup, or /sys/fs/cgroup/unified
 * on a hybrid system), each group is a cgroup of its own, whose cpu.stat counts every process that
 * was ever in it. Otherwise the group is the process tree under its root, read from /proc: the
 * user and system time of every live process plus the time of the children each one reaped
 * (cutime, cstime), which is exact as long as the root lives and reaps its children, as master(8)
 * does.
 */
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { peakRssMib } from '../test/harness/peak-rss.js';
import { waitFor } from '../test/harness/wait.js';

/** Starts a new peak-RSS window (proc(5): writing 5 to clear_refs resets VmHWM to the current RSS). */
async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5');
}

/** /proc/PID/stat counts CPU time in clock ticks; 100 per second on Linux (USER_HZ). */
const TICKS_PER_SECOND = 100;
const CGROUP_V2_MOUNTS = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];
const REMOVE_WAIT_MS = 10_000;

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, in ticks. */
  ticks: number;
}

async function readStat(pid: number): Promise<ProcStat | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // Fields after the command name (which may hold spaces): ppid is field 4, utime..cstime 14..17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pid, ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]) };
}

/** Every live process under `root` (root included), from one pass over /proc. */
async function processTree(root: number): Promise<ProcStat[]> {
  const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number);
  const stats = (await Promise.all(pids.map(readStat))).filter((s): s is ProcStat => s !== undefined);
  const children = new Map<number, ProcStat[]>();
  for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const tree = stats.filter((s) => s.pid === root);
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]!.pid) ?? []));
  return tree;
}

/** The first cgroup v2 hierarchy where this process may create a group, or undefined. */
async function writableCgroupV2(): Promise<string | undefined> {
  for (const mount of CGROUP_V2_MOUNTS) {
    const probe = join(mount, `blackpony-bench-probe-${process.pid}`);
    const made = await readFile(join(mount, 'cgroup.controllers'), 'utf8').then(
      () =>
        mkdir(probe).then(
          () => true,
          () => false,
        ),
      () => false,
    );
    if (made) {
      await rmdir(probe);
      return mount;
    }
  }
  return undefined;
}

let cgroupMount: Promise<string | undefined> | undefined;

export interface GroupReading {
  cpuSeconds: number;
  /** The highest peak RSS (VmHWM) of the group's live processes since resetPeaks(), in MiB. */
  peakRssMib: number;
}

export class ProcessGroup {
  private constructor(
    readonly name: string,
    private readonly root: number,
    private readonly cgroup: string | undefined,
  ) {}

  /** The group of `root` and every process it has started or will start. */
  static async of(name: string, root: number): Promise<ProcessGroup> {
    const mount = await (cgroupMount ??= writableCgroupV2());
    if (mount === undefined) return new ProcessGroup(name, root, undefined);
    const cgroup = join(mount, `blackpony-bench-${process.pid}-${name}`);
    await mkdir(cgroup);
    // Children forked from now on are born in the cgroup; those already running are moved.
    for (const s of await processTree(root)) await writeFile(join(cgroup, 'cgroup.procs'), String(s.pid)).catch(() => undefined);
    return new ProcessGroup(name, root, cgroup);
  }

  /** How CPU time is counted, for the bench's report. */
  get accounting(): string {
    return this.cgroup === undefined ? '/proc process tree' : `cgroup ${this.cgroup}`;
  }

  private async pids(): Promise<number[]> {
    if (this.cgroup === undefined) return (await processTree(this.root)).map((s) => s.pid);
    return (await readFile(join(this.cgroup, 'cgroup.procs'), 'utf8'))
      .split('\n')
      .filter((line) => line !== '')
      .map(Number);
  }

  async resetPeaks(): Promise<void> {
    await Promise.all((await this.pids()).map((pid) => resetPeak(pid).catch(() => undefined)));
  }

  async read(): Promise<GroupReading> {
    const peaks = await Promise.all((await this.pids()).map((pid) => peakRssMib(pid).catch(() => 0)));
    return { cpuSeconds: await this.cpuSeconds(), peakRssMib: Math.max(0, ...peaks) };
  }

  private async cpuSeconds(): Promise<number> {
    if (this.cgroup === undefined) return (await processTree(this.root)).reduce((sum, s) => sum + s.ticks, 0) / TICKS_PER_SECOND;
    const usec = /^usage_usec (\d+)$/m.exec(await readFile(join(this.cgroup, 'cpu.stat'), 'utf8'))?.[1];
    if (usec === undefined) throw new Error(`${this.cgroup}/cpu.stat: no usage_usec line`);
    return Number(usec) / 1e6;
  }

  /**
   * Removes the cgroup once its processes have exited (a stopped master's children leave a moment
   * after it); one still populated after REMOVE_WAIT_MS is left, with a warning naming it.
   */
  async remove(): Promise<void> {
    const cgroup = this.cgroup;
    if (cgroup === undefined) return;
    const empty = async (): Promise<true | undefined> => ((await readFile(join(cgroup, 'cgroup.events'), 'utf8')).includes('populated 0') ? true : undefined);
    const emptied = await waitFor(`${cgroup} empty`, empty, { timeoutMs: REMOVE_WAIT_MS }).then(
      () => true,
      () => false,
    );
    if (emptied) await rmdir(cgroup);
    else console.error(`bench: ${cgroup} still has processes after ${REMOVE_WAIT_MS} ms; left in place`);
  }
}
