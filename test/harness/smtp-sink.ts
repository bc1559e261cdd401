import { chown, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ComponentStartError } from './errors.js';
import { freePort } from './ports.js';
import { startProcess } from './processes.js';
import { readSmtpGreeting } from './smtp-greeting.js';
import { systemUser } from './system-users.js';
import { makeTempDir, removeTempDir } from './temp-dir.js';
import { waitFor } from './wait.js';

const SMTP_SINK = '/usr/sbin/smtp-sink';
/** smtp-sink refuses to run as root; it drops to this user after binding. */
const SINK_USER = 'nobody';

export interface SmtpSinkOptions {
  /** Default: a free port. Give one to start a receiver where a client already points. */
  port?: number;
  /** The loopback address to listen on (default 127.0.0.1), e.g. an MX of the test DNS. */
  address?: string;
  /** Keep every message (smtp-sink -d) so tests can compare bytes; see savedMessages(). */
  save?: boolean;
  /** Speak LMTP instead of SMTP (-L). */
  lmtp?: boolean;
  /** Greeting/EHLO hostname (-h). */
  hostname?: string;
  /** More smtp-sink options, e.g. ['-r', 'RCPT'] to soft-reject RCPT. */
  extraArgs?: readonly string[];
}

/** A message as smtp-sink saved it: the envelope it recorded and the message bytes (LF line ends). */
export interface SavedMessage {
  /** The MAIL FROM argument as sent, e.g. `<a@s.test>` (with any parameters). */
  mailFrom: string;
  /** The RCPT TO arguments as sent, in order. */
  rcptTo: string[];
  message: Buffer;
}

export interface SmtpSink {
  port: number;
  /** Messages received so far (from smtp-sink's -c counters). */
  messageCount(): number;
  /** `timeoutMs`: waitBound() unless given (a benchmark's long runs give more). */
  waitForMessages(count: number, timeoutMs?: number): Promise<number>;
  /** Saved messages (in no particular order); only with options.save. */
  savedMessages(): Promise<SavedMessage[]>;
  stop(): Promise<void>;
}

/** Starts Postfix's smtp-sink test receiver on a free 127.0.0.1 port. */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const port = options.port ?? (await freePort());
  const address = options.address ?? '127.0.0.1';
  const dir = await makeTempDir('smtp-sink');
  // smtp-sink writes its dumps after dropping privileges.
  const { uid, gid } = systemUser(SINK_USER);
  await chown(dir, uid, gid);
  const args = [
    '-u',
    SINK_USER,
    '-c',
    ...(options.lmtp ? ['-L'] : []),
    ...(options.hostname === undefined ? [] : ['-h', options.hostname]),
    ...(options.save ? ['-d', join(dir, '%Y%m%d%H%M%S.')] : []),
    ...(options.extraArgs ?? []),
    `${address}:${port}`,
    '256',
  ];
  const sink = await startProcess(`smtp-sink (${port})`, SMTP_SINK, args, { cwd: dir });
  const stop = async (): Promise<void> => {
    await sink.stop();
    await removeTempDir(dir);
  };
  // -c prints "sess=N quit=N mesg=N" after every session end, QUIT and "."; the last one counts.
  const messageCount = (): number => {
    const counters = sink.stdout();
    return Number(/^mesg=(\d+)/.exec(counters.slice(counters.lastIndexOf('mesg=')))?.[1] ?? 0);
  };
  try {
    await waitFor(
      `smtp-sink: greeting on ${address}:${port}`,
      async () => {
        if (sink.status !== null) throw new ComponentStartError('smtp-sink', `exited (${JSON.stringify(sink.status)})`, sink.output());
        return readSmtpGreeting(port, address).catch(() => undefined);
      },
      { diagnostics: () => sink.output() },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    port,
    messageCount,
    waitForMessages: (count, timeoutMs) =>
      waitFor(`smtp-sink ${port}: ${count} message(s)`, () => (messageCount() >= count ? messageCount() : undefined), {
        timeoutMs,
        diagnostics: () => `received: ${messageCount()}\n${sink.output()}`,
      }),
    savedMessages: async () => {
      const names = (await readdir(dir)).sort();
      return Promise.all(names.map(async (name) => parseDump(await readFile(join(dir, name)))));
    },
    stop,
  };
}

/**
 * smtp-sink's dump: its own X-Client-Addr/X-Mail-Args/X-Rcpt-Args/... lines and a 3-line
 * Received header, then the message, then one empty line.
 */
function parseDump(dump: Buffer): SavedMessage {
  const lines = dump.toString('latin1').split('\n');
  const received = lines.findIndex((line) => line.startsWith('Received: '));
  let start = received + 1;
  while (lines[start]?.startsWith('\t')) start++;
  const prefix = lines.slice(0, start);
  // latin1: one character per byte, so lengths are byte offsets.
  const headerEnd = prefix.reduce((length, line) => length + line.length + 1, 0);
  const args = (name: string): string[] => prefix.filter((line) => line.startsWith(`${name}: `)).map((line) => line.slice(name.length + 2));
  return {
    mailFrom: args('X-Mail-Args')[0] ?? '',
    rcptTo: args('X-Rcpt-Args'),
    message: dump.subarray(headerEnd, dump.length - 1),
  };
}
