/**
 * The performance targets of the end-to-end bench (bench/e2e.ts), the first bar and the later one
 * of each, and the CPU sums of an e2e row that they are judged on. The floor (bench/floor.ts)
 * reads the same rows from bench/results/latest.json to say what the ratio bar leaves blackpony.
 */

const KiB = 1024;
const MiB = 1024 * KiB;

export interface SizeTargets {
  size: number;
  /** e2e-xpony's msgs/s as a fraction of e2e-starttls's: at least this. */
  ratio: readonly [first: number, later: number];
  /** blackpony's CPU per message as a fraction of the two Postfixes' over STARTTLS: at most this. */
  cpuShare: readonly [first: number, later: number];
}

export const TARGETS: readonly SizeTargets[] = [
  { size: 4 * KiB, ratio: [0.8, 0.95], cpuShare: [0.5, 0.35] },
  { size: MiB, ratio: [0.8, 0.95], cpuShare: [0.8, 0.3] },
];

/** Peak RSS of each blackpony process, 50 MiB message included: at most this. */
export const RSS_TARGET_MIB = 150;

/** What an e2e row holds of CPU: ms per message of each process group (null: not part of the path). */
export interface CpuRow {
  cpu_ms_per_msg: Partial<Record<'postfix_a' | 'postfix_b' | 'blackpony_out' | 'blackpony_in', number | null>>;
}

export const blackponyCpu = (row: CpuRow): number => (row.cpu_ms_per_msg.blackpony_out ?? 0) + (row.cpu_ms_per_msg.blackpony_in ?? 0);
export const postfixCpu = (row: CpuRow): number => (row.cpu_ms_per_msg.postfix_a ?? 0) + (row.cpu_ms_per_msg.postfix_b ?? 0);

/**
 * The CPU per message blackpony's two daemons may spend for e2e-xpony to reach `ratio` of
 * e2e-starttls. It holds when both paths keep the machine's cores equally busy, so that the ratio
 * follows the CPU per message (the two were within 0.04 of each other in 16 runs of 2026-12-07):
 * the whole blackpony path may spend the STARTTLS Postfixes' CPU / `ratio`, of which its own two
 * Postfixes take their share first.
 */
export function blackponyBudget(starttls: CpuRow, xpony: CpuRow, ratio: number): number {
  return postfixCpu(starttls) / ratio - postfixCpu(xpony);
}
