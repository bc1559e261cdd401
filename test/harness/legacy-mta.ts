import { ComponentStartError, HarnessTimeoutError } from './errors.js';
import type { ManagedProcess } from './processes.js';
import { executable, type Requirement } from './requirements.js';
import { readSmtpGreeting } from './smtp-greeting.js';
import { waitFor } from './wait.js';

/**
 * What Exim (exim.ts) and OpenSMTPD (opensmtpd.ts) share: where .ci/legacy-mtas unpacked them
 * (their Debian packages conflict with postfix, so they are never installed), the two roles a
 * test gives them, and waiting for their greeting.
 */
export const LEGACY_MTAS_ROOT = process.env.BLACKPONY_LEGACY_MTAS ?? '/opt/blackpony-legacy-mtas';

/**
 * A sender relays every message to one host and port (blackpony inbound), from its own address;
 * a receiver accepts mail for the given addresses only and stores it all in one Maildir.
 */
export type LegacyMtaRole = { kind: 'sender'; relayTo: { host: string; port: number } } | { kind: 'receiver'; mailboxes: readonly string[] };

export interface LegacyMtaOptions {
  /** The loopback address it listens on and, as a sender, connects from (127.0.0.N). */
  address: string;
  /** Default: a free port. */
  port?: number;
  /** Its name in greetings and EHLO. */
  hostName?: string;
  role: LegacyMtaRole;
  startTimeoutMs?: number;
}

/** An unpacked binary: present once .ci/legacy-mtas has run. */
export function unpacked(name: string, path: string): Requirement {
  return executable(name, path, 'run .ci/legacy-mtas');
}

/** Resolves once `address:port` greets; rejects with the log when the process exits or never greets. */
export async function waitForGreeting(name: string, daemon: ManagedProcess, address: string, port: number, timeoutMs: number, log: () => Promise<string>): Promise<void> {
  try {
    await waitFor(
      `${name}: SMTP greeting on ${address}:${port}`,
      async () => {
        if (daemon.status !== null) {
          throw new ComponentStartError(name, `exited (${JSON.stringify(daemon.status)}) before ${address}:${port} greeted`, daemon.output() + (await log()));
        }
        return readSmtpGreeting(port, address).catch(() => undefined);
      },
      { timeoutMs, intervalMs: 50 },
    );
  } catch (error) {
    if (!(error instanceof HarnessTimeoutError)) throw error;
    throw new ComponentStartError(name, `no SMTP greeting on ${address}:${port} within ${timeoutMs} ms`, daemon.output() + (await log()));
  }
}
