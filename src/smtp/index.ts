/**
 * The SMTP toolkit: a client, a reply reader, parameter and reply encoding, and the plumbing on
 * top of smtp-server that any of our listeners uses. Knows nothing of XPONY.
 */
/** A pipelining SMTP client over TCP, a unix socket or an existing stream, with STARTTLS and BDAT. */
export {
  endpointAddress,
  formatReply,
  parseEnhancedCode,
  replyText,
  SmtpClient,
  SmtpClientError,
  type SmtpClientErrorKind,
  type SmtpEndpoint,
  type SmtpReply,
} from './smtp-client.js';
/** Reads a server's replies off a stream, within the limits of limits.ts. */
export { ReplyError, ReplyReader, type Reply } from './reply-reader.js';
/** The limits of reading replies. */
export { MAX_REPLY_LINE, MAX_REPLY_LINES, MAX_UNREAD_REPLY_OCTETS } from './limits.js';
/** A refusal our server answers with, in one line or as the next hop's lines. */
export { SmtpReplyError } from './reply-error.js';
/** Text safe inside one reply line. */
export { asReplyText } from './reply-text.js';
/** RFC 3461 xtext. */
export { xtext } from './xtext.js';
/** MAIL and RCPT parameters: read from smtp-server, re-encoded for the next hop. */
export { encodeParameters, parametersOf } from './parameters.js';
/** Has a handler's reply sent word for word (replyVerbatim), and the connection's side of it. */
export { replyVerbatim, takeVerbatimReply, type VerbatimReply } from './verbatim-reply.js';
/** smtp-server connections and servers that greet at once; with data-feed.ts, the only code touching smtp-server's private members. */
export {
  CommandParser,
  keepOpenAfterClientFin,
  PromptServer,
  SmtpServerConnection,
  startConnection,
  type LineHandler,
  type ParserCallback,
} from './smtp-server-internals.js';
/** The sessions a listener greeted, each reported opened and closed once. */
export { GreetedSessions } from './greeted-sessions.js';
/** A write to a received message's stream that lets the parser read on once the stream takes more. */
export { writeWithBackpressure } from './message-stream-write.js';
