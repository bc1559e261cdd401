/**
 * A logger for in-process blackpony parts whose lines a test reads: the process's JSON lines,
 * kept in memory instead of written to stderr.
 */
import { pino } from 'pino';
import type { Logger } from '../../src/log.js';

export interface CapturedLog {
  logger: Logger;
  /** The JSON lines so far, parsed; with `level`, only those at that level (pino's names: 'warn', 'info'...). */
  lines(level?: string): Array<Record<string, unknown>>;
}

export function captureLog(level = 'info'): CapturedLog {
  const written: string[] = [];
  const logger = pino({ level, base: { name: 'blackpony' } }, { write: (line: string) => void written.push(line) });
  return {
    logger,
    lines(wanted) {
      const parsed = written.map((line) => JSON.parse(line) as Record<string, unknown>);
      return wanted === undefined ? parsed : parsed.filter((line) => line.level === logger.levels.values[wanted]);
    },
  };
}
