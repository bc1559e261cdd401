/**
 * The binary sealed message's chunk size (docs/PROTOCOL.md section 5, XPONY-BINARY): what a server
 * announces, what a client makes of any announcement (a hostile server's too), and the server's
 * refusal of a chunk larger than it announced.
 */
import { describe, expect, it } from 'vitest';
import { BdatCommandError, binaryKeywordLine, chunkSizeFor, parseBdat } from '../../src/xpony/binary-message.js';
import { BDAT_CHUNK_WITHOUT_SIZE, MAX_BDAT_CHUNK } from '../../src/xpony/limits.js';

const EHLO = ['PIPELINING', '8BITMIME', 'CHUNKING'];

describe('XPONY-BINARY chunk size', () => {
  it('is announced on the keyword, but for the size every server takes', () => {
    expect(binaryKeywordLine(MAX_BDAT_CHUNK)).toBe('XPONY-BINARY 262144');
    expect(binaryKeywordLine(BDAT_CHUNK_WITHOUT_SIZE)).toBe('XPONY-BINARY');
  });

  it('is what the server announced, within the bounds', () => {
    expect(chunkSizeFor([...EHLO, 'XPONY-BINARY 262144'])).toBe(262_144);
    expect(chunkSizeFor([...EHLO, 'xpony-binary 100000'])).toBe(100_000);
    // Larger than this client holds: its own largest.
    expect(chunkSizeFor([...EHLO, 'XPONY-BINARY 1048576'])).toBe(MAX_BDAT_CHUNK);
    expect(chunkSizeFor([...EHLO, `XPONY-BINARY ${'9'.repeat(20)}`])).toBe(MAX_BDAT_CHUNK);
  });

  it('is 65536 for a server that announces none (an older one), or nothing usable', () => {
    for (const line of [
      'XPONY-BINARY',
      'XPONY-BINARY 1000',
      'XPONY-BINARY 0',
      'XPONY-BINARY abc',
      'XPONY-BINARY 300000 x',
      'XPONY-BINARY -5',
      'XPONY-BINARY 1e6',
      'XPONY-BINARY  262144',
    ]) {
      expect(chunkSizeFor([...EHLO, line]), line).toBe(BDAT_CHUNK_WITHOUT_SIZE);
    }
    expect(chunkSizeFor(EHLO)).toBe(BDAT_CHUNK_WITHOUT_SIZE);
  });

  it('bounds what the server takes: larger is 552 and a close', () => {
    expect(parseBdat(`BDAT ${MAX_BDAT_CHUNK} LAST`, MAX_BDAT_CHUNK)).toEqual({ size: MAX_BDAT_CHUNK, last: true });
    for (const [line, limit] of [
      [`BDAT ${MAX_BDAT_CHUNK + 1}`, MAX_BDAT_CHUNK],
      [`BDAT ${BDAT_CHUNK_WITHOUT_SIZE + 1}`, BDAT_CHUNK_WITHOUT_SIZE],
    ] as const) {
      const refusal = (() => {
        try {
          parseBdat(line, limit);
        } catch (error) {
          return error;
        }
        return undefined;
      })();
      expect(refusal).toBeInstanceOf(BdatCommandError);
      expect(refusal).toMatchObject({ code: 552, close: true, text: `5.3.4 BDAT: chunk of ${line.slice(5)} octets, at most ${limit}` });
    }
  });
});
