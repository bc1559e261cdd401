/**
 * Fuzz targets of the text a host reads: the `_pony` DNS record, the `_mta-sts` record and policy
 * file of a legacy destination, the key file and the configuration file; and the DNS replies of
 * the validating resolver (validated-dns.ts).
 */
import fc from 'fast-check';
import { stringify } from 'yaml';
import { bech32Encode } from '../src/crypto/age/encoding.js';
import { generateHybridIdentity } from '../src/crypto/age/index.js';
import { KeyFileError, parseKeyFile, serializeKeyFile } from '../src/crypto/keyfile.js';
import { MAX_MAX_AGE, parsePonyRecord, PonyRecordError, selectPonyRecord, serializePonyRecord, type PonyRecord } from '../src/crypto/pony-record.js';
import { SCHEMA, type Section } from '../src/daemon/config-schema.js';
import { ConfigError, parseConfig } from '../src/daemon/config.js';
import { decodeReply, DNS_TYPE, txtStrings, ValidatedDnsError } from '../src/outbound/validated-dns.js';
import { MAX_POLICY_MAX_AGE, MtaStsError, mxMatches, parseMtaStsPolicy, selectStsRecord } from '../src/outbound/mta-sts-policy.js';
import { textBytes } from './fuzz-mutations.js';
import { byteTarget, bytes, expectEqual, FuzzFailure, latin1, settle, valueTarget, type FuzzTarget } from './fuzz-target.js';

// --- _pony record -----------------------------------------------------------------------------

function checkRecordRoundTrip(record: PonyRecord, what: string): void {
  let text: string;
  try {
    text = serializePonyRecord(record);
  } catch (error) {
    // Four keys may not fit a 512-octet DNS answer: the one refusal a valid record may get.
    if (error instanceof PonyRecordError && error.reason.startsWith('too large')) return;
    throw new FuzzFailure(`${what}: serializer refused a record the parser accepted: ${(error as Error).message}`, { cause: error });
  }
  expectEqual(parsePonyRecord(text), record, what);
}

const ponyRecord = byteTarget('pony-record', async (input) => {
  const text = latin1(input);
  const parsed = await settle([PonyRecordError], () => parsePonyRecord(text));
  const selected = await settle([PonyRecordError], () => selectPonyRecord([text]));
  if ('value' in parsed) {
    expectEqual(selected, parsed, 'selectPonyRecord of the only answer');
    checkRecordRoundTrip(parsed.value, '_pony record re-serialized');
  } else if ('value' in selected && selected.value !== null) {
    throw new FuzzFailure('selectPonyRecord accepted a record parsePonyRecord refuses');
  }
});

const ponyRecordRoundTrip = valueTarget(
  'pony-record-roundtrip',
  fc.record(
    {
      noiseKeys: fc.uniqueArray(fc.uint8Array({ minLength: 32, maxLength: 32 }), {
        minLength: 1,
        maxLength: 4,
        selector: (key) => Buffer.from(key).toString('hex'),
      }),
      ageRecipient: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((key) => bech32Encode('age', key, false)),
      policy: fc.constantFrom('enforce' as const, 'testing' as const),
      maxAge: fc.integer({ min: 0, max: MAX_MAX_AGE }),
    },
    { requiredKeys: ['noiseKeys', 'ageRecipient', 'policy'], noNullPrototype: true },
  ),
  (record) => checkRecordRoundTrip(record, '_pony record round trip'),
);

// --- MTA-STS --------------------------------------------------------------------------------

/** The answer may not depend on how DNS split the record into strings. */
const mtaStsRecord = byteTarget('mta-sts-record', async (input) => {
  const text = latin1(input);
  const whole = await settle([MtaStsError], () => selectStsRecord('d.test', [[text]]));
  const cut = Math.floor(text.length / 2);
  expectEqual(await settle([MtaStsError], () => selectStsRecord('d.test', [[text.slice(0, cut), text.slice(cut)]])), whole, 'record split in two strings');
  if ('value' in whole && whole.value !== null && !/^[A-Za-z0-9]{1,32}$/.test(whole.value.id))
    throw new FuzzFailure(`accepted id ${JSON.stringify(whole.value.id)}`);
});

/** A DNS reply, read as the answer to the query it names (its own id), for TXT and for MX: only ValidatedDnsError. */
const dnsReply = byteTarget('dns-reply', async (input) => {
  const id = input.length >= 2 ? (input[0]! << 8) | input[1]! : 0;
  const txt = await settle([ValidatedDnsError], () => decodeReply(input, id, DNS_TYPE.TXT).records.map(txtStrings));
  if ('value' in txt && txt.value.length > 0xffff) throw new FuzzFailure(`${txt.value.length} records from one reply`);
  await settle([ValidatedDnsError], () => decodeReply(input, id, DNS_TYPE.MX));
});

