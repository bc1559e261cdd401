/** Errors thrown by the test harness; each carries the component's own diagnostics in its message. */

/** A real component (Postfix, dnsmasq, smtp-sink, ...) did not come up; `log` is its own output. */
export class ComponentStartError extends Error {
  override readonly name = 'ComponentStartError';

  constructor(
    readonly component: string,
    readonly reason: string,
    readonly log: string,
  ) {
    super(withLog(`${component}: ${reason}`, component, log));
  }
}

/** Something the harness waited for did not happen in time. */
export class HarnessTimeoutError extends Error {
  override readonly name = 'HarnessTimeoutError';

  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly diagnostics: string,
  ) {
    super(withLog(`${what}: not done after ${timeoutMs} ms`, 'diagnostics', diagnostics));
  }
}

/** A harness call was used in a way that cannot work (bad record name, unknown mailbox, ...). */
export class HarnessUsageError extends Error {
  override readonly name = 'HarnessUsageError';
}

function withLog(message: string, label: string, log: string): string {
  const text = log.trimEnd();
  return text === '' ? message : `${message}\n--- ${label} ---\n${text}`;
}

/** A helper command (postconf, postqueue, ...) exited with a failure status. */
export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';

  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly output: string,
  ) {
    super(withLog(`${command}: exit status ${exitCode}`, 'output', output));
  }
}
