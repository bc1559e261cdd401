/**
 * The command parser's command mode, fed a line at a time. smtp-server's SMTPStream._write turns
 * the whole chunk it is given into a string to look for line ends, and when a command (DATA, BDAT)
 * switches to data mode part-way, turns the rest back into a new Buffer. A BDAT chunk inside a
 * tunnel begins part-way through a socket read, so every read of a binary message went through
 * both: a string and a Buffer of a read's size each (64% of the inbound's JavaScript allocation,
 * and a copy of every read; the smtp-sink bench's peak RSS was 10-20 MiB higher with them).
 *
 * Here the parser gets the chunk's first line (up to its first LF) alone, then the rest once that
 * line is dealt with, by which time the parser may be in data mode and take the rest as octets.
 * smtp-server still parses every line itself, with its limits; only where chunks are cut changes,
 * which it handles anywhere (the unit test feeds random cuts to both and requires the same
 * outcome). Like smtp-server with pipelined commands, it lets other connections run after every
 * MAX_SYNC_LINES lines handled at once.
 */
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import type { ParserCallback } from './data-feed.js';

const LF = 0x0a;
/** smtp-server's MAX_SYNC_COMMANDS. */
const MAX_SYNC_LINES = 100;

/** Has `parser` take command input a line at a time; what it parses does not change. */
export function installCommandFeed(parser: SMTPStream): void {
  const write = parser._write.bind(parser);
  parser._write = (chunk, _encoding, next) => feedLines(parser, write, chunk, next);
}

type Write = SMTPStream['_write'];

function feedLines(parser: SMTPStream, write: Write, chunk: Buffer, next: ParserCallback): void {
  let rest = chunk;
  let handled = 0;
  const step = (): void => {
    for (;;) {
      const lineEnd = parser._dataMode || parser.isClosed ? -1 : rest.indexOf(LF);
      // Data mode, a partial line, or a single line: smtp-server takes it as it is.
      if (lineEnd === -1 || lineEnd === rest.length - 1) {
        write(rest, 'buffer', next);
        return;
      }
      const line = rest.subarray(0, lineEnd + 1);
      rest = rest.subarray(lineEnd + 1);
      let returned = false;
      let lineDone = false;
      write(line, 'buffer', (error) => {
        if (error) {
          next(error);
          return;
        }
        lineDone = true;
        if (returned) step();
      });
      returned = true;
      // The line's handler answers later: step() goes on from its callback.
      if (!lineDone) return;
      if (++handled >= MAX_SYNC_LINES) {
        handled = 0;
        setImmediate(step);
        return;
      }
    }
  };
  step();
}
