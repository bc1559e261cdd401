/**
 * One message's end at Postfix at a time: a retry that comes while its first copy is being judged
 * (accepted-messages.ts beforeVerdict) waits for that verdict before it may pass its own end on.
 * Turns are taken per message identity (its key) and given in the order asked. In one process
 * they are kept here; with workers, the primary keeps them for all (src/daemon/
 * shared-verdict-turns.ts), as a retry may reach another worker than its first copy.
 */

export interface VerdictTurns {
  /**
   * Resolves once no transaction of `key` taken before this one still holds its turn, with the
   * function that ends this one's; or rejects when that cannot be known (the transaction then
   * gets a 4xx, and its sender retries).
   */
  take(key: string): Promise<() => void>;
}

/** The turns of one process. */
export class LocalVerdictTurns implements VerdictTurns {
  /** Per key, the end of the last turn given out. */
  private readonly last = new Map<string, Promise<void>>();

  async take(key: string): Promise<() => void> {
    const before = this.last.get(key) ?? Promise.resolve();
    let end = (): void => undefined;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const mine = before.then(() => ended);
    this.last.set(key, mine);
    await before;
    return () => {
      end();
      if (this.last.get(key) === mine) this.last.delete(key);
    };
  }
}
