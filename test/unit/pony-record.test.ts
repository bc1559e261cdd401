import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { generateHybridIdentity, identityToRecipient } from 'age-encryption';
import {
  MAX_NAME_WIRE_OCTETS,
  PonyRecordError,
  parsePonyRecord,
  ponyRecordName,
  selectPonyRecord,
  serializePonyRecord,
  txtStrings,
  udpAnswerSize,
  zoneFileLine,
  type PonyRecord,
} from '../../src/crypto/pony-record.js';

// RFC 7748 section 6.1 public keys, and the recipient from age's README.
const ALICE = Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex');
const BOB = Buffer.from('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f', 'hex');
const ALICE_B64 = 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=';
const BOB_B64 = '3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=';
const RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
const TEXT = `v=pony1; n=${ALICE_B64}; a=${RECIPIENT}; p=enforce`;

const RECORD: PonyRecord = { noiseKeys: [ALICE], ageRecipient: RECIPIENT, policy: 'enforce' };

/** Runs `f` and returns the PonyRecordError it throws; fails on success or another error type. */
function recordError(f: () => unknown): PonyRecordError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(PonyRecordError);
    return error as PonyRecordError;
  }
  throw new Error('expected a PonyRecordError');
}

function rejects(text: string | string[], reason: RegExp): void {
  expect(recordError(() => parsePonyRecord(text)).reason).toMatch(reason);
}

