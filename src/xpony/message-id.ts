/**
 * The message identity of a tunnel's inner SMTP session (docs/PROTOCOL.md section 5, "A retry
 * answered once"): a server inside a tunnel offers the EHLO keyword XPONY-ID; a client then names
 * each message on MAIL FROM with `XPONY-ID=<id>`, the same id on every attempt to deliver the
 * same message, so a server that already accepted it answers the retry without a second copy.
 */
import { createHash } from 'node:crypto';

/** The EHLO keyword, and the MAIL FROM parameter's name. */
export const MESSAGE_ID_KEYWORD = 'XPONY-ID';

/** 128 bits, base64url without padding. */
const MESSAGE_ID = /^[A-Za-z0-9_-]{21}[AQgw]$/;
const DOMAIN = 'blackpony XPONY-ID 1';

export function isMessageId(value: unknown): value is string {
  return typeof value === 'string' && MESSAGE_ID.test(value);
}

/**
 * The id of a message from `stableToken`, a name the sending MTA gives this message and no other
 * (its queue file's id), and its envelope sender: the first 128 bits of SHA-256 over both.
 */
export function messageId(stableToken: string, sender: string): string {
  return createHash('sha256').update(`${DOMAIN}\0${stableToken}\0${sender}`, 'utf8').digest().subarray(0, 16).toString('base64url');
}
