/**
 * The binary sealed message inside a tunnel (docs/PROTOCOL.md section 5, "The binary sealed
 * message: XPONY-BINARY"): a server offers the EHLO keywords CHUNKING and XPONY-BINARY, the latter
 * with the largest chunk it takes; a client marks the transaction with the MAIL FROM parameter
 * XPONY-BINARY and sends the binary age file (section 8, without wrapper or armor) in BDAT chunks
 * (RFC 3030) no larger than that.
 */
import { BDAT_CHUNK_WITHOUT_SIZE, MAX_BDAT_CHUNK } from './limits.js';

export const BINARY_KEYWORD = 'XPONY-BINARY';
/**
 * Offered beside XPONY-BINARY: the server takes a binary message's age payload in raw runs, outside
 * the tunnel's encryption (docs/PROTOCOL.md section 5): age encrypts and authenticates it already,
 * under a file key that only the framed age header carries.
 */
export const RAW_PAYLOAD_KEYWORD = 'XPONY-RAW-PAYLOAD';
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

/** The EHLO line a server offers XPONY-BINARY with: the largest chunk it takes, unless that is the size every server takes. */
export function binaryKeywordLine(maxChunk: number): string {
  return maxChunk === BDAT_CHUNK_WITHOUT_SIZE ? BINARY_KEYWORD : `${BINARY_KEYWORD} ${maxChunk}`;
}

const CHUNK_SIZE_SYNTAX = /^[0-9]{1,20}$/;

/**
 * The chunk size a client uses with a server that offered XPONY-BINARY in these EHLO lines (the
 * keywords after the first line): the size it announced, at most MAX_BDAT_CHUNK; without a size,
 * or with one that is not a number of at least BDAT_CHUNK_WITHOUT_SIZE, the size every server takes.
 */
export function chunkSizeFor(ehloLines: readonly string[]): number {
  for (const line of ehloLines) {
    const [keyword, value, ...rest] = line.split(' ');
    if (keyword!.toUpperCase() !== BINARY_KEYWORD) continue;
    if (value === undefined || rest.length > 0 || !CHUNK_SIZE_SYNTAX.test(value)) return BDAT_CHUNK_WITHOUT_SIZE;
    return Math.min(MAX_BDAT_CHUNK, Math.max(BDAT_CHUNK_WITHOUT_SIZE, Number(value)));
  }
  return BDAT_CHUNK_WITHOUT_SIZE;
}

const BDAT_SYNTAX = /^BDAT ([0-9]{1,20})( LAST)?$/i;

/**
 * Parses `BDAT <size> [LAST]`. A size over `maxChunk` (what the server announced) is refused with
 * close: the octets that follow cannot be read as commands, nor read at all without bound.
 */
export function parseBdat(line: string, maxChunk: number): BdatCommand {
  const match = BDAT_SYNTAX.exec(line);
  if (match === null) throw new BdatCommandError(501, '5.5.4 BDAT: expected "BDAT <size> [LAST]"', true);
  const size = Number(match[1]);
  if (size > maxChunk) throw new BdatCommandError(552, `5.3.4 BDAT: chunk of ${match[1]} octets, at most ${maxChunk}`, true);
  return { size, last: match[2] !== undefined };
}
