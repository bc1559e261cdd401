import { HarnessTimeoutError } from './errors.js';

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Collected only on timeout, to explain what was going on (e.g. a log tail). */
  diagnostics?: () => Promise<string> | string;
}

/**
 * Polls `probe` until it returns a value other than undefined; throws HarnessTimeoutError
 * naming `what` (with diagnostics) when that does not happen within the time limit.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  options: WaitOptions,
): Promise<T> {
  const deadline = performance.now() + options.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() >= deadline) {
      const diagnostics = options.diagnostics === undefined ? '' : await options.diagnostics();
      throw new HarnessTimeoutError(what, options.timeoutMs, diagnostics);
    }
    await sleep(options.intervalMs ?? 25);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
