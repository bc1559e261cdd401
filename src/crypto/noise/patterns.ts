/**
 * Noise handshake patterns (spec revision 34, sections 7.2-7.5 and 18) as data, in the spec's own
 * notation, plus the psk modifier (section 9) and the hfs modifier (KEM-based hybrid forward
 * secrecy, Noise HFS spec revision 1). Everything else in the implementation is generic over this
 * table.
 */
import { NoiseProtocolNameError, NoiseUnsupportedError } from './errors.js';

export type PreMessageToken = 'e' | 's';
export type Token = 'e' | 's' | 'ee' | 'es' | 'se' | 'ss' | 'psk' | 'e1' | 'ekem1';

export interface HandshakePattern {
  /** Name with modifiers, e.g. "XXpsk3". */
  readonly name: string;
  /** One-way patterns (N, K, X): a single message, then transport from initiator to responder only. */
  readonly oneWay: boolean;
  readonly initiatorPreMessage: readonly PreMessageToken[];
  readonly responderPreMessage: readonly PreMessageToken[];
  /** Message i goes initiator -> responder when i is even, responder -> initiator when odd. */
  readonly messages: readonly (readonly Token[])[];
  /** Whether any psk token occurs; then every "e" token also mixes the ephemeral into the key (section 9.2). */
  readonly psk: boolean;
  /** Whether the hfs modifier added e1 and ekem1: the protocol name then names a KEM after the DH. */
  readonly hfs: boolean;
}

const ONE_WAY = new Set(['N', 'K', 'X']);

// Pre-messages above "...", messages below; the arrows must alternate starting with "->".
const NOTATION: Record<string, string> = {
  N: '<- s | ... | -> e, es',
  K: '-> s | <- s | ... | -> e, es, ss',
  X: '<- s | ... | -> e, es, s, ss',
  NN: '-> e | <- e, ee',
  NK: '<- s | ... | -> e, es | <- e, ee',
  NX: '-> e | <- e, ee, s, es',
  XN: '-> e | <- e, ee | -> s, se',
  XK: '<- s | ... | -> e, es | <- e, ee | -> s, se',
  XX: '-> e | <- e, ee, s, es | -> s, se',
  KN: '-> s | ... | -> e | <- e, ee, se',
  KK: '-> s | <- s | ... | -> e, es, ss | <- e, ee, se',
  KX: '-> s | ... | -> e | <- e, ee, se, s, es',
  IN: '-> e, s | <- e, ee, se',
  IK: '<- s | ... | -> e, es, s, ss | <- e, ee, se',
  IX: '-> e, s | <- e, ee, se, s, es',
  // Deferred patterns (section 18).
  NK1: '<- s | ... | -> e | <- e, ee, es',
  NX1: '-> e | <- e, ee, s | -> es',
  X1N: '-> e | <- e, ee | -> s | <- se',
  X1K: '<- s | ... | -> e, es | <- e, ee | -> s | <- se',
  XK1: '<- s | ... | -> e | <- e, ee, es | -> s, se',
  X1K1: '<- s | ... | -> e | <- e, ee, es | -> s | <- se',
  X1X: '-> e | <- e, ee, s, es | -> s | <- se',
  XX1: '-> e | <- e, ee, s | -> es, s, se',
  X1X1: '-> e | <- e, ee, s | -> es, s | <- se',
  K1N: '-> s | ... | -> e | <- e, ee | -> se',
  K1K: '-> s | <- s | ... | -> e, es | <- e, ee | -> se',
  KK1: '-> s | <- s | ... | -> e | <- e, ee, se, es',
  K1K1: '-> s | <- s | ... | -> e | <- e, ee, es | -> se',
  K1X: '-> s | ... | -> e | <- e, ee, s, es | -> se',
  KX1: '-> s | ... | -> e | <- e, ee, se, s | -> es',
  K1X1: '-> s | ... | -> e | <- e, ee, s | -> se, es',
  I1N: '-> e, s | <- e, ee | -> se',
  I1K: '<- s | ... | -> e, es, s | <- e, ee | -> se',
  IK1: '<- s | ... | -> e, s | <- e, ee, se, es',
  I1K1: '<- s | ... | -> e, s | <- e, ee, es | -> se',
  I1X: '-> e, s | <- e, ee, s, es | -> se',
  IX1: '-> e, s | <- e, ee, se, s | -> es',
  I1X1: '-> e, s | <- e, ee, s | -> se, es',
};

// The table's own tokens; e1 and ekem1 come only from the hfs modifier.
const TOKENS = new Set<string>(['e', 's', 'ee', 'es', 'se', 'ss', 'psk']);

function parseLine(line: string): { arrow: string; tokens: string[] } {
  const arrow = line.slice(0, 2);
  const tokens = line
    .slice(2)
    .split(',')
    .map((t) => t.trim());
  return { arrow, tokens };
}

