/**
 * XCLIENT (Postfix's XCLIENT_README): the default way to tell Postfix who the client is. After our
 * own EHLO, one XCLIENT command names the real client; Postfix answers with a new greeting and
 * judges that client from then on. Only the attributes Postfix lists after XCLIENT in its EHLO
 * reply are sent; without ADDR it cannot judge the client, so nothing may be relayed.
 */
import { formatReply, xtext, type SmtpReply } from '../smtp/index.js';
import type { ClientName } from './client-name.js';

/** The real client, as XCLIENT names it. */
export interface XclientClient {
  /** IPv4, or IPv6 without brackets (IPv4-mapped addresses already unmapped). */
  address: string;
  port: number;
  /** Its name as Postfix would have found it (client-name.ts). */
  name: ClientName;
  helo: string;
  /** Whether it said EHLO (PROTO=ESMTP) rather than HELO. */
  esmtp: boolean;
}

/**
 * EHLO as `ourName`, then XCLIENT with `client`, each through `exchange`; resolves with why
 * Postfix refused (a failure of the hop, ours to fix), or undefined once it has the real client.
 */
export async function sendXclient(exchange: (command: string) => Promise<SmtpReply>, ourName: string, client: XclientClient): Promise<string | undefined> {
  const ehlo = await exchange(`EHLO ${ourName}`);
  if (ehlo.code !== 250) return `EHLO refused: ${formatReply(ehlo)}`;
  const offered = ehlo.lines.map((line) => /^XCLIENT(?: +(.*))?$/i.exec(line)).find((match) => match !== null);
  if (offered === undefined) return 'XCLIENT not offered (set smtpd_authorized_xclient_hosts on the listener, see deploy/postfix)';
  const attributes = new Set((offered[1] ?? '').toUpperCase().split(/ +/));
  if (!attributes.has('ADDR')) return `XCLIENT without ADDR offered (${offered[0]})`;
  const greeting = await exchange(xclientCommand(client, attributes));
  if (greeting.code !== 220) return `XCLIENT refused: ${formatReply(greeting)}`;
  return undefined;
}

function xclientCommand(client: XclientClient, offered: ReadonlySet<string>): string {
  const attributes: [string, string | number][] = [
    ['ADDR', client.address.includes(':') ? `IPV6:${client.address}` : client.address],
    ['PORT', client.port],
    ['NAME', xtext(client.name.name)],
    ['REVERSE_NAME', xtext(client.name.reverseName)],
    ['HELO', xtext(client.helo)],
    ['PROTO', client.esmtp ? 'ESMTP' : 'SMTP'],
  ];
  return ['XCLIENT', ...attributes.filter(([key]) => offered.has(key)).map(([key, value]) => `${key}=${value}`)].join(' ');
}