describe('_pony record: parsing', () => {
  it('parses the documented form', () => {
    expect(parsePonyRecord(TEXT)).toEqual({ noiseKeys: [new Uint8Array(ALICE)], ageRecipient: RECIPIENT, policy: 'enforce' });
    const withMaxAge = parsePonyRecord(`${TEXT}; max-age=86400`);
    expect(withMaxAge.maxAge).toBe(86400);
  });

  it('takes an absent p= as testing', () => {
    expect(parsePonyRecord(`v=pony1; n=${ALICE_B64}; a=${RECIPIENT}`).policy).toBe('testing');
    expect(parsePonyRecord(`v=pony1; n=${ALICE_B64}; a=${RECIPIENT}; p=testing`).policy).toBe('testing');
  });

  it('allows optional whitespace, tags in any order after v, and one trailing semicolon', () => {
    for (const text of [
      `v=pony1;n=${ALICE_B64};a=${RECIPIENT};p=enforce`,
      `  v = pony1 ;\tn= ${ALICE_B64} ;a =${RECIPIENT}; p=enforce ;`,
      `v=pony1; p=enforce; a=${RECIPIENT}; n=${ALICE_B64}`,
    ]) {
      expect(parsePonyRecord(text)).toEqual(parsePonyRecord(TEXT));
    }
  });

  it('ignores unknown tags (forward compatibility) but still checks their syntax', () => {
    const record = parsePonyRecord(`${TEXT}; x-future=anything at all, even = signs; q=age1pq1zzz; N=upper`);
    expect(record).toEqual(parsePonyRecord(TEXT));
    rejects(`${TEXT}; no equals sign`, /tag 5: expected name=value/);
    rejects(`${TEXT}; =value`, /tag 5: expected name=value/);
    rejects(`${TEXT};; p2=x`, /tag 5: expected name=value/);
  });

  it('reads several keys for a rollover, current first', () => {
    const record = parsePonyRecord(`v=pony1; n=${BOB_B64} , ${ALICE_B64}; a=${RECIPIENT}`);
    expect(record.noiseKeys).toEqual([new Uint8Array(BOB), new Uint8Array(ALICE)]);
  });

  it('joins a TXT value that DNS split into several strings, at any point', () => {
    const expected = parsePonyRecord(TEXT);
    for (let cut = 0; cut <= TEXT.length; cut++) {
      expect(parsePonyRecord([TEXT.slice(0, cut), TEXT.slice(cut)])).toEqual(expected);
    }
    expect(parsePonyRecord(txtStrings(TEXT))).toEqual(expected);
  });

  it('requires v=pony1 first', () => {
    rejects(`n=${ALICE_B64}; v=pony1; a=${RECIPIENT}`, /must begin with v=pony1/);
    rejects(`v=pony2; n=${ALICE_B64}; a=${RECIPIENT}`, /unsupported version "pony2"/);
    rejects(`v=PONY1; n=${ALICE_B64}; a=${RECIPIENT}`, /unsupported version "PONY1"/);
    rejects(`v=pony1x; n=${ALICE_B64}; a=${RECIPIENT}`, /unsupported version/);
    rejects('', /tag 1: expected name=value/);
    rejects('v=spf1 -all', /unsupported version "spf1 -all"/);
  });

  it('rejects duplicate tags, known or not', () => {
    rejects(`${TEXT}; n=${BOB_B64}`, /duplicate tag "n"/);
    rejects(`${TEXT}; p=testing`, /duplicate tag "p"/);
    rejects(`${TEXT}; v=pony1`, /duplicate tag "v"/);
    rejects(`${TEXT}; x=1; x=2`, /duplicate tag "x"/);
    rejects(`${TEXT}; max-age=1; max-age=1`, /duplicate tag "max-age"/);
  });

  it('requires n= and a=', () => {
    rejects(`v=pony1; a=${RECIPIENT}; p=enforce`, /missing tag "n"/);
    rejects(`v=pony1; n=${ALICE_B64}; p=enforce`, /missing tag "a"/);
    rejects('v=pony1', /missing tag "n"/);
  });

  it('rejects Noise keys that are not canonical base64 of exactly 32 bytes', () => {
    const record = (n: string) => `v=pony1; n=${n}; a=${RECIPIENT}`;
    rejects(record(Buffer.alloc(31, 7).toString('base64')), /n: key 1: expected 32 bytes, got 31/);
    rejects(record(Buffer.alloc(33, 7).toString('base64')), /n: key 1: expected 32 bytes, got 33/);
    rejects(record(''), /n: key 1: expected 32 bytes, got 0/);
    rejects(record(ALICE_B64.slice(0, -1)), /n: key 1: not canonical base64/); // padding removed
    rejects(record(ALICE_B64.replace('mo=', 'mp=')), /n: key 1: not canonical base64/); // non-zero padding bits
    rejects(record(ALICE_B64.replace('/', '_')), /n: key 1: not canonical base64/); // base64url alphabet
    rejects(record(ALICE_B64.replace('Wg2', 'Wg 2')), /n: key 1: not canonical base64/);
    rejects(record(`${ALICE_B64},`), /n: key 2: expected 32 bytes, got 0/);
    rejects(record('!!!!'), /n: key 1: not canonical base64: "!!!!"/);
    rejects(record(`${ALICE_B64},${BOB_B64},${ALICE_B64}`), /n: key 3 repeats an earlier key/);
  });

  it('accepts up to 4 keys and rejects a fifth', () => {
    const keys = [1, 2, 3, 4, 5].map((i) => Buffer.alloc(32, i).toString('base64'));
    expect(parsePonyRecord(`v=pony1; n=${keys.slice(0, 4).join(',')}; a=${RECIPIENT}`).noiseKeys).toHaveLength(4);
    rejects(`v=pony1; n=${keys.join(',')}; a=${RECIPIENT}`, /n: 5 keys \(limit 4\)/);
  });

  it('requires a= to be a valid age X25519 recipient', async () => {
    const hybrid = await identityToRecipient(await generateHybridIdentity());
    const record = (a: string) => `v=pony1; n=${ALICE_B64}; a=${a}`;
    rejects(record(hybrid), /a: expected an age X25519 recipient/);
    rejects(record('ssh-ed25519 AAAA'), /a: expected an age X25519 recipient/);
    rejects(record(''), /a: expected an age X25519 recipient/);
    rejects(record(RECIPIENT.slice(0, -1)), /^a: /); // checksum no longer matches
    rejects(record(`${RECIPIENT}q`), /^a: /);
    rejects(record(RECIPIENT.replace('ql3z', 'ql3x')), /^a: /);
    rejects(record('age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq'), /^a: /);
  });

  it('rejects a p= other than enforce or testing', () => {
    for (const p of ['Enforce', 'reject', 'none', '']) {
      rejects(`${TEXT.replace('p=enforce', `p=${p}`)}`, /p: expected enforce or testing/);
    }
  });

  it('reads relay=sealed, takes relay=none or no relay tag as no sealed relay, and rejects other values', () => {
    expect(parsePonyRecord(`${TEXT}; relay=sealed`).sealedRelay).toBe(true);
    expect(parsePonyRecord(`${TEXT}; relay = sealed ;`).sealedRelay).toBe(true);
    expect(parsePonyRecord(`${TEXT}; relay=none`)).toEqual(parsePonyRecord(TEXT));
    expect(parsePonyRecord(TEXT).sealedRelay).toBeUndefined();
    for (const value of ['Sealed', 'yes', 'plain', 'sealed,none', '']) {
      rejects(`${TEXT}; relay=${value}`, /^relay: expected sealed or none, got /);
    }
    rejects(`${TEXT}; relay=sealed; relay=none`, /duplicate tag "relay"/);
  });

  it('rejects a max-age that is not whole seconds from 0 to one year', () => {
    expect(parsePonyRecord(`${TEXT}; max-age=0`).maxAge).toBe(0);
    expect(parsePonyRecord(`${TEXT}; max-age=31557600`).maxAge).toBe(31557600);
    for (const value of ['-1', '1.5', '1e3', '01', '', ' ', '31557601', '99999999999', '0x10']) {
      rejects(`${TEXT}; max-age=${value}`, /max-age: expected whole seconds/);
    }
  });

  it('rejects characters outside printable ASCII and oversized input', () => {
    rejects(`${TEXT}\n`, /outside printable ASCII/);
    rejects(`${TEXT}\u0000`, /outside printable ASCII/);
    rejects(`${TEXT}; x=é`, /outside printable ASCII/);
    rejects(`${TEXT}; x=${'a'.repeat(8192)}`, /too long/);
  });

  it('never turns a truncated record into a different key or recipient', () => {
    const full = parsePonyRecord(`${TEXT}; max-age=600`);
    const text = `${TEXT}; max-age=600`;
    for (let length = 0; length < text.length; length++) {
      const prefix = text.slice(0, length);
      let record: PonyRecord;
      try {
        record = parsePonyRecord(prefix);
      } catch (error) {
        expect(error).toBeInstanceOf(PonyRecordError);
        continue;
      }
      // A cut can shorten p= or max-age= (DNS carries no integrity without DNSSEC), never a key.
      expect(record.noiseKeys).toEqual(full.noiseKeys);
      expect(record.ageRecipient).toBe(full.ageRecipient);
    }
  });

  it('rejects every single-bit flip inside a= and throws only PonyRecordError for any flip', () => {
    const start = TEXT.indexOf(RECIPIENT);
    for (let i = 0; i < TEXT.length; i++) {
      for (let bit = 0; bit < 7; bit++) {
        const flipped = TEXT.slice(0, i) + String.fromCharCode(TEXT.charCodeAt(i) ^ (1 << bit)) + TEXT.slice(i + 1);
        let parsed = true;
        try {
          parsePonyRecord(flipped);
        } catch (error) {
          expect(error).toBeInstanceOf(PonyRecordError);
          parsed = false;
        }
        if (i >= start && i < start + RECIPIENT.length) expect(parsed, `flip of bit ${bit} at ${i}`).toBe(false);
      }
    }
  });

  it('throws only PonyRecordError on arbitrary input (property)', () => {
    const tag = fc.oneof(fc.constantFrom('v=pony1', `n=${ALICE_B64}`, `a=${RECIPIENT}`, 'p=enforce', 'max-age=5', 'n=', 'a=age1'), fc.string());
    fc.assert(
      fc.property(fc.array(tag, { maxLength: 8 }), fc.constantFrom(';', '; ', ' ;'), (tags, separator) => {
        try {
          parsePonyRecord(tags.join(separator));
        } catch (error) {
          if (!(error instanceof PonyRecordError)) throw error;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('_pony record: choosing among TXT answers', () => {
  it('returns null when no answer is a version-1 record', () => {
    expect(selectPonyRecord([])).toBeNull();
    expect(selectPonyRecord([['v=spf1 -all'], ['v=pony2; n=x'], ['v=pony10; n=x'], ['hello']])).toBeNull();
  });

  it('picks the one version-1 record, joining its strings', () => {
    expect(selectPonyRecord([['v=spf1 -all'], [TEXT]])).toEqual(parsePonyRecord(TEXT));
    expect(selectPonyRecord(['google-site-verification=x', [TEXT.slice(0, 30), TEXT.slice(30)]])).toEqual(parsePonyRecord(TEXT));
  });

  it('refuses two version-1 records as ambiguous, even when one is broken', () => {
    expect(recordError(() => selectPonyRecord([[TEXT], [TEXT]])).reason).toMatch(/^ambiguous: 2 TXT records/);
    expect(recordError(() => selectPonyRecord([[TEXT], ['v=pony1; n=garbage']])).reason).toMatch(/^ambiguous/);
  });

  it('reports a broken version-1 record instead of ignoring it', () => {
    expect(recordError(() => selectPonyRecord([['v=pony1; n=garbage']])).reason).toMatch(/n: key 1/);
  });
});

/** An independent RFC 1035 encoding of the answer a server sends for a TXT query. */
function dnsAnswer(name: string, strings: string[]): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(0x8180, 2); // response, recursion desired and available
  header.writeUInt16BE(1, 4); // QDCOUNT
  header.writeUInt16BE(1, 6); // ANCOUNT
  const qname = Buffer.concat([...name.split('.').map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label, 'ascii')])), Buffer.from([0])]);
  const typeClass = Buffer.from([0, 16, 0, 1]); // TXT IN
  const rdata = Buffer.concat(strings.map((s) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s, 'ascii')])));
  const rr = Buffer.alloc(12);
  rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
  typeClass.copy(rr, 2);
  rr.writeUInt32BE(3600, 6);
  rr.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([header, qname, typeClass, rr, rdata]);
}

