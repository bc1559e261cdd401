/**
 * The binary sealed message inside a tunnel (docs/PROTOCOL.md section 5, "The binary sealed
 * message: XPONY-BINARY"): a server offers the EHLO keywords CHUNKING and XPONY-BINARY; a client
 * marks the transaction with the MAIL FROM parameter XPONY-BINARY and sends the binary age file
 * (section 8, without wrapper or armor) in BDAT chunks (RFC 3030) of at most MAX_BDAT_CHUNK octets.
 */
import { MAX_BDAT_CHUNK } from './limits.js';

export const BINARY_KEYWORD = 'XPONY-BINARY';
export const CHUNKING_KEYWORD = 'CHUNKING';

export interface BdatCommand {
  size: number;
  last: boolean;
}

/** Why a BDAT command line is refused: its reply, and whether the session must close after it. */
export class BdatCommandError extends Error {
  override readonly name = 'BdatCommandError';
  constructor(
    readonly code: number,
    readonly text: string,
    readonly close: boolean,
  ) {
    super(`${code} ${text}`);
  }
}

const BDAT_SYNTAX = /^BDAT ([0-9]{1,20})( LAST)?$/i;

/**
 * Parses `BDAT <size> [LAST]`. A size over MAX_BDAT_CHUNK is refused with close: the octets that
 * follow cannot be read as commands, nor read at all without bound.
 */
export function parseBdat(line: string): BdatCommand {
  const match = BDAT_SYNTAX.exec(line);
  if (match === null) throw new BdatCommandError(501, '5.5.4 BDAT: expected "BDAT <size> [LAST]"', true);
  const size = Number(match[1]);
  if (size > MAX_BDAT_CHUNK) throw new BdatCommandError(552, `5.3.4 BDAT: chunk of ${match[1]} octets, at most ${MAX_BDAT_CHUNK}`, true);
  return { size, last: match[2] !== undefined };
}
