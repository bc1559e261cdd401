/** A started daemon, as its caller (run.ts, the workers' reports) sees it. */
import type { Config } from './config.js';

export interface Daemon {
  readonly addresses: { inbound: string[]; outbound: string[]; transportLookup: string | undefined; metrics: string | undefined };
  /**
   * Applies a new configuration: the key file and every setting but those that need a restart
   * (restartOnlyChanges). Inbound sessions in progress keep their settings; on the outbound side
   * each delivery from then on uses the new ones. When the key file or a TLS file cannot be read,
   * nothing changes and the reason is logged. The log level is the caller's (run.ts).
   */
  reload(next: Config): Promise<void>;
  /** Stops accepting connections and waits for sessions in progress (each side's bound: 30 s). */
  stop(): Promise<void>;
}
