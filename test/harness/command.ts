import { HarnessTimeoutError } from './errors.js';
import { startProcess, type ProcessOptions } from './processes.js';
import { waitBound } from './wait.js';

export interface CommandOptions extends ProcessOptions {
  /** Kill the command (and its process group) after this long; waitBound() unless given. */
  timeoutMs?: number;
  /**
   * Run it on a pseudo-terminal (via script(1)): Postfix commands print their errors only
   * when stderr is a terminal. stdout then carries both streams.
   */
  terminal?: boolean;
}

export interface CommandResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/** Runs a command to completion; never rejects for a non-zero exit, only for a timeout. */
export async function runCommand(command: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? waitBound();
  const [file, argv] = options.terminal ? ['script', ['-qec', shellCommand(command, args), '/dev/null']] : [command, args];
  const started = performance.now();
  const child = await startProcess(command, file, argv, options);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const outcome = await Promise.race([child.exited, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    await child.stop();
    throw new HarnessTimeoutError(`${shellCommand(command, args)}`, timeoutMs, child.output());
  }
  const fromTerminal = (text: string): string => (options.terminal ? text.replaceAll('\r\n', '\n') : text);
  return {
    exitCode: outcome.code,
    signal: outcome.signal,
    stdout: fromTerminal(child.stdout()),
    stderr: child.stderr(),
    elapsedMs: performance.now() - started,
  };
}

/** The command as a shell line (for messages and script(1)); words quoted where needed. */
export function shellCommand(command: string, args: readonly string[]): string {
  return [command, ...args].map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)).join(' ');
}