/** A domain whose `_pony` name is exactly 255 octets in wire format, the longest DNS allows. */
const LONGEST_DOMAIN = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(55)].join('.');

describe('_pony record: serializing', () => {
  it('writes the documented form and round-trips', () => {
    expect(serializePonyRecord(RECORD)).toBe(TEXT);
    const full: PonyRecord = { noiseKeys: [ALICE, BOB], ageRecipient: RECIPIENT, policy: 'testing', maxAge: 86400 };
    const text = serializePonyRecord(full);
    expect(text).toBe(`v=pony1; n=${ALICE_B64},${BOB_B64}; a=${RECIPIENT}; p=testing; max-age=86400`);
    expect(parsePonyRecord(text)).toEqual({ ...full, noiseKeys: [new Uint8Array(ALICE), new Uint8Array(BOB)] });
  });

  it('refuses to write what the parser would refuse', () => {
    expect(recordError(() => serializePonyRecord({ ...RECORD, noiseKeys: [] })).reason).toMatch(/n: key 1/);
    expect(recordError(() => serializePonyRecord({ ...RECORD, noiseKeys: [ALICE.subarray(1)] })).reason).toMatch(/expected 32 bytes/);
    expect(recordError(() => serializePonyRecord({ ...RECORD, ageRecipient: 'age1nope' })).reason).toMatch(/^a: /);
    expect(recordError(() => serializePonyRecord({ ...RECORD, maxAge: -5 })).reason).toMatch(/max-age/);
    expect(recordError(() => serializePonyRecord({ ...RECORD, ageRecipient: `${RECIPIENT}; p=testing` })).reason).toMatch(/duplicate tag "p"/);
  });

  it('writes relay=sealed last, and nothing for a record without sealed relay', () => {
    const text = serializePonyRecord({ ...RECORD, maxAge: 60, sealedRelay: true });
    expect(text).toBe(`${TEXT}; max-age=60; relay=sealed`);
    expect(parsePonyRecord(text).sealedRelay).toBe(true);
    expect(serializePonyRecord({ ...RECORD, sealedRelay: false })).toBe(TEXT);
  });

  it('fits a 512-octet UDP answer for the longest owner name, with a rollover key, max-age and relay=sealed', () => {
    const name = ponyRecordName(LONGEST_DOMAIN);
    expect(name.length + 2).toBe(MAX_NAME_WIRE_OCTETS);
    const largest: PonyRecord = { noiseKeys: [ALICE, BOB], ageRecipient: RECIPIENT, policy: 'enforce', maxAge: 31557600, sealedRelay: true };
    const text = serializePonyRecord(largest);
    expect(text.length).toBe(209);
    const answer = dnsAnswer(name, txtStrings(text));
    expect(answer.length).toBe(udpAnswerSize(MAX_NAME_WIRE_OCTETS, text));
    expect(answer.length).toBeLessThanOrEqual(512);
  });

  it('refuses a record that would not fit 512 octets', () => {
    const keys = [1, 2, 3, 4].map((i) => Buffer.alloc(32, i));
    const error = recordError(() => serializePonyRecord({ ...RECORD, noiseKeys: keys }));
    expect(error.reason).toMatch(/^too large: a DNS answer would take \d+ octets .*limit 512/);
    const size = Number(/take (\d+) octets/.exec(error.reason)![1]);
    const text = `v=pony1; n=${keys.map((k) => k.toString('base64')).join(',')}; a=${RECIPIENT}; p=enforce`;
    expect(text.length).toBeGreaterThan(255);
    expect(size).toBe(dnsAnswer(ponyRecordName(LONGEST_DOMAIN), [text.slice(0, 255), text.slice(255)]).length);
  });

  it('splits long TXT values into strings of at most 255 octets', () => {
    const text = 'x'.repeat(600);
    expect(txtStrings(text).map((s) => s.length)).toEqual([255, 255, 90]);
    expect(txtStrings(text).join('')).toBe(text);
    expect(txtStrings('x'.repeat(255))).toHaveLength(1);
    expect(txtStrings('')).toEqual(['']);
    expect(udpAnswerSize(10, 'x'.repeat(600))).toBe(dnsAnswer('abcdefgh', txtStrings('x'.repeat(600))).length);
  });
});

