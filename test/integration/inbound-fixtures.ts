/**
 * Shared pieces of the inbound tests: a real Postfix configured from deploy/postfix/ (the very
 * snippet files users install, with the listener port substituted), and blackpony in front.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { createInboundServer, type InboundServer, type InboundServerOptions } from '../../src/inbound/inbound-server.js';
import type { ClientIdentity } from '../../src/inbound/relay-session.js';
import { mainCfSnippet, masterCfEntries } from '../harness/deploy-snippets.js';
import { freePort } from '../harness/ports.js';
import { startPostfix, type PostfixInstance, type PostfixOptions } from '../harness/postfix.js';
import { RawSmtp, serverKeys } from './xpony-fixtures.js';
import { loadScaled } from '../harness/wait.js';

const ROOT = join(import.meta.dirname, '..', '..');
export { mainCfSnippet, masterCfEntries };

const SNIPPET_PORT = '127.0.0.1:10025';
export const MAILBOX = 'user@d.test';
export const BLACKPONY_HOST = 'mx.blackpony.test';

/**
 * The master.cf snippet's TCP listener, moved to `port`: one master.cf entry. 'xclient' is the
 * commented-out TCP variant, 'proxy' the commented-out PROXY variant.
 */
export function masterCfSnippet(port: number, clientIdentity: ClientIdentity = 'xclient'): string {
  const variant = commentedEntries(readFileSync(join(ROOT, 'deploy/postfix/master.cf'), 'utf8').split('\n')).find(
    (entry) =>
      entry[0]?.startsWith(`${SNIPPET_PORT} `) && entry.some((line) => line.includes('smtpd_upstream_proxy_protocol')) === (clientIdentity === 'proxy'),
  );
  if (variant === undefined) throw new Error(`deploy/postfix/master.cf: expected a commented ${clientIdentity} listener on ${SNIPPET_PORT}`);
  return variant.join('\n').replace(SNIPPET_PORT, `127.0.0.1:${port}`);
}

/** The master.cf snippet's active entry: the unix-socket listener, public/SERVICE under the queue directory. */
export function unixMasterCfSnippet(): { entry: string; service: string } {
  const entry = masterCfEntries('master.cf');
  const service = /^([a-z0-9-]+) unix /.exec(entry)?.[1];
  if (service === undefined) throw new Error('deploy/postfix/master.cf: expected its active entry to be a unix listener');
  return { entry, service };
}

/** The commented-out entries: each "#SERVICE ..." line with the "#  -o ..." lines after it, uncommented. */
function commentedEntries(lines: readonly string[]): string[][] {
  const entries: string[][] = [];
  for (const line of lines) {
    if (/^#\s+-o /.test(line)) entries.at(-1)?.push(line.slice(1));
    else if (/^#[^\s#]+ +(inet|unix|pass) /.test(line)) entries.push([line.slice(1)]);
  }
  return entries;
}

export interface PostfixBehind {
  postfix: PostfixInstance;
  /** The XCLIENT listener of the snippet. */
  listenerPort: number;
}

/** deploy/postfix/postscreen-master.cf, postscreen moved to `port`: postscreen with its smtpd pass service. */
export function postscreenMasterCfSnippet(port: number): string {
  const entries = masterCfEntries('postscreen-master.cf');
  if (!entries.startsWith(`${SNIPPET_PORT} inet `)) throw new Error(`deploy/postfix/postscreen-master.cf: expected postscreen on ${SNIPPET_PORT} first`);
  return entries.replace(SNIPPET_PORT, `127.0.0.1:${port}`);
}

/**
 * A Postfix behind blackpony, with the deploy snippet's TCP listener for `clientIdentity`, or
 * with `postscreen` its postscreen layout (PROXY lines to postscreen, then smtpd).
 */
export async function startPostfixBehind(options: PostfixOptions & { clientIdentity?: ClientIdentity; postscreen?: boolean } = {}): Promise<PostfixBehind> {
  const { clientIdentity, postscreen, ...postfixOptions } = options;
  const listenerPort = await freePort();
  const postfix = await startPostfix({
    mailboxes: [MAILBOX],
    ...postfixOptions,
    mainCf: { ...mainCfSnippet(), ...options.mainCf },
    masterCf: [postscreen === true ? postscreenMasterCfSnippet(listenerPort) : masterCfSnippet(listenerPort, clientIdentity), ...(options.masterCf ?? [])],
  });
  return { postfix, listenerPort };
}

export interface Blackpony {
  inbound: InboundServer;
  port: number;
}

export type BlackponyOptions = Partial<Omit<InboundServerOptions, 'postfix'>> & { timeoutMs?: number };

/** blackpony's inbound side in front of Postfix's listener: a port on 127.0.0.1, or a unix socket's `path`. */
export async function startBlackpony(
  postfix: number | { path: string },
  { timeoutMs = loadScaled(5_000), ...options }: BlackponyOptions = {},
): Promise<Blackpony> {
  const where = typeof postfix === 'number' ? { host: '127.0.0.1', port: postfix } : postfix;
  const inbound = createInboundServer({ keys: serverKeys(), hostName: BLACKPONY_HOST, ...options, postfix: { ...where, timeoutMs } });
  const address = await inbound.listen(0, '127.0.0.1');
  return { inbound, port: address.port };
}

/**
 * For a describe block: a Postfix behind blackpony (the deploy snippet's XCLIENT listener),
 * started before its tests and stopped after them. The fields are set once beforeAll has run.
 */
export function postfixBehindBlackpony(): { readonly behind: PostfixBehind; readonly pony: Blackpony } {
  const site = {} as { behind: PostfixBehind; pony: Blackpony };
  beforeAll(async () => {
    site.behind = await startPostfixBehind();
    site.pony = await startBlackpony(site.behind.listenerPort);
  });
  afterAll(async () => {
    await site.pony?.inbound.close();
    await site.behind?.postfix.stop();
  });
  return site;
}

/**
 * One plaintext SMTP transaction from a raw client to MAILBOX; resolves with the reply to the
 * final dot. `data` goes as given (no dot-stuffing), ending with CRLF, and the dot after it.
 */
export async function sendRaw(port: number, data: string, { ehlo = 'client.sender.test', from = 'mallory@sender.test' } = {}): Promise<string> {
  const smtp = await RawSmtp.connect(port);
  try {
    expect((await smtp.reply()).code).toBe(220);
    expect(await smtp.command(`EHLO ${ehlo}`)).toMatch(/^250/);
    expect(await smtp.command(`MAIL FROM:<${from}>`)).toMatch(/^250 /);
    expect(await smtp.command(`RCPT TO:<${MAILBOX}>`)).toMatch(/^250 /);
    expect(await smtp.command('DATA')).toMatch(/^354 /);
    return await smtp.command(`${data}.`);
  } finally {
    smtp.stream.destroy();
  }
}
