/**
 * SMTP transparency (RFC 5321 section 4.5.2) for message octets on their way into DATA: a "."
 * that starts a line gets a second one, and the end-of-data marker follows the last octet.
 *
 * A line starts after any LF, bare or not: Postfix takes a bare LF as a line end, so
 * "\n.\r\n" unstuffed would end the data early (SMTP smuggling). The octets are passed on as
 * they are otherwise, bare LFs included. Built on Buffer.indexOf: no per-octet loop.
 */
const LF = 0x0a;
const DOT = 0x2e;
const DOT_BUFFER = Buffer.from('.', 'latin1');
const LF_DOT = Buffer.from('\n.', 'latin1');
const END_AFTER_LINE = Buffer.from('.\r\n', 'latin1');
const END_MID_LINE = Buffer.from('\r\n.\r\n', 'latin1');

export class DotStuffer {
  private atLineStart = true;

  /** The chunk with its line-leading dots doubled (the same buffer when there are none). */
  stuff(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const pieces: Buffer[] = [];
    let start = 0;
    if (this.atLineStart && chunk[0] === DOT) pieces.push(DOT_BUFFER);
    for (let at = chunk.indexOf(LF_DOT); at >= 0; at = chunk.indexOf(LF_DOT, at + 1)) {
      pieces.push(chunk.subarray(start, at + 1), DOT_BUFFER);
      start = at + 1;
    }
    this.atLineStart = chunk[chunk.length - 1] === LF;
    if (pieces.length === 0) return chunk;
    pieces.push(chunk.subarray(start));
    return Buffer.concat(pieces);
  }

  /** The end-of-data marker (a last line without a line end gets CRLF first); ready for the next message. */
  end(): Buffer {
    const marker = this.atLineStart ? END_AFTER_LINE : END_MID_LINE;
    this.atLineStart = true;
    return marker;
  }
}
