import { spawn, type ChildProcess } from 'node:child_process';
import { ComponentStartError } from './errors.js';
import { guardProcessGroup, releaseProcessGroup } from './orphan-guard.js';

/**
 * Every process the harness starts runs in its own process group (detached), is tracked here,
 * and is killed with its whole group: by stop(), by stopAllProcesses(), when this process exits,
 * and by the orphan guard when this process dies without running exit handlers.
 */

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ProcessOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  input?: string | Buffer;
}

const OUTPUT_LIMIT = 512 * 1024;
/** After 'exit', how long to wait for the pipes to drain (daemon children may hold them open). */
const DRAIN_AFTER_EXIT_MS = 300;
const DEFAULT_STOP_GRACE_MS = 5_000;

const running = new Set<ManagedProcess>();

process.on('exit', () => {
  for (const managed of running) signalGroup(managed.pid, 'SIGKILL');
});

export class ManagedProcess {
  readonly exited: Promise<ExitStatus>;
  #status: ExitStatus | null = null;
  #stdout = '';
  #stderr = '';

  constructor(
    readonly name: string,
    readonly pid: number,
    child: ChildProcess,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.#stdout = capped(this.#stdout + chunk)));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.#stderr = capped(this.#stderr + chunk)));
    child.on('error', (error) => (this.#stderr = capped(`${this.#stderr}\n[harness] ${error.message}\n`)));
    this.exited = new Promise((resolve) => {
      let drainTimer: NodeJS.Timeout | undefined;
      const finish = (): void => {
        clearTimeout(drainTimer);
        if (this.#status !== null) resolve(this.#status);
      };
      child.once('exit', (code, signal) => {
        this.#status = { code, signal };
        running.delete(this);
        releaseProcessGroup(pid);
        drainTimer = setTimeout(finish, DRAIN_AFTER_EXIT_MS);
      });
      child.once('close', finish);
    });
  }

  /** The exit status, or null while it runs. */
  get status(): ExitStatus | null {
    return this.#status;
  }

  stdout(): string {
    return this.#stdout;
  }

  stderr(): string {
    return this.#stderr;
  }

  /** stdout and stderr, labelled, for error messages. */
  output(): string {
    const parts = [];
    if (this.#stdout.trim() !== '') parts.push(`[${this.name} stdout]\n${this.#stdout.trimEnd()}`);
    if (this.#stderr.trim() !== '') parts.push(`[${this.name} stderr]\n${this.#stderr.trimEnd()}`);
    return parts.join('\n');
  }

  /** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once the process has exited. */
  async stop(graceMs = DEFAULT_STOP_GRACE_MS): Promise<ExitStatus> {
    if (this.#status !== null) return this.exited;
    signalGroup(this.pid, 'SIGTERM');
    const killTimer = setTimeout(() => signalGroup(this.pid, 'SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(killTimer);
    }
  }
}

/** Starts `command` in its own process group and tracks it until it exits. */
export async function startProcess(name: string, command: string, args: readonly string[], options: ProcessOptions = {}): Promise<ManagedProcess> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    detached: true,
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) {
    const error = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new ComponentStartError(name, `cannot run ${command}: ${error.message}`, '');
  }
  const managed = new ManagedProcess(name, child.pid, child);
  running.add(managed);
  guardProcessGroup(child.pid);
  if (options.input !== undefined) child.stdin?.end(options.input);
  return managed;
}

/** Stops every process the harness started that is still running. */
export async function stopAllProcesses(): Promise<void> {
  await Promise.all([...running].map((managed) => managed.stop()));
}

/** How many harness-started processes are still running (for leak checks in tests). */
export function runningProcessCount(): number {
  return running.size;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

function capped(text: string): string {
  return text.length > OUTPUT_LIMIT ? text.slice(text.length - OUTPUT_LIMIT) : text;
}
