/**
 * The X-Pony-Trace header field (docs/PROTOCOL.md, "The trace header"): one per hop through
 * blackpony, prepended to the message before Postfix sees it, recording how the message reached
 * this host. Values are tokens; whatever the client chose (its HELO name) is reduced to a safe
 * token so it can neither fold, end nor forge the field.
 */
import type { KeyEvidence } from '../xpony/index.js';

export type TraceVia = 'plain' | 'starttls' | 'xpony';

export interface TraceFacts {
  /** This host's name. */
  by: string;
  via: TraceVia;
  /** The XPONY protocol version of the tunnel (via=xpony only). */
  xponyVersion: string | undefined;
  /** The fingerprint of the peer's Noise static key (via=xpony only). */
  peerFingerprint: string | undefined;
  /** Whether the message arrived sealed and was opened here. */
  sealed: boolean;
  clientAddress: string;
  clientPort: number;
  helo: string | undefined;
  /** How the client said it knew this host's key (XPONY-EVIDENCE, via=xpony only; unverified). */
  keyEvidence?: KeyEvidence;
  date: Date;
}

export const TRACE_FIELD_NAME = 'X-Pony-Trace';
export const TRACE_VERSION = '1';

const UNSAFE_TOKEN_CHARS = /[^A-Za-z0-9.:_\-[\]]/g;

/**
 * The header field, folded, ending in CRLF. A sealed message opened outside a tunnel came as
 * ordinary mail, through a relay (a backup MX) that saw its envelope: `relay=sealed` says so.
 */
export function traceHeader(facts: TraceFacts): Buffer {
  const first = [
    `v=${TRACE_VERSION}`,
    `by=${token(facts.by)}`,
    `via=${facts.via === 'xpony' ? `xpony/${token(facts.xponyVersion ?? '?')}` : facts.via}`,
    `peer=${facts.peerFingerprint === undefined ? 'none' : token(facts.peerFingerprint)}`,
    `sealed=${facts.sealed ? 'yes' : 'no'}`,
    ...(facts.sealed && facts.via !== 'xpony' ? ['relay=sealed'] : []),
  ];
  const second = [
    `client=${token(`[${facts.clientAddress}]:${facts.clientPort}`)}`,
    `helo=${facts.helo === undefined ? 'none' : token(facts.helo)}`,
    ...(facts.keyEvidence === undefined ? [] : [`evidence=${facts.keyEvidence}`]),
  ];
  return Buffer.from(`${TRACE_FIELD_NAME}: ${first.join('; ')};\r\n\t${second.join('; ')};\r\n\t${rfc5322Date(facts.date)}\r\n`, 'latin1');
}

/** The longest field name looked for before a first line is taken for body (RFC 5322's line limit). */
const MAX_FIELD_NAME = 998;
const COLON = 0x3a;

/**
 * What goes between the trace field and the message, decided on the message's first octets:
 * nothing when it begins with a header field (a name of printable ASCII, optional SP or HTAB, a
 * colon, as Postfix's cleanup recognises one) or with the empty line of an empty header section;
 * otherwise an empty line. Such a first line is body for Postfix too (it ends the header section
 * there), and without the empty line a leading SP or HTAB would continue the trace field.
 * Undefined while `start` cannot tell yet and more octets may come.
 */
export function afterTrace(start: Buffer, ended: boolean): '' | '\r\n' | undefined {
  if (start.length === 0) return ended ? '' : undefined;
  if (start[0] === 0x0d || start[0] === 0x0a) return '';
  let at = 0;
  while (at < start.length && at < MAX_FIELD_NAME && isNameOctet(start[at] as number)) at++;
  if (at > 0) while (at < start.length && (start[at] === 0x20 || start[at] === 0x09)) at++;
  if (at === start.length && at < MAX_FIELD_NAME && !ended) return undefined;
  return at > 0 && start[at] === COLON ? '' : '\r\n';
}

/** RFC 5322 ftext: printable ASCII but the colon. */
function isNameOctet(octet: number): boolean {
  return octet > 0x20 && octet < 0x7f && octet !== COLON;
}

function token(value: string): string {
  const safe = value.slice(0, 255).replace(UNSAFE_TOKEN_CHARS, '?');
  return safe === '' ? '?' : safe;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 section 3.3 date-time in UTC, e.g. "Sun, 22 Nov 2026 01:05:34 +0000". */
export function rfc5322Date(date: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${DAYS[date.getUTCDay()]}, ${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} +0000`;
}
