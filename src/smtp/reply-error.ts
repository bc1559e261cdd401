/**
 * A refusal or failure our SMTP server answers with: smtp-server sends `responseCode` and
 * `message` (enhanced code included), or, through replyVerbatim, `lines` as they are (a
 * multi-line reply relayed from the next hop stays one). Both sides use it: the inbound relay
 * for its client, the outbound listener for Postfix.
 */
import { asReplyText } from './reply-text.js';
import type { SmtpReply } from './smtp-client.js';

export class SmtpReplyError extends Error {
  override readonly name = 'SmtpReplyError';
  readonly lines: readonly string[];

  constructor(
    readonly responseCode: number,
    text: string | readonly string[],
  ) {
    const lines = (typeof text === 'string' ? [text] : text).map(asReplyText);
    super(lines.join(' '));
    this.lines = lines;
  }

  /** The next hop's reply, passed on. */
  static fromReply(reply: SmtpReply): SmtpReplyError {
    return new SmtpReplyError(reply.code, reply.lines);
  }
}
