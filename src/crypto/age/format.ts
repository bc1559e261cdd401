/**
 * The age v1 header (https://c2sp.org/age#header-format): a version line, recipient stanzas and a
 * MAC line. Parsed strictly and incrementally, one line at a time, with hard limits so a hostile
 * peer cannot make us buffer an unbounded header.
 */
import { AgeError } from './errors.js';
import { base64DecodeCanonical, base64Encode } from './encoding.js';

export const VERSION_LINE = 'age-encryption.org/v1';

/** Largest header we accept (bytes through the MAC line): room for ~150 post-quantum stanzas. */
export const MAX_HEADER_SIZE = 256 * 1024;
/** Most stanzas we accept; unwrapping each may cost an ML-KEM decapsulation. */
export const MAX_STANZAS = 128;
/** Longest header line we accept (a post-quantum stanza's first line is ~1,510 characters). */
export const MAX_LINE_LENGTH = 4096;

/** Stanza bodies are base64 wrapped at 64 columns, i.e. 48 bytes per full line. */
const BODY_COLUMNS = 64;
const BODY_BYTES_PER_LINE = 48;
const MAC_LENGTH = 32;
const MAC_PREFIX = '--- ';
const STANZA_PREFIX = '-> ';

/** One recipient stanza: its arguments (the first is the recipient type) and its binary body. */
export interface Stanza {
  readonly type: string;
  readonly args: readonly string[];
  readonly body: Uint8Array;
}

export interface Header {
  readonly stanzas: readonly Stanza[];
  /** The header bytes the MAC covers: everything up to and including the "---" of the MAC line. */
  readonly headerNoMac: Uint8Array;
  readonly mac: Uint8Array;
}

function headerError(line: number, reason: string): AgeError {
  return new AgeError('header', `age header: line ${line}: ${reason}`);
}

function quote(line: string): string {
  return JSON.stringify(line.length > 60 ? `${line.slice(0, 60)}...` : line);
}

/** The header grammar as a line-at-a-time state machine. */
class HeaderGrammar {
  constructor(private readonly maxStanzas: number) {}

  private state: 'version' | 'stanza-or-mac' | 'body' = 'version';
  private lineNumber = 0;
  private readonly stanzas: Stanza[] = [];
  private args: string[] = [];
  private bodyLines: Uint8Array[] = [];

  /** Consumes one line (without its LF); returns the MAC once the MAC line has been read. */
  line(line: string): Uint8Array | null {
    this.lineNumber++;
    switch (this.state) {
      case 'version':
        if (line !== VERSION_LINE) {
          const reason = line.startsWith('age-encryption.org/') ? 'unsupported version' : `expected "${VERSION_LINE}"`;
          throw headerError(this.lineNumber, `${reason}, got ${quote(line)}`);
        }
        this.state = 'stanza-or-mac';
        return null;
      case 'stanza-or-mac':
        if (line.startsWith(STANZA_PREFIX)) {
          this.stanzaLine(line);
          return null;
        }
        if (line.startsWith('---')) return this.macLine(line);
        throw headerError(this.lineNumber, `expected a stanza ("-> ...") or the MAC line ("--- ..."), got ${quote(line)}`);
      case 'body':
        this.bodyLine(line);
        return null;
    }
  }

  get lines(): number {
    return this.lineNumber;
  }

  get parsedStanzas(): readonly Stanza[] {
    return this.stanzas;
  }

  private stanzaLine(line: string): void {
    if (this.stanzas.length === this.maxStanzas) throw headerError(this.lineNumber, `more than ${this.maxStanzas} stanzas`);
    const args = line.slice(STANZA_PREFIX.length).split(' ');
    if (args.some((arg) => arg.length === 0)) throw headerError(this.lineNumber, `empty stanza argument in ${quote(line)}`);
    this.args = args;
    this.bodyLines = [];
    this.state = 'body';
  }

  private bodyLine(line: string): void {
    if (line.length > BODY_COLUMNS) {
      throw headerError(this.lineNumber, `stanza body line is ${line.length} columns, more than ${BODY_COLUMNS}`);
    }
    const bytes = base64DecodeCanonical(line);
    if (bytes === null) throw headerError(this.lineNumber, `expected canonical unpadded base64 stanza body, got ${quote(line)}`);
    this.bodyLines.push(bytes);
    if (bytes.length === BODY_BYTES_PER_LINE) return;
    // A short (possibly empty) line ends the body.
    const [type, ...rest] = this.args;
    this.stanzas.push({ type: type as string, args: rest, body: new Uint8Array(Buffer.concat(this.bodyLines)) });
    this.state = 'stanza-or-mac';
  }

  private macLine(line: string): Uint8Array {
    if (!line.startsWith(MAC_PREFIX)) throw headerError(this.lineNumber, `expected "--- " before the MAC, got ${quote(line)}`);
    const mac = base64DecodeCanonical(line.slice(MAC_PREFIX.length));
    if (mac === null || mac.length !== MAC_LENGTH) {
      throw headerError(this.lineNumber, `expected a canonical base64 ${MAC_LENGTH}-byte MAC, got ${quote(line)}`);
    }
    const scrypt = this.stanzas.some((s) => s.type === 'scrypt');
    if (scrypt && this.stanzas.length > 1) throw headerError(this.lineNumber, 'an scrypt stanza must be the only stanza');
    return mac;
  }
}

