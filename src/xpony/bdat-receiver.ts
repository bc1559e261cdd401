/**
 * BDAT (RFC 3030) as an XponyServer's session receives the binary sealed message (XPONY-BINARY,
 * docs/PROTOCOL.md section 5). A refused BDAT closes the session: the octets it announced cannot
 * be told from commands. The first chunk opens the data stream as DATA does (onData, the final
 * reply, the rekey after it); each chunk's octets go to it as the parser receives them.
 */
import type { Writable } from 'node:stream';
import { writeWithBackpressure, type CommandParser, type ParserCallback } from '../smtp/index.js';
import { BdatCommandError, BINARY_KEYWORD, parseBdat } from './binary-message.js';

/** What BDAT needs of its session (server-connection.ts). */
export interface BdatSession {
  /** Whether the transaction's MAIL FROM carried XPONY-BINARY inside a tunnel that offers it. */
  binaryTransaction(): boolean;
  /** The largest chunk this server takes (as it announced with XPONY-BINARY). */
  readonly maxChunk: number;
  hasRecipients(): boolean;
  /** Opens the message's data stream as DATA does, without DATA's 354; the message is binary. */
  openMessage(command: Buffer): void;
  readonly parser: CommandParser | undefined;
  readonly messageStream: Writable | undefined;
  send(code: number, text: string): void;
  close(): void;
}

export class BdatReceiver {
  /** A binary transaction between its first BDAT and the end of its LAST chunk. */
  chunking = false;
  /** The BDAT chunk being read: octets still due. */
  private chunk: { size: number; remaining: number; last: boolean } | undefined;

  constructor(private readonly session: BdatSession) {}

  /** Whether the parser's octets are a chunk's (feed them here), not commands. */
  get readingChunk(): boolean {
    return this.chunk !== undefined;
  }

  /** A BDAT command. */
  command(command: Buffer, callback: () => void): void {
    let bdat;
    try {
      if (!this.session.binaryTransaction()) throw new BdatCommandError(503, `5.5.1 Error: BDAT only in a ${BINARY_KEYWORD} transaction inside a tunnel`, true);
      if (!this.session.hasRecipients()) throw new BdatCommandError(503, '5.5.1 Error: need RCPT command', true);
      bdat = parseBdat(command.toString('latin1'), this.session.maxChunk);
    } catch (err) {
      if (!(err instanceof BdatCommandError)) throw err;
      this.refuse(err);
      callback();
      return;
    }
    const parser = this.session.parser!;
    if (!this.chunking) {
      this.chunking = true;
      this.session.openMessage(command);
    }
    if (bdat.size > 0) {
      // The parser reads the chunk's octets through feed().
      this.chunk = { size: bdat.size, remaining: bdat.size, last: bdat.last };
      parser.dataMode = true;
      callback();
      return;
    }
    parser.dataMode = false;
    if (!bdat.last) {
      this.session.send(250, '2.0.0 0 octets received');
      callback();
      return;
    }
    // BDAT 0 LAST: the message ends here; the parser reads on once the final reply is sent.
    this.chunking = false;
    parser.endMessage(callback);
  }

  /** Octets of a BDAT chunk as the parser receives them; the rest after the chunk goes back to it as commands. */
  feed(parser: CommandParser, octets: Buffer, done: ParserCallback): void {
    const chunk = this.chunk!;
    const take = Math.min(chunk.remaining, octets.length);
    const piece = octets.subarray(0, take);
    const rest = octets.subarray(take);
    chunk.remaining -= take;
    parser.countDataBytes(take);
    const stream = parser.dataStream!;
    if (chunk.remaining > 0) {
      writeWithBackpressure(stream, piece, done);
      return;
    }
    this.chunk = undefined;
    if (chunk.last) {
      this.chunking = false;
      parser.endDataMode(piece, rest, done);
      return;
    }
    parser.dataMode = false;
    writeWithBackpressure(stream, piece, () => {
      this.session.send(250, `2.0.0 ${chunk.size} octets received`);
      parser.readCommands(rest, done);
    });
  }

  /** Refuses a BDAT or a command between chunks, discarding the transaction; closes when the octets that follow cannot be read. */
  refuse(err: BdatCommandError): void {
    this.session.send(err.code, err.text);
    const stream = this.session.messageStream;
    // With an error only for a listener: onData may not have attached one yet, and an error
    // nobody listens for would end the process (smtp-server does the same when a client leaves).
    if (stream) stream.destroy(stream.listenerCount('error') > 0 ? new Error(`transaction discarded: ${err.text}`) : undefined);
    if (err.close && err.code !== 421) this.session.close(); // send() closes after a 421 itself
  }

  /** The transaction ended (final reply, RSET, EHLO). */
  reset(): void {
    this.chunking = false;
    this.chunk = undefined;
  }
}
