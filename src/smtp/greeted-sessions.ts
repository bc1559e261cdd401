/**
 * A listener's sessions as an administrator counts them (the daemon's sessions_active and
 * sessions_total): each one greeted is opened once and closed once. smtp-server reports the close
 * of every connection, also one that never got its greeting (refused by a limit's 421, or gone
 * while its admission was decided); counted as a close, each would pull the gauge below the
 * sessions really open.
 */
export class GreetedSessions {
  private readonly open = new Set<string>();

  constructor(private readonly report: ((event: 'open' | 'close') => void) | undefined) {}

  /** smtp-server's onConnect: the session is greeted. */
  opened(id: string): void {
    this.open.add(id);
    this.report?.('open');
  }

  /** smtp-server's onClose: reported only for a session that was opened. */
  closed(id: string): void {
    if (this.open.delete(id)) this.report?.('close');
  }
}
