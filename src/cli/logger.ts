import type { Command } from 'commander';
import { createLogger, type Logger } from '../log.js';

let logger: Logger | undefined;

/** The process logger, made once from the global --pretty and --log-level options. */
export function commandLogger(command: Command): Logger {
  if (logger === undefined) {
    const options = command.optsWithGlobals<{ pretty?: boolean; logLevel: string }>();
    logger = createLogger({ level: options.logLevel, pretty: options.pretty });
  }
  return logger;
}
