import type { SMTPServerSession } from 'smtp-server';

/** A reply to send word for word, e.g. one relayed from the next hop. */
export interface VerbatimReply {
  code: number;
  /** The text of each line after the code and its separator, enhanced code included. */
  lines: readonly string[];
}

type VerbatimSession = SMTPServerSession & { verbatimReply?: VerbatimReply };

/**
 * Makes the reply to the command being handled `reply`, every line as given, instead of
 * smtp-server's own text. Set it right before calling the handler's callback: it applies to the
 * next reply sent if that has the same code (smtp-server answers any success with 250, so a 2xx
 * replaces a 250) and is dropped by any other. A connection that honours it calls
 * takeVerbatimReply from its send().
 */
export function replyVerbatim(session: SMTPServerSession, reply: VerbatimReply): void {
  (session as VerbatimSession).verbatimReply = reply;
}

/** The verbatim reply set for the reply `code` about to be sent, if any; any set one is used up. */
export function takeVerbatimReply(session: SMTPServerSession, code: number): VerbatimReply | undefined {
  const verbatim = (session as VerbatimSession).verbatimReply;
  if (verbatim === undefined) return undefined;
  delete (session as VerbatimSession).verbatimReply;
  return verbatim.code === code || (code === 250 && verbatim.code >= 200 && verbatim.code < 300) ? verbatim : undefined;
}
