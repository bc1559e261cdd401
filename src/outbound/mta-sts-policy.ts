/**
 * MTA-STS (RFC 8461) texts: the `_mta-sts.<domain>` TXT record (section 3.1), the policy file
 * served at `https://mta-sts.<domain>/.well-known/mta-sts.txt` (section 3.2), and which MX host
 * names a policy allows (section 4.1). Pure parsing; fetching and caching are in mta-sts.ts.
 *
 *   TXT:    v=STSv1; id=<1-32 letters and digits>[; <name>=<value>...][;]
 *   policy: version: STSv1 / mode: enforce|testing|none / max_age: <seconds> / mx: [*.]<host>
 *           (one `key: value` per line, LF or CRLF; `mx` once per host, required unless mode is
 *           none; unknown keys ignored, so later versions can add some)
 *           and blackpony's extension field `pony-key: <base64 Noise key>`, once per key: the
 *           domain's XPONY keys, vouched for by the policy's HTTPS (docs/PROTOCOL.md section 11)
 */
import { base64 } from '@scure/base';
import { normalizeDomain } from '../crypto/domain-name.js';
import { X25519_KEY_LENGTH } from '../crypto/primitives.js';

export type MtaStsMode = 'enforce' | 'testing' | 'none';
const MODES: readonly MtaStsMode[] = ['enforce', 'testing', 'none'];

/** The longest max_age (RFC 8461 section 3.2): one year. */
export const MAX_POLICY_MAX_AGE = 31_557_600;

export interface MtaStsPolicy {
  /** The `id=` of the TXT record that announced this policy. */
  id: string;
  mode: MtaStsMode;
  /** Host names or `*.`-patterns, lower case, without trailing dot; empty only under mode none. */
  mx: string[];
  maxAgeSeconds: number;
  /**
   * The `pony-key` extension fields' keys (at most MAX_POLICY_PONY_KEYS). One that does not parse
   * is left out: it then vouches for nothing, and the rest of the policy still holds.
   */
  ponyKeys: Uint8Array[];
}

/** The extension field naming the domain's XPONY keys in its MTA-STS policy file. */
export const PONY_KEY_FIELD = 'pony-key';
/** `pony-key` fields read from one policy, as many as a `_pony` record's `n=` may hold. */
export const MAX_POLICY_PONY_KEYS = 4;

export class MtaStsError extends Error {
  override readonly name = 'MtaStsError';
  constructor(
    readonly domain: string,
    readonly reason: string,
  ) {
    super(`mta-sts ${domain}: ${reason}`);
  }
}

/** A value from the input, quoted and cut short, for error messages. */
export function quoted(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value);
}

export function stsRecordName(domain: string): string {
  return `_mta-sts.${domain}`;
}

// RFC 8461 section 3.1 says records not beginning with "v=STSv1;" are discarded; its grammar
// allows spaces before the ";" (erratum 6285), so both are taken as version-1 records.
const STS_VERSION = /^v=STSv1[ \t]*(;|$)/;
const STS_FIELD = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,31})[ \t]*=[ \t]*([\x21-\x3a\x3c\x3e-\x7e]+)$/;
const STS_ID = /^[A-Za-z0-9]{1,32}$/;

/**
 * The policy id announced by TXT answers (each answer's strings joined), or null when none is a
 * v=STSv1 record. More than one, or one that does not parse, throws: the RFC then treats the
 * domain as having no available policy.
 */
export function selectStsRecord(domain: string, answers: readonly (readonly string[])[]): { id: string } | null {
  const records = answers.map((strings) => strings.join('')).filter((text) => STS_VERSION.test(text));
  if (records.length === 0) return null;
  if (records.length > 1) throw new MtaStsError(domain, `${records.length} v=STSv1 records at ${stsRecordName(domain)} (exactly one allowed)`);
  return parseStsRecord(domain, records[0]!);
}

