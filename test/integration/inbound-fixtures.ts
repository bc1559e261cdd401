/**
 * Shared pieces of the inbound tests: a real Postfix configured from deploy/postfix/ (the very
 * snippet files users install, with the listener port substituted), and blackpony in front.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInboundServer, type InboundServer, type InboundServerOptions } from '../../src/inbound/inbound-server.js';
import type { ClientIdentity } from '../../src/inbound/relay-session.js';
import { freePort } from '../harness/ports.js';
import { startPostfix, type PostfixInstance, type PostfixOptions } from '../harness/postfix.js';
import { serverKeys } from './xpony-fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SNIPPET_PORT = '127.0.0.1:10025';
export const MAILBOX = 'user@d.test';
export const BLACKPONY_HOST = 'mx.blackpony.test';

/**
 * The master.cf snippet's listener, moved to `port`: one master.cf entry. 'xclient' is the active
 * entry; 'proxy' the commented-out PROXY variant below it.
 */
export function masterCfSnippet(port: number, clientIdentity: ClientIdentity = 'xclient'): string {
  const lines = readFileSync(join(ROOT, 'deploy/postfix/master.cf'), 'utf8').split('\n');
  const entry = clientIdentity === 'xclient' ? lines.filter((line) => line.trim() !== '' && !line.startsWith('#')) : commentedEntry(lines);
  if (!entry[0]?.startsWith(`${SNIPPET_PORT} `)) throw new Error(`deploy/postfix/master.cf: expected a ${clientIdentity} listener on ${SNIPPET_PORT}`);
  return entry.join('\n').replace(SNIPPET_PORT, `127.0.0.1:${port}`);
}

/** The commented-out entry: its "#127.0.0.1:10025 ..." line and the "#  -o ..." lines after it, uncommented. */
function commentedEntry(lines: readonly string[]): string[] {
  const start = lines.findIndex((line) => line.startsWith(`#${SNIPPET_PORT} `));
  if (start < 0) return [];
  const entry = [lines[start]!.slice(1)];
  for (const line of lines.slice(start + 1)) {
    if (!/^#\s+-o /.test(line)) break;
    entry.push(line.slice(1));
  }
  return entry;
}

/** A main.cf snippet of deploy/postfix/ as parameters (default: the inbound one). */
export function mainCfSnippet(file = 'main.cf'): Record<string, string> {
  const parameters: Record<string, string> = {};
  for (const line of readFileSync(join(ROOT, 'deploy/postfix', file), 'utf8').split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const match = /^([a-z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (match === null) throw new Error(`deploy/postfix/${file}: not a parameter line: ${line}`);
    parameters[match[1]!] = match[2]!;
  }
  return parameters;
}

/** A master.cf snippet of deploy/postfix/ without its comments. */
export function masterCfEntries(file: string): string {
  return readFileSync(join(ROOT, 'deploy/postfix', file), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .join('\n');
}

export interface PostfixBehind {
  postfix: PostfixInstance;
  /** The XCLIENT listener of the snippet. */
  listenerPort: number;
}

export async function startPostfixBehind(options: PostfixOptions & { clientIdentity?: ClientIdentity } = {}): Promise<PostfixBehind> {
  const { clientIdentity, ...postfixOptions } = options;
  const listenerPort = await freePort();
  const postfix = await startPostfix({
    mailboxes: [MAILBOX],
    ...postfixOptions,
    mainCf: { ...mainCfSnippet(), ...options.mainCf },
    masterCf: [masterCfSnippet(listenerPort, clientIdentity), ...(options.masterCf ?? [])],
  });
  return { postfix, listenerPort };
}

export interface Blackpony {
  inbound: InboundServer;
  port: number;
}

export type BlackponyOptions = Partial<Omit<InboundServerOptions, 'postfix'>> & { timeoutMs?: number };

export async function startBlackpony(postfixPort: number, { timeoutMs = 5_000, ...options }: BlackponyOptions = {}): Promise<Blackpony> {
  const inbound = createInboundServer({ keys: serverKeys(), hostName: BLACKPONY_HOST, ...options, postfix: { host: '127.0.0.1', port: postfixPort, timeoutMs } });
  const address = await inbound.listen(0, '127.0.0.1');
  return { inbound, port: address.port };
}
