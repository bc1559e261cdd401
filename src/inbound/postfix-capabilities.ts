/**
 * What blackpony may advertise depends on what Postfix behind it takes: its SIZE limit, and the
 * extensions whose parameters are passed through (8BITMIME, SMTPUTF8, DSN). Learnt from Postfix's
 * EHLO reply, at start-up and on every relayed session. PIPELINING and ENHANCEDSTATUSCODES are
 * blackpony's own (it talks to Postfix one command at a time) and are always offered.
 */
import type { SMTPServerOptions } from 'smtp-server';
import type { Recipient } from '../crypto/age/index.js';
import { armoredSealedSize } from '../xpony/index.js';

export interface PostfixCapabilities {
  /** message_size_limit as announced; 0: none. */
  size: number;
  eightBitMime: boolean;
  smtpUtf8: boolean;
  dsn: boolean;
}

/** From the lines of an EHLO reply (the first names the host). */
export function capabilitiesOf(ehloLines: readonly string[]): PostfixCapabilities {
  const keywords = new Map<string, string>();
  for (const line of ehloLines.slice(1)) {
    const [keyword = '', ...rest] = line.trim().split(/\s+/);
    keywords.set(keyword.toUpperCase(), rest.join(' '));
  }
  const size = keywords.get('SIZE');
  return {
    size: size !== undefined && /^[0-9]+$/.test(size) ? Number(size) : 0,
    eightBitMime: keywords.has('8BITMIME'),
    smtpUtf8: keywords.has('SMTPUTF8'),
    dsn: keywords.has('DSN'),
  };
}

/**
 * Room for the header fields relays on the way add to a sealed message (Received:, a backup's own
 * fields): the sealed form's SIZE is computed for the sender's octets only.
 */
const RELAY_HEADER_ROOM = 8 * 1024;

/**
 * The SIZE blackpony offers: Postfix's; or, where the domain takes sealed mail through its backup
 * MX (inbound.sealed_relay), what Postfix's limit comes to sealed to `sealedTo` and armored, since
 * the backup passes the sealed form on with its size and blackpony opens it before Postfix sees it.
 * Postfix still judges the opened message, and any other, by its own limit (RelaySession).
 */
export function offeredSize(postfixSize: number, sealedTo: readonly Recipient[] | undefined): number {
  if (postfixSize === 0 || sealedTo === undefined) return postfixSize;
  return armoredSealedSize(postfixSize, sealedTo) + RELAY_HEADER_ROOM;
}

/** Makes smtp-server's EHLO reply advertise the same (read by it at each EHLO), SIZE as offeredSize() says. */
export function advertise(options: SMTPServerOptions, capabilities: PostfixCapabilities, size: number): void {
  options.size = size;
  options.hide8BITMIME = !capabilities.eightBitMime;
  options.hideSMTPUTF8 = !capabilities.smtpUtf8;
  options.hideDSN = !capabilities.dsn;
}
