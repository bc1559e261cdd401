/**
 * Telling a supervisor when blackpony listens, so that Postfix is not started (or does not
 * deliver) before the ports it uses accept connections:
 * - systemd (Type=notify): READY=1 once every listener is bound, RELOADING=1 and READY=1 around a
 *   reload, STOPPING=1 at a stop (sd_notify(3)); nothing when NOTIFY_SOCKET is unset.
 * - any other supervisor: a ready file (`run --ready-file PATH`) holding the process id, written
 *   atomically once listening and removed when the stop begins; one a crashed run left behind is
 *   removed before listening.
 *
 * Node cannot send a unix datagram, so the messages go through systemd-notify(1), which systemd
 * ships wherever it sets NOTIFY_SOCKET; no native module, no other runtime. The sender is then a
 * child process, so the unit needs NotifyAccess=all. systemd-notify waits (BARRIER=1) until the
 * manager has read the message, so the manager still finds the child's cgroup. Messages go one at
 * a time, in order: RELOADING=1 never overtakes the READY=1 before it.
 */
import { spawn } from 'node:child_process';
import { rename, unlink, writeFile } from 'node:fs/promises';
import type { Logger } from '../log.js';

/** systemd-notify gives up on its barrier after 5 s; a helper still running after this is killed. */
const NOTIFY_TIMEOUT_MS = 10_000;

export interface ReadinessOptions {
  /** The ready file's path, or undefined for none. */
  readyFile?: string | undefined;
  logger: Logger;
  /** NOTIFY_SOCKET is read from here. */
  env?: NodeJS.ProcessEnv;
  /** The helper that sends one notification; systemd-notify from PATH unless a test says otherwise. */
  notifyCommand?: string;
}

export interface Readiness {
  /** Before listening: removes a ready file a previous run left, which would say "ready" too early. */
  starting(): Promise<void>;
  /** Every listener is bound (after start, and again after a reload). Throws when the ready file cannot be written. */
  ready(): Promise<void>;
  /** A reload begins; ready() follows when it is done (or failed). */
  reloading(): Promise<void>;
  /** The stop begins: no new connections from now on. */
  stopping(): Promise<void>;
}

export class ReadyFileError extends Error {
  override readonly name = 'ReadyFileError';
}

/** CLOCK_MONOTONIC in microseconds, which systemd wants beside RELOADING=1 (process.hrtime reads that clock). */
function monotonicMicroseconds(): string {
  return String(process.hrtime.bigint() / 1000n);
}

export function createReadiness(options: ReadinessOptions): Readiness {
  const { readyFile, logger } = options;
  const notifySocket = (options.env ?? process.env).NOTIFY_SOCKET;
  const notifyCommand = options.notifyCommand ?? 'systemd-notify';
  let queue = Promise.resolve();

  /** Sends `fields` through the helper; a failure is logged, never thrown: the daemon keeps serving. */
  const notify = (...fields: string[]): Promise<void> => {
    if (notifySocket === undefined || notifySocket === '') return Promise.resolve();
    queue = queue.then(
      () =>
        new Promise<void>((resolve) => {
          const child = spawn(notifyCommand, fields, {
            stdio: ['ignore', 'ignore', 'pipe'],
            timeout: NOTIFY_TIMEOUT_MS,
            env: { ...process.env, NOTIFY_SOCKET: notifySocket },
          });
          let stderr = '';
          child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
          const fail = (reason: string): void => {
            logger.error({ notify: fields, socket: notifySocket }, `readiness: ${notifyCommand} could not tell systemd ${fields[0]}: ${reason}`);
          };
          child.once('error', (error) => {
            fail(`${error.message} (it ships with systemd; the unit needs NotifyAccess=all)`);
            resolve();
          });
          child.once('close', (code, signal) => {
            if (code !== 0) fail(signal !== null ? `killed by ${signal}` : `exit ${code}${stderr.trim() === '' ? '' : `: ${stderr.trim()}`}`);
            resolve();
          });
        }),
    );
    return queue;
  };

  const removeReadyFile = async (): Promise<void> => {
    if (readyFile === undefined) return;
    try {
      await unlink(readyFile);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new ReadyFileError(`--ready-file ${readyFile}: cannot remove it: ${(error as Error).message}`);
    }
  };

  return {
    starting: removeReadyFile,
    async ready() {
      if (readyFile !== undefined) {
        // Renamed into place, so that whoever waits for it never reads it half written.
        const temporary = `${readyFile}.${process.pid}.tmp`;
        try {
          await writeFile(temporary, `${process.pid}\n`, { mode: 0o644 });
          await rename(temporary, readyFile);
        } catch (error) {
          await unlink(temporary).catch(() => undefined);
          throw new ReadyFileError(`--ready-file ${readyFile}: cannot write it: ${(error as Error).message}`);
        }
      }
      await notify('READY=1', 'STATUS=listening');
    },
    reloading: () => notify('RELOADING=1', `MONOTONIC_USEC=${monotonicMicroseconds()}`, 'STATUS=reloading'),
    async stopping() {
      await Promise.all([
        notify('STOPPING=1', 'STATUS=stopping: draining sessions in progress'),
        removeReadyFile().catch((error: unknown) => logger.error((error as Error).message)),
      ]);
    },
  };
}