/** An accepted policy is within its limits, names hosts that match themselves, and reads the same with CRLF. */
const mtaStsPolicy = byteTarget('mta-sts-policy', async (input) => {
  const text = latin1(input);
  const parsed = await settle([MtaStsError], () => parseMtaStsPolicy('d.test', 'id1', text));
  expectEqual(await settle([MtaStsError], () => parseMtaStsPolicy('d.test', 'id1', text.replace(/\r?\n/g, '\r\n'))), parsed, 'policy with CRLF line ends');
  if (!('value' in parsed)) return;
  const policy = parsed.value;
  if (!(policy.maxAgeSeconds >= 0 && policy.maxAgeSeconds <= MAX_POLICY_MAX_AGE)) throw new FuzzFailure(`max_age ${policy.maxAgeSeconds} accepted`);
  if (policy.mode !== 'none' && policy.mx.length === 0) throw new FuzzFailure(`mode ${policy.mode} accepted without mx`);
  for (const pattern of policy.mx) {
    const host = pattern.startsWith('*.') ? `mx.${pattern.slice(2)}` : pattern;
    if (!mxMatches(policy, host) || !mxMatches(policy, `${host.toUpperCase()}.`)) throw new FuzzFailure(`mx ${pattern} does not match ${host}`);
  }
});

// --- Key file ---------------------------------------------------------------------------------

const keyFile = byteTarget('key-file', async (input) => {
  const parsed = await settle([KeyFileError], () => parseKeyFile(Buffer.from(input).toString('utf8')));
  if ('value' in parsed) expectEqual(parseKeyFile(serializeKeyFile(parsed.value)), parsed.value, 'key file re-serialized');
});

/** Hybrid identities are slow to make (ML-KEM): a few, made once. */
let hybridIdentities: string[] | undefined;
const hybridIdentity = fc.nat({ max: 2 }).map((i) => (hybridIdentities ??= [0, 1, 2].map(() => generateHybridIdentity()))[i]!);

const keyFileRoundTrip = valueTarget(
  'key-file-roundtrip',
  fc.record({
    noise: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    ageX25519: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((key) => bech32Encode('AGE-SECRET-KEY-', key, true)),
    ageHybrid: hybridIdentity,
    order: fc.shuffledSubarray([0, 1, 2], { minLength: 3, maxLength: 3 }),
    lineEnd: fc.constantFrom('\n', '\r\n'),
    comment: fc.constantFrom('', '# a comment\n', '\n\n'),
  }),
  ({ noise, ageX25519, ageHybrid, order, lineEnd, comment }) => {
    const fields = [`noise-static: ${Buffer.from(noise).toString('base64')}`, `age-x25519: ${ageX25519}`, `age-hybrid: ${ageHybrid}`];
    const text = [comment, 'blackpony-key-file: 1', ...order.map((i) => fields[i]!)].join(lineEnd);
    const keys = parseKeyFile(text);
    expectEqual([bytes(keys.noise.privateKey), keys.ageX25519Identity, keys.ageHybridIdentity], [noise, ageX25519, ageHybrid], 'key file fields');
    expectEqual(parseKeyFile(serializeKeyFile(keys)), keys, 'key file round trip');
  },
);

// --- Configuration file -----------------------------------------------------------------------

const yamlJunk = fc.jsonValue({ maxDepth: 2 });

/** Maps shaped like SCHEMA: its keys (each optional) with plausible or junk values, and stray keys. */
function schemaShaped(section: Section): fc.Arbitrary<Record<string, unknown>> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [key, node] of Object.entries(section.fields)) {
    if ('fields' in node) {
      fields[key] = fc.oneof(schemaShaped(node), yamlJunk);
    } else {
      const field = node;
      const plausible = [field.default, field.example].filter((v) => v !== undefined);
      fields[key] = plausible.length === 0 ? yamlJunk : fc.oneof(fc.constantFrom(...plausible), yamlJunk);
    }
  }
  return fc
    .tuple(fc.record(fields, { requiredKeys: [] }), fc.dictionary(fc.string({ maxLength: 8 }), yamlJunk, { maxKeys: 2 }))
    .map(([known, stray]) => ({ ...stray, ...known }));
}

const config = byteTarget(
  'config',
  async (input) => {
    const parsed = await settle([ConfigError], () => parseConfig(Buffer.from(input).toString('utf8')));
    if ('error' in parsed && (parsed.error as ConfigError).problems.length === 0) throw new FuzzFailure('ConfigError without problems');
    if ('value' in parsed && typeof parsed.value.hostname !== 'string') throw new FuzzFailure('config accepted without a hostname');
  },
  textBytes(
    schemaShaped(SCHEMA).map((value) => stringify(value)),
    'utf8',
  ),
);

/** Every target, in the order the long run visits them. */

export const FILE_TARGETS: readonly FuzzTarget<unknown>[] = [
  ponyRecord,
  ponyRecordRoundTrip,
  mtaStsRecord,
  mtaStsPolicy,
  dnsReply,
  keyFile,
  keyFileRoundTrip,
  config,
];