const LF = 0x0a;

/**
 * Reads a header from a byte stream in arbitrary pieces. push() returns null until the MAC line
 * has arrived, then the header and the bytes after it (the start of the payload). A caller that
 * knows how many stanzas a file for it can hold passes a lower `maxStanzas`: the header is then
 * refused at the first stanza beyond it, before any of them is unwrapped.
 */
export class HeaderReader {
  private readonly grammar: HeaderGrammar;

  constructor(maxStanzas = MAX_STANZAS) {
    if (!Number.isInteger(maxStanzas) || maxStanzas < 1 || maxStanzas > MAX_STANZAS) {
      throw new AgeError('usage', `age header: maxStanzas must be 1-${MAX_STANZAS}, got ${maxStanzas}`);
    }
    this.grammar = new HeaderGrammar(maxStanzas);
  }

  /** Complete lines so far, including their LF (kept for the MAC). */
  private readonly lines: Buffer[] = [];
  /** Pieces of the current, unfinished line. */
  private partial: Buffer[] = [];
  private partialLength = 0;
  private size = 0;

  push(chunk: Uint8Array): { header: Header; rest: Uint8Array } | null {
    let input = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    for (;;) {
      const lf = input.indexOf(LF);
      const lineLength = this.partialLength + (lf < 0 ? input.length : lf);
      const lineNumber = this.grammar.lines + 1;
      if (lineLength > MAX_LINE_LENGTH) throw headerError(lineNumber, `longer than ${MAX_LINE_LENGTH} bytes`);
      if (this.size + lineLength + 1 > MAX_HEADER_SIZE) throw headerError(lineNumber, `header exceeds ${MAX_HEADER_SIZE} bytes`);
      if (lf < 0) {
        // Copy: the caller may reuse its buffer.
        this.partial.push(Buffer.from(input));
        this.partialLength += input.length;
        return null;
      }
      const line = Buffer.concat([...this.partial, input.subarray(0, lf + 1)]);
      this.partial = [];
      this.partialLength = 0;
      this.size += line.length;
      this.lines.push(line);
      input = input.subarray(lf + 1);
      const mac = this.grammar.line(lineText(line.subarray(0, line.length - 1), lineNumber));
      if (mac !== null) {
        const all = Buffer.concat(this.lines);
        // The MAC covers the header through "---", not the space, MAC and LF after it.
        const macLineTail = line.length - 3;
        const header = { stanzas: this.grammar.parsedStanzas, headerNoMac: new Uint8Array(all.subarray(0, all.length - macLineTail)), mac };
        return { header, rest: new Uint8Array(input.buffer, input.byteOffset, input.length) };
      }
    }
  }

  /** The input ended: a header that has not completed is truncated. */
  end(): never {
    if (this.size === 0 && this.partialLength === 0) throw new AgeError('header', 'age header: input is empty');
    throw headerError(this.grammar.lines + 1, 'input ended inside the header');
  }
}

/** Header lines are printable ASCII; anything else (CR, NUL, UTF-8) is rejected here. */
function lineText(line: Buffer, lineNumber: number): string {
  for (let i = 0; i < line.length; i++) {
    const byte = line[i] as number;
    if (byte < 0x20 || byte > 0x7e) {
      throw headerError(lineNumber, `byte 0x${byte.toString(16).padStart(2, '0')} at column ${i + 1} is not printable ASCII`);
    }
  }
  return line.toString('latin1');
}

/** Parses a complete header followed by payload bytes (for callers holding the whole file). */
export function parseHeader(file: Uint8Array): { header: Header; rest: Uint8Array } {
  const reader = new HeaderReader();
  return reader.push(file) ?? reader.end();
}

/** The header text the MAC covers, ending in "---" (no space, MAC or LF). */
export function encodeHeaderNoMac(stanzas: readonly Stanza[]): Uint8Array {
  if (stanzas.length > MAX_STANZAS) throw new AgeError('usage', `age header: ${stanzas.length} stanzas, more than ${MAX_STANZAS}`);
  const lines = [VERSION_LINE];
  for (const stanza of stanzas) {
    lines.push([STANZA_PREFIX.trimEnd(), stanza.type, ...stanza.args].join(' '));
    for (let i = 0; i < stanza.body.length; i += BODY_BYTES_PER_LINE) {
      lines.push(base64Encode(stanza.body.subarray(i, i + BODY_BYTES_PER_LINE)));
    }
    if (stanza.body.length % BODY_BYTES_PER_LINE === 0) lines.push('');
  }
  lines.push('---');
  const encoded = Buffer.from(lines.join('\n'), 'latin1');
  if (encoded.length > MAX_HEADER_SIZE) throw new AgeError('usage', `age header: ${encoded.length} bytes, more than ${MAX_HEADER_SIZE}`);
  return new Uint8Array(encoded);
}

export function encodeHeader(headerNoMac: Uint8Array, mac: Uint8Array): Uint8Array {
  return new Uint8Array(Buffer.concat([headerNoMac, Buffer.from(` ${base64Encode(mac)}\n`, 'latin1')]));
}