describe('_pony record: zone-file line', () => {
  it('prints the exact line', () => {
    expect(zoneFileLine('example.org', RECORD)).toBe(`_pony.example.org. 3600 IN TXT "${TEXT}"`);
    expect(zoneFileLine('Example.ORG.', RECORD, 300)).toBe(`_pony.example.org. 300 IN TXT "${TEXT}"`);
    expect(zoneFileLine('bücher.example', RECORD)).toMatch(/^_pony\.xn--bcher-kva\.example\. 3600 IN TXT "/);
  });

  it('rejects invalid domains and TTLs', () => {
    for (const domain of [
      '',
      '.',
      'localhost',
      'a..b',
      '-a.example',
      'a-.example',
      'a b.example',
      'a_b.example',
      `${'x'.repeat(64)}.example`,
      `${LONGEST_DOMAIN}x`,
    ]) {
      expect(recordError(() => zoneFileLine(domain, RECORD)).reason, domain).toMatch(/^domain /);
    }
    for (const ttl of [-1, 1.5, Number.NaN, 2 ** 31]) {
      expect(recordError(() => zoneFileLine('example.org', RECORD, ttl)).reason).toMatch(/^TTL /);
    }
  });
});

describe('ponyRecordName domain checks', () => {
  it('refuses anything a URL parser would cut short, instead of naming another domain', () => {
    for (const bad of ['example.org/evil.test', 'example.org?x.test', 'user@example.org', 'example.org:25', 'a b.test', 'localhost']) {
      expect(() => ponyRecordName(bad), bad).toThrow(PonyRecordError);
    }
    expect(ponyRecordName('Bücher.Example.')).toBe('_pony.xn--bcher-kva.example');
  });
});
