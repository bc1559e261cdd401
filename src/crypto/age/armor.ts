/**
 * ASCII armor (https://c2sp.org/age#ascii-armor): strict PEM, "-----BEGIN AGE ENCRYPTED FILE-----",
 * padded base64 in 64-column lines (only the last may be shorter), no PEM headers, LF or CRLF line
 * ends, whitespace allowed only before and after. Both directions stream a line at a time.
 */
import { AgeError } from './errors.js';

export const ARMOR_BEGIN = '-----BEGIN AGE ENCRYPTED FILE-----';
export const ARMOR_END = '-----END AGE ENCRYPTED FILE-----';
const COLUMNS = 64;
const BYTES_PER_LINE = (COLUMNS / 4) * 3;
/** A line plus CR: anything longer is refused before it is buffered. */
const MAX_LINE_BYTES = COLUMNS + 1;
const PADDED_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64_ALPHABET = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') BASE64_ALPHABET[c.charCodeAt(0)] = 1;
const LF = 0x0a;
const CR = 0x0d;

function isWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === LF || byte === CR;
}

export type ArmorLineEnding = 'lf' | 'crlf';

/** Encodes a binary age file pushed in pieces into armored text, LF or CRLF line ends. */
export class ArmorEncoder {
  private carry: Buffer = Buffer.alloc(0);
  private started = false;
  private readonly eol: Buffer;

  constructor(lineEnding: ArmorLineEnding = 'lf') {
    this.eol = Buffer.from(lineEnding === 'crlf' ? '\r\n' : '\n', 'latin1');
  }

  push(data: Uint8Array): Buffer {
    const input = this.carry.length > 0 ? Buffer.concat([this.carry, data]) : Buffer.from(data.buffer, data.byteOffset, data.length);
    const whole = input.length - (input.length % BYTES_PER_LINE);
    this.carry = Buffer.from(input.subarray(whole));
    return this.withBegin(this.lines(input.subarray(0, whole)));
  }

  end(): Buffer {
    return this.withBegin(Buffer.concat([this.lines(this.carry), Buffer.from(ARMOR_END, 'latin1'), this.eol]));
  }

  private withBegin(body: Buffer): Buffer {
    if (this.started) return body;
    this.started = true;
    return Buffer.concat([Buffer.from(ARMOR_BEGIN, 'latin1'), this.eol, body]);
  }

  /** Base64 in 64-column lines, built in one buffer: per-line strings cost more than the crypto. */
  private lines(binary: Buffer): Buffer {
    const base64 = Buffer.from(binary.toString('base64'), 'latin1');
    const eol = this.eol;
    const out = Buffer.allocUnsafe(base64.length + Math.ceil(base64.length / COLUMNS) * eol.length);
    let at = 0;
    for (let i = 0; i < base64.length; i += COLUMNS) {
      at += base64.copy(out, at, i, Math.min(i + COLUMNS, base64.length));
      for (const byte of eol) out[at++] = byte;
    }
    return out;
  }
}

/** Decodes armored text pushed in pieces; push() returns the binary bytes decoded so far. */
export class ArmorDecoder {
  private state: 'leading' | 'begin' | 'body' | 'after-short-line' | 'trailing' = 'leading';
  private line: Buffer[] = [];
  private lineLength = 0;
  private lineNumber = 0;
  /** A bad line found after good ones in the same push: thrown once those were handed on. */
  private failure: AgeError | undefined;

  /**
   * Errors come in input order, however the input is split: the bytes of the lines before a bad
   * line are returned first, and the AgeError is thrown by the next push() or end().
   */
  push(data: Uint8Array): Uint8Array {
    if (this.failure !== undefined) throw this.failure;
    const decoded: Buffer[] = [];
    try {
      return this.decode(data, decoded);
    } catch (error) {
      if (decoded.length === 0 || !(error instanceof AgeError)) throw error;
      this.failure = error;
      return concat(decoded);
    }
  }

