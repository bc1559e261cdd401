import type { Command } from 'commander';
import { ConfigError } from '../daemon/config.js';
import { errorMessage } from '../error-message.js';

/** The lines that explain a failure: each problem of a configuration, or the error's message. */
export function problemsOf(error: unknown): string[] {
  if (error instanceof ConfigError) return error.problems;
  return [errorMessage(error)];
}

/** Ends a command: one `blackpony: LABEL: problem` line per problem on stderr, no stack trace, exit 1. */
export function failCommand(command: Command, label: string, error: unknown): never {
  return command.error(
    problemsOf(error)
      .map((problem) => `blackpony: ${label}: ${problem}`)
      .join('\n'),
    { exitCode: 1 },
  );
}
