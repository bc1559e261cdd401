import { runCommand } from './command.js';

const SMTP_SOURCE = '/usr/sbin/smtp-source';

export interface SmtpSourceOptions {
  port: number;
  host?: string;
  /** Parallel sessions (-s). */
  sessions?: number;
  /** Messages in total (-m). */
  messages?: number;
  /** Payload bytes per message (-l). */
  size?: number;
  /** Send the next message over the same connection (-d). */
  reuse?: boolean;
  /** Speak LMTP (-L). */
  lmtp?: boolean;
  from?: string;
  to?: string;
  /** waitBound() unless given (a benchmark's long runs give more). */
  timeoutMs?: number;
}

export interface SmtpSourceResult {
  exitCode: number | null;
  elapsedMs: number;
  stderr: string;
}

/** Runs Postfix's smtp-source load generator against 127.0.0.1:port to completion. */
export async function runSmtpSource(options: SmtpSourceOptions): Promise<SmtpSourceResult> {
  const args = [
    '-s',
    String(options.sessions ?? 1),
    '-m',
    String(options.messages ?? 1),
    ...(options.size === undefined ? [] : ['-l', String(options.size)]),
    ...(options.reuse ? ['-d'] : []),
    ...(options.lmtp ? ['-L'] : []),
    ...(options.from === undefined ? [] : ['-f', options.from]),
    ...(options.to === undefined ? [] : ['-t', options.to]),
    `${options.host ?? '127.0.0.1'}:${options.port}`,
  ];
  const result = await runCommand(SMTP_SOURCE, args, { timeoutMs: options.timeoutMs });
  return { exitCode: result.exitCode, elapsedMs: result.elapsedMs, stderr: result.stderr + result.stdout };
}
