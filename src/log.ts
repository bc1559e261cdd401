import { pino, type Logger } from 'pino';

export type { Logger };

/** The levels a logger writes from, least severe first (--log-level, log.level). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';

export interface LogOptions {
  level?: string;
  /** Human-readable output; defaults to on when stderr is a terminal. */
  pretty?: boolean;
}

/**
 * The process logger: JSON lines on stderr by default (one object per event, for log shippers),
 * colourised readable lines on a terminal or with --pretty.
 */
export function createLogger(options: LogOptions = {}): Logger {
  const level = options.level ?? process.env.BLACKPONY_LOG_LEVEL ?? DEFAULT_LOG_LEVEL;
  const pretty = options.pretty ?? process.stderr.isTTY === true;
  const base = { name: 'blackpony' };
  if (pretty) {
    return pino({
      level,
      base,
      transport: { target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:standard' } },
    });
  }
  return pino({ level, base }, pino.destination({ dest: 2, sync: true }));
}