function parseStsRecord(domain: string, text: string): { id: string } {
  const invalid = (reason: string): MtaStsError => new MtaStsError(domain, `TXT ${stsRecordName(domain)}: ${reason}`);
  const fields = text.split(';').slice(1);
  if (fields.length > 0 && fields[fields.length - 1]!.trim() === '') fields.pop(); // one trailing ";"
  let id: string | undefined;
  for (const field of fields) {
    const match = STS_FIELD.exec(field.replace(/^[ \t]+|[ \t]+$/g, ''));
    if (match === null) throw invalid(`expected name=value, got ${quoted(field)}`);
    if (match[1] !== 'id') continue;
    if (id !== undefined) throw invalid('id appears twice');
    if (!STS_ID.test(match[2]!)) throw invalid(`id must be 1 to 32 letters and digits, got ${quoted(match[2]!)}`);
    id = match[2]!;
  }
  if (id === undefined) throw invalid('missing id');
  return { id };
}

const POLICY_LINE = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):[ \t]*(.*?)[ \t]*$/;
const MAX_AGE = /^[0-9]{1,10}$/;
const SINGLE_FIELDS = ['version', 'mode', 'max_age'] as const;

/** The policy file's text, announced with TXT id `id`; throws MtaStsError naming the line. */
export function parseMtaStsPolicy(domain: string, id: string, text: string): MtaStsPolicy {
  const single = new Map<string, string>();
  const mx: string[] = [];
  const ponyKeys: Uint8Array[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === '') return;
    const invalid = (reason: string): MtaStsError => new MtaStsError(domain, `policy line ${index + 1}: ${reason}`);
    const match = POLICY_LINE.exec(line);
    if (match === null) throw invalid(`expected "key: value", got ${quoted(line)}`);
    const key = match[1]!;
    const value = match[2]!;
    if (key === 'mx') {
      mx.push(mxPattern(value, invalid));
    } else if (key === PONY_KEY_FIELD) {
      const ponyKey = noiseKeyOf(value);
      if (ponyKey !== undefined && ponyKeys.length < MAX_POLICY_PONY_KEYS) ponyKeys.push(ponyKey);
    } else if ((SINGLE_FIELDS as readonly string[]).includes(key)) {
      if (single.has(key)) throw invalid(`${key} appears twice`);
      single.set(key, value);
    }
  });
  const required = (key: (typeof SINGLE_FIELDS)[number]): string => {
    const value = single.get(key);
    if (value === undefined) throw new MtaStsError(domain, `policy: missing ${key}`);
    return value;
  };
  const version = required('version');
  if (version !== 'STSv1') throw new MtaStsError(domain, `policy: unsupported version ${quoted(version)} (expected "STSv1")`);
  const mode = required('mode');
  if (!(MODES as readonly string[]).includes(mode)) throw new MtaStsError(domain, `policy: mode must be enforce, testing or none, got ${quoted(mode)}`);
  const maxAge = required('max_age');
  if (!MAX_AGE.test(maxAge) || Number(maxAge) > MAX_POLICY_MAX_AGE) {
    throw new MtaStsError(domain, `policy: max_age must be 0 to ${MAX_POLICY_MAX_AGE} seconds, got ${quoted(maxAge)}`);
  }
  if (mx.length === 0 && mode !== 'none') throw new MtaStsError(domain, `policy: mode ${mode} needs at least one mx`);
  return { id, mode: mode as MtaStsMode, mx, maxAgeSeconds: Number(maxAge), ponyKeys };
}

/** A Noise static key in canonical base64 (32 octets), or undefined. */
function noiseKeyOf(value: string): Uint8Array | undefined {
  try {
    const key = base64.decode(value);
    return key.length === X25519_KEY_LENGTH ? key : undefined;
  } catch {
    return undefined;
  }
}

/** `host` or `*.host`, as a lower-case ASCII name. */
function mxPattern(value: string, invalid: (reason: string) => MtaStsError): string {
  const wildcard = value.startsWith('*.');
  const host = normalizeDomain(wildcard ? value.slice(2) : value);
  if (host === null) throw invalid(`mx must be a host name or *.<host name>, got ${quoted(value)}`);
  return wildcard ? `*.${host}` : host;
}

/**
 * Whether MX host `host` is one the policy allows (RFC 8461 section 4.1): a pattern equal to it
 * (case-insensitive, trailing dot ignored), or `*.<suffix>` with exactly one more label in front.
 */
export function mxMatches(policy: Pick<MtaStsPolicy, 'mx'>, host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return policy.mx.some((pattern) => {
    if (!pattern.startsWith('*.')) return pattern === name;
    const suffix = pattern.slice(1);
    if (!name.endsWith(suffix)) return false;
    const label = name.slice(0, -suffix.length);
    return label !== '' && !label.includes('.');
  });
}
