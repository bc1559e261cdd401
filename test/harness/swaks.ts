import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './command.js';
import { HarnessUsageError } from './errors.js';
import { makeTempDir, removeTempDir } from './temp-dir.js';

const SWAKS = '/usr/bin/swaks';

/** swaks replaces these in --data, so messages containing them cannot be sent byte-exact. */
const SWAKS_DATA_TOKENS = /%(FROM_ADDRESS|TO_ADDRESS|DATE|MESSAGEID|SWAKS_VERSION|NEW_HEADERS|BODY|NEWLINE)%|\\n/;

export interface SwaksOptions {
  /** host:port, e.g. `127.0.0.1:10025`. */
  server: string;
  from: string;
  to: string | readonly string[];
  /**
   * The complete message (header and body, lines ending in LF or CRLF) exactly as the server
   * should receive it; swaks sends it with CRLF line ends and dot-stuffing.
   */
  data?: string | Buffer;
  /** Only the body, with swaks's default header (when `data` is not given). */
  body?: string;
  /** Extra header lines for swaks's default message, e.g. { 'X-Test': 'yes' }. */
  headers?: Readonly<Record<string, string>>;
  ehlo?: string;
  /** Require STARTTLS (-tls). */
  tls?: boolean;
  /** Stop after this step, e.g. 'RCPT' or 'EHLO'. */
  quitAfter?: string;
  /** Free-form XCLIENT arguments, e.g. 'ADDR=192.0.2.1 NAME=client.test'. */
  xclient?: string;
  extraArgs?: readonly string[];
}

export interface SwaksResult {
  exitCode: number | null;
  /** swaks's SMTP transcript and errors. */
  transcript: string;
}

/** Runs swaks once; resolves with its exit status (0 = the transaction succeeded) and transcript. */
export async function runSwaks(options: SwaksOptions): Promise<SwaksResult> {
  const dir = await makeTempDir('swaks');
  try {
    const args = [
      '--server',
      options.server,
      '--from',
      options.from,
      '--to',
      typeof options.to === 'string' ? options.to : options.to.join(','),
      ...(options.data === undefined ? [] : ['--data', `@${await writeData(dir, options.data)}`]),
      ...(options.body === undefined ? [] : ['--body', options.body]),
      ...Object.entries(options.headers ?? {}).flatMap(([name, value]) => ['--add-header', `${name}: ${value}`]),
      ...(options.ehlo === undefined ? [] : ['--ehlo', options.ehlo]),
      ...(options.tls ? ['-tls'] : []),
      ...(options.quitAfter === undefined ? [] : ['--quit-after', options.quitAfter]),
      ...(options.xclient === undefined ? [] : ['--xclient', options.xclient]),
      ...(options.extraArgs ?? []),
    ];
    const result = await runCommand(SWAKS, args);
    return { exitCode: result.exitCode, transcript: result.stdout + result.stderr };
  } finally {
    await removeTempDir(dir);
  }
}

/**
 * swaks ends the data with CRLF "." CRLF itself, so the file holds the message without its last
 * line end (otherwise an empty line would be added), and must not end in a "." line.
 */
async function writeData(dir: string, data: string | Buffer): Promise<string> {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
  const text = bytes.toString('latin1');
  const token = SWAKS_DATA_TOKENS.exec(text);
  if (token !== null) throw new HarnessUsageError(`swaks data: contains ${JSON.stringify(token[0])}, which swaks would replace`);
  const withoutLastLineEnd = text.endsWith('\r\n') ? bytes.subarray(0, -2) : text.endsWith('\n') ? bytes.subarray(0, -1) : bytes;
  if (/(^|\n)\.\r?$/.test(withoutLastLineEnd.toString('latin1'))) {
    throw new HarnessUsageError('swaks data: ends with a "." line, which swaks would take as the end of data');
  }
  const path = join(dir, 'message.eml');
  await writeFile(path, withoutLastLineEnd);
  return path;
}
