/**
 * The limits of reading SMTP replies, in one place: the SMTP client (smtp-client.ts) and every
 * reader of a server's replies (reply-reader.ts) keep to them; XPONY's section 6 names them too.
 */

/** Any other server reply line the client reads in plaintext (greeting, EHLO), CRLF included. */
export const MAX_REPLY_LINE = 4096;
/** Lines of one multi-line plaintext reply the client accepts (an EHLO reply has about a dozen). */
export const MAX_REPLY_LINES = 64;
/**
 * Octets a client holds from a server while it awaits no reply (idle between transactions, or
 * sending message data): room for one reply line that arrives before it is read (a greeting, or
 * the 421 a server may send before closing). More is a protocol violation: the client closes.
 */
export const MAX_UNREAD_REPLY_OCTETS = MAX_REPLY_LINE;
