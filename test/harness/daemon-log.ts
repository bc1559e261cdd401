import type { ManagedProcess } from './processes.js';

/** A `blackpony run` child's JSON log lines so far (stderr), parsed; with `msg`, only those with that message. */
export function jsonLogLines(daemon: ManagedProcess, msg?: string): Array<Record<string, unknown>> {
  const entries = daemon
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return msg === undefined ? entries : entries.filter((entry) => entry.msg === msg);
}
