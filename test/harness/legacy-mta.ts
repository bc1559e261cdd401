import { join } from 'node:path';
import { ComponentStartError, HarnessTimeoutError } from './errors.js';
import { maildirMessages, type MaildirMessage } from './maildir.js';
import { startProcess, type ManagedProcess } from './processes.js';
import { executable, type Requirement } from './requirements.js';
import { readSmtpGreeting } from './smtp-greeting.js';
import { removeTempDir } from './temp-dir.js';
import { waitFor } from './wait.js';

/**
 * What Exim (exim.ts), OpenSMTPD (opensmtpd.ts) and sendmail (sendmail.ts) share: where
 * .ci/legacy-mtas unpacked them (their Debian packages conflict with postfix, so they are never
 * installed), the two roles a test gives them, waiting for their greeting, and an instance's life (LegacyMtaInstance).
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
}

/** An unpacked binary: present once .ci/legacy-mtas has run. */
export function unpacked(name: string, path: string): Requirement {
  return executable(name, path, 'run .ci/legacy-mtas');
}

/** Resolves once `address:port` greets; rejects with the log when the process exits or never greets. */
export async function waitForGreeting(name: string, daemon: ManagedProcess, address: string, port: number, log: () => Promise<string>): Promise<void> {
  try {
    await waitFor(
      `${name}: SMTP greeting on ${address}:${port}`,
      async () => {
        if (daemon.status !== null) {
          throw new ComponentStartError(name, `exited (${JSON.stringify(daemon.status)}) before ${address}:${port} greeted`, daemon.output() + (await log()));
        }
        return readSmtpGreeting(port, address).catch(() => undefined);
      },
      { intervalMs: 50 },
    );
  } catch (error) {
    if (!(error instanceof HarnessTimeoutError)) throw error;
    throw new ComponentStartError(name, `no SMTP greeting on ${address}:${port} within ${error.timeoutMs} ms`, daemon.output() + (await log()));
  }
}

/**
 * One MTA in a temp directory on a loopback address, its daemon our child: what an Exim, an
 * OpenSMTPD and a sendmail instance do alike (start, wait for the greeting, read the Maildir,
 * stop). A subclass writes its configuration and folders (`install`) and says how its log is read.
 */
export abstract class LegacyMtaInstance {
  readonly port: number;
  readonly configFile: string;
  readonly maildir: string;
  protected daemon: ManagedProcess | undefined;

  protected constructor(
    readonly dir: string,
    port: number,
    readonly options: LegacyMtaOptions,
    configName: string,
  ) {
    this.port = port;
    this.configFile = join(dir, configName);
    this.maildir = join(dir, 'Maildir');
  }

  get address(): string {
    return this.options.address;
  }

  abstract readLog(): Promise<string>;

  /** The receiver's delivered messages (LF line ends), oldest first. */
  maildirMessages(): Promise<MaildirMessage[]> {
    return maildirMessages(this.maildir);
  }

  async stop(): Promise<void> {
    await this.daemon?.stop();
    await removeTempDir(this.dir);
  }

  /** The configuration, and the folders the daemon needs. */
  protected abstract install(): Promise<void>;

  /** Installs, runs `command` and waits for the greeting; on any failure stops and removes everything. */
  protected async launch(name: string, command: string, args: readonly string[]): Promise<void> {
    try {
      await this.install();
      this.daemon = await startProcess(`${name} (${this.address}:${this.port})`, command, args);
      await waitForGreeting(name, this.daemon, this.address, this.port, () => this.readLog());
    } catch (error) {
      await this.stop();
      throw error;
    }
  }
}