function parseNotation(name: string, notation: string): HandshakePattern {
  const lines = notation.split('|').map((l) => l.trim());
  const dots = lines.indexOf('...');
  const preLines = dots === -1 ? [] : lines.slice(0, dots).map(parseLine);
  const messageLines = lines.slice(dots + 1).map(parseLine);
  messageLines.forEach((line, i) => {
    const expected = i % 2 === 0 ? '->' : '<-';
    if (line.arrow !== expected || !line.tokens.every((t) => TOKENS.has(t))) {
      throw new Error(`handshake pattern ${name}: message ${i + 1} is malformed: "${notation}"`);
    }
  });
  const pre = (arrow: string) => (preLines.find((l) => l.arrow === arrow)?.tokens ?? []) as PreMessageToken[];
  return {
    name,
    oneWay: ONE_WAY.has(name),
    initiatorPreMessage: pre('->'),
    responderPreMessage: pre('<-'),
    messages: messageLines.map((l) => l.tokens as Token[]),
    psk: false,
    hfs: false,
  };
}

const BASE_PATTERNS = new Map(Object.entries(NOTATION).map(([name, notation]) => [name, parseNotation(name, notation)]));

/** Names of the base patterns this implementation knows (without modifiers). */
export const PATTERN_NAMES: readonly string[] = [...BASE_PATTERNS.keys()];

/** pskN: psk0 opens the first message, pskN (N >= 1) closes message N (section 9.2). */
function withPsk(pattern: HandshakePattern, position: number, fullName: string): HandshakePattern {
  if (pattern.hfs) throw new NoiseUnsupportedError(`handshake pattern ${fullName}: hfs together with psk is not specified`);
  if (position > pattern.messages.length) {
    throw new NoiseProtocolNameError(
      `handshake pattern ${fullName}: psk${position} names a message the pattern does not have (it has ${pattern.messages.length})`,
    );
  }
  const messages = pattern.messages.map((tokens, i) => {
    if (position === 0 && i === 0) return ['psk', ...tokens] as Token[];
    if (position > 0 && i === position - 1) return [...tokens, 'psk'] as Token[];
    return tokens;
  });
  return { ...pattern, messages, psk: true };
}

const DH_TOKENS = new Set<Token>(['ee', 'es', 'se', 'ss']);

/**
 * hfs (Noise HFS section 5): "e1" directly after the first "e", or after the first DH that follows
 * that "e" in the same message so the KEM public key travels encrypted; "ekem1" directly after the
 * first "ee". (The spec's table shows KKhfs with e1 before es and INhfs without ee; the rule, not
 * those two rows, is what runs here.)
 */
function withHfs(pattern: HandshakePattern, fullName: string): HandshakePattern {
  if (pattern.psk) throw new NoiseUnsupportedError(`handshake pattern ${fullName}: hfs together with psk is not specified`);
  if (pattern.hfs) throw new NoiseProtocolNameError(`handshake pattern ${fullName}: hfs given twice`);
  const eMessage = pattern.messages.findIndex((tokens) => tokens.includes('e'));
  const eeMessage = pattern.messages.findIndex((tokens) => tokens.includes('ee'));
  if (eeMessage === -1) throw new NoiseUnsupportedError(`handshake pattern ${fullName}: hfs needs a pattern with ee`);
  const messages = pattern.messages.map((tokens, i) => {
    const result = [...tokens];
    if (i === eeMessage) result.splice(result.indexOf('ee') + 1, 0, 'ekem1');
    if (i === eMessage) {
      const e = result.indexOf('e');
      const dh = result.findIndex((token, j) => j > e && DH_TOKENS.has(token));
      result.splice((dh === -1 ? e : dh) + 1, 0, 'e1');
    }
    return result;
  });
  return { ...pattern, messages, hfs: true };
}

/**
 * A pattern by its name as it appears in a protocol name: base pattern (uppercase letters and
 * digits) then modifiers joined by "+", e.g. "XXpsk3", "NNpsk0+psk2" or "XXhfs".
 */
export function handshakePattern(name: string): HandshakePattern {
  const match = /^([A-Z][A-Z0-9]*)(.*)$/.exec(name);
  if (match === null) throw new NoiseProtocolNameError(`handshake pattern "${name}": expected a pattern name such as XX`);
  const [, baseName = '', modifierText = ''] = match;
  const base = BASE_PATTERNS.get(baseName);
  if (base === undefined) throw new NoiseUnsupportedError(`handshake pattern "${baseName}" is not supported`);
  if (modifierText === '') return base;
  let pattern: HandshakePattern = { ...base, name };
  for (const modifier of modifierText.split('+')) {
    if (modifier === 'hfs') {
      pattern = withHfs(pattern, name);
      continue;
    }
    const psk = /^psk(\d{1,2})$/.exec(modifier);
    if (psk === null) throw new NoiseUnsupportedError(`handshake pattern ${name}: modifier "${modifier}" is not supported`);
    pattern = withPsk(pattern, Number(psk[1]), name);
  }
  return pattern;
}