  private decode(data: Uint8Array, decoded: Buffer[]): Uint8Array {
    let input = Buffer.from(data.buffer, data.byteOffset, data.length);
    while (input.length > 0) {
      if (this.state === 'leading' || this.state === 'trailing') {
        const text = input.findIndex((byte) => !isWhitespace(byte));
        if (text < 0) return concat(decoded);
        if (this.state === 'trailing') throw this.error(`non-whitespace after "${ARMOR_END}"`);
        input = input.subarray(text);
        this.state = 'begin';
      }
      if (this.state === 'body' && this.lineLength === 0) {
        const run = fullLineRun(input);
        if (run.lines > 0) {
          // Full lines without padding are always canonical; Node's decoder skips the CR/LFs.
          decoded.push(Buffer.from(input.toString('latin1', 0, run.end), 'base64'));
          this.lineNumber += run.lines;
          input = input.subarray(run.end);
          continue;
        }
      }
      const lf = input.indexOf(LF);
      const piece = lf < 0 ? input : input.subarray(0, lf);
      if (this.lineLength + piece.length > MAX_LINE_BYTES) throw this.error(`longer than ${COLUMNS} columns`, this.lineNumber + 1);
      if (lf < 0) {
        this.line.push(Buffer.from(piece));
        this.lineLength += piece.length;
        return concat(decoded);
      }
      const bytes = this.completeLine(Buffer.concat([...this.line, piece]));
      if (bytes !== null) decoded.push(bytes);
      input = input.subarray(lf + 1);
    }
    return concat(decoded);
  }

  /** The input ended: the END line must have been seen (a final LF is optional). */
  end(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.lineLength > 0) this.completeLine(Buffer.concat(this.line));
    if (this.state !== 'trailing') throw this.error(this.state === 'leading' ? 'input is empty' : `input ended before "${ARMOR_END}"`);
  }

  private completeLine(raw: Buffer): Buffer | null {
    this.line = [];
    this.lineLength = 0;
    this.lineNumber++;
    const text = (raw[raw.length - 1] === CR ? raw.subarray(0, raw.length - 1) : raw).toString('latin1');
    switch (this.state) {
      case 'begin':
        if (text !== ARMOR_BEGIN) throw this.error(`expected "${ARMOR_BEGIN}", got ${JSON.stringify(text.slice(0, 40))}`);
        this.state = 'body';
        return null;
      case 'body':
      case 'after-short-line':
        if (text === ARMOR_END) {
          this.state = 'trailing';
          return null;
        }
        if (this.state === 'after-short-line') throw this.error('only the last base64 line may be shorter than 64 columns or padded');
        return this.base64Line(text);
      default:
        throw new Error(`unreachable armor state ${this.state}`);
    }
  }

  private base64Line(text: string): Buffer {
    if (text.length === 0) throw this.error('empty line');
    if (text.length > COLUMNS) throw this.error(`longer than ${COLUMNS} columns`);
    if (text.length % 4 !== 0 || !PADDED_BASE64.test(text)) throw this.error('not padded base64 in whole 4-character groups');
    const bytes = Buffer.from(text, 'base64');
    if (bytes.toString('base64') !== text) throw this.error('base64 is not canonical');
    if (text.length < COLUMNS || text.endsWith('=')) this.state = 'after-short-line';
    return bytes;
  }

  private error(reason: string, line = this.lineNumber): AgeError {
    return new AgeError('armor', `age armor: line ${line}: ${reason}`);
  }
}

/**
 * The leading run of complete 64-column lines of the base64 alphabet (no padding) in `input`: the
 * bulk of any armored file, decoded in one call instead of line by line.
 */
function fullLineRun(input: Buffer): { end: number; lines: number } {
  let end = 0;
  let lines = 0;
  for (;;) {
    let next = end + COLUMNS;
    if (next >= input.length) break;
    let i = end;
    while (i < next && BASE64_ALPHABET[input[i] as number] === 1) i++;
    if (i < next) break;
    if (input[next] === CR) next++;
    if (input[next] !== LF) break;
    end = next + 1;
    lines++;
  }
  return { end, lines };
}

function concat(pieces: Buffer[]): Uint8Array {
  return pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);
}
