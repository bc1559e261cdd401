/**
 * Keeps a log from flooding with one failure repeated, as when Postfix is down and every client
 * session hits it: one report per key and interval passes, and the next one to pass says how
 * many were held back in between. Keys are few (an endpoint and a failure kind), so are entries.
 */
export class RepeatLimiter {
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** How many reports of `key` were held back since the last one that passed; undefined to hold this one back too. */
  pass(key: string): number | undefined {
    const at = this.now();
    const last = this.last.get(key);
    if (last !== undefined && at - last.at < this.intervalMs) {
      last.held++;
      return undefined;
    }
    this.last.set(key, { at, held: 0 });
    return last?.held ?? 0;
  }
}
