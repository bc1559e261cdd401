import { availableParallelism, loadavg } from 'node:os';
import { HarnessTimeoutError } from './errors.js';

/** How long a wait may last on a quiet machine before it fails (scaled by waitBound). */
const WAIT_BOUND_MS = 120_000;

/**
 * `ms` stretched by the machine's load: multiplied by the one-minute load average per core when
 * that is above 1 (other suites share the cores). For upper bounds and for timeouts that must
 * not fire on a slow but working peer; a quiet machine keeps `ms` as it is.
 */
export function loadScaled(ms: number): number {
  return Math.round(ms * Math.max(1, loadavg()[0]! / availableParallelism()));
}

/**
 * The upper bound of a wait in the tests (waitFor, commands, components starting). It exists only
 * so that a broken feature fails with a message instead of hanging: a wait ends at its event, so
 * a generous bound costs nothing when things work. `ms` is for the rare wait that is long even
 * on a quiet machine (50 MiB through two sites).
 */
export function waitBound(ms = WAIT_BOUND_MS): number {
  return loadScaled(ms);
}

export interface WaitOptions {
  /** The upper bound; waitBound() unless given. */
  timeoutMs?: number;
  intervalMs?: number;
  /** Collected only on timeout, to explain what was going on (e.g. a log tail). */
  diagnostics?: () => Promise<string> | string;
}

/**
 * Polls `probe` until it returns a value other than undefined; throws HarnessTimeoutError
 * naming `what` (with diagnostics) when that does not happen within the bound.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, options: WaitOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? waitBound();
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() >= deadline) {
      const diagnostics = options.diagnostics === undefined ? '' : await options.diagnostics();
      throw new HarnessTimeoutError(what, timeoutMs, diagnostics);
    }
    await sleep(options.intervalMs ?? 25);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
