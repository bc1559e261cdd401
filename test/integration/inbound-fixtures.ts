/**
 * Shared pieces of the inbound tests: a real Postfix configured from deploy/postfix/ (the very
 * snippet files users install, with the listener port substituted), and blackpony in front.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInboundServer, type InboundServer } from '../../src/inbound/inbound-server.js';
import { freePort } from '../harness/ports.js';
import { startPostfix, type PostfixInstance, type PostfixOptions } from '../harness/postfix.js';
import { serverKeys } from './xpony-fixtures.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SNIPPET_PORT = '127.0.0.1:10025';
export const MAILBOX = 'user@d.test';
export const BLACKPONY_HOST = 'mx.blackpony.test';

/** master.cf snippet without comments, listener moved to `port`: one master.cf entry. */
export function masterCfSnippet(port: number): string {
  const text = readFileSync(join(ROOT, 'deploy/postfix/master.cf'), 'utf8');
  if (!text.includes(SNIPPET_PORT)) throw new Error(`deploy/postfix/master.cf: expected a listener on ${SNIPPET_PORT}`);
  return text
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .join('\n')
    .replace(SNIPPET_PORT, `127.0.0.1:${port}`);
}

/** main.cf snippet as parameters. */
export function mainCfSnippet(): Record<string, string> {
  const parameters: Record<string, string> = {};
  for (const line of readFileSync(join(ROOT, 'deploy/postfix/main.cf'), 'utf8').split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const match = /^([a-z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (match === null) throw new Error(`deploy/postfix/main.cf: not a parameter line: ${line}`);
    parameters[match[1]!] = match[2]!;
  }
  return parameters;
}

export interface PostfixBehind {
  postfix: PostfixInstance;
  /** The XCLIENT listener of the snippet. */
  listenerPort: number;
}

export async function startPostfixBehind(options: PostfixOptions = {}): Promise<PostfixBehind> {
  const listenerPort = await freePort();
  const postfix = await startPostfix({
    mailboxes: [MAILBOX],
    ...options,
    mainCf: { ...mainCfSnippet(), ...options.mainCf },
    masterCf: [masterCfSnippet(listenerPort), ...(options.masterCf ?? [])],
  });
  return { postfix, listenerPort };
}

export interface Blackpony {
  inbound: InboundServer;
  port: number;
}

export async function startBlackpony(postfixPort: number, timeoutMs = 5_000): Promise<Blackpony> {
  const inbound = createInboundServer({ keys: serverKeys(), hostName: BLACKPONY_HOST, postfix: { host: '127.0.0.1', port: postfixPort, timeoutMs } });
  const address = await inbound.listen(0, '127.0.0.1');
  return { inbound, port: address.port };
}
