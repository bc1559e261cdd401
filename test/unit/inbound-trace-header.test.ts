/** The X-Pony-Trace field (docs/PROTOCOL.md, "The trace header"). */
import { describe, expect, it } from 'vitest';
import { afterTrace, rfc5322Date, traceHeader, type TraceFacts } from '../../src/inbound/trace-header.js';

const FACTS: TraceFacts = {
  by: 'mx.receiver.test',
  via: 'xpony',
  xponyVersion: '1',
  peerFingerprint: 'abcd-efgh-ijkl-mnop-qrst-uvwx-yz23-4567',
  sealed: false,
  clientAddress: '192.0.2.7',
  clientPort: 41000,
  helo: 'mta.sender.test',
  date: new Date(Date.UTC(2026, 10, 22, 1, 2, 3)),
};

describe('traceHeader', () => {
  it('writes the documented field, folded, in CRLF lines', () => {
    expect(traceHeader(FACTS).toString('latin1')).toBe(
      'X-Pony-Trace: v=1; by=mx.receiver.test; via=xpony/1; peer=abcd-efgh-ijkl-mnop-qrst-uvwx-yz23-4567; sealed=no;\r\n' +
        '\tclient=[192.0.2.7]:41000; helo=mta.sender.test;\r\n' +
        '\tSun, 22 Nov 2026 01:02:03 +0000\r\n',
    );
  });

  it("adds the client's claim of how it knew this host's key (XPONY-EVIDENCE) on the second line", () => {
    expect(traceHeader({ ...FACTS, keyEvidence: 'https' }).toString('latin1')).toContain(
      '\tclient=[192.0.2.7]:41000; helo=mta.sender.test; evidence=https;\r\n',
    );
  });

  it('adds relay=sealed for a sealed message opened outside a tunnel (through a backup MX), and only then', () => {
    const relayed = traceHeader({ ...FACTS, via: 'starttls', peerFingerprint: undefined, sealed: true }).toString('latin1');
    expect(relayed).toContain('via=starttls; peer=none; sealed=yes; relay=sealed;\r\n');
    expect(traceHeader({ ...FACTS, via: 'plain', peerFingerprint: undefined, sealed: true }).toString('latin1')).toContain('sealed=yes; relay=sealed;\r\n');
    expect(traceHeader({ ...FACTS, sealed: true }).toString('latin1')).toContain('sealed=yes;\r\n');
    expect(traceHeader({ ...FACTS, via: 'plain', sealed: false }).toString('latin1')).not.toContain('relay=');
  });

  it('says peer=none and helo=none when there is none', () => {
    const text = traceHeader({ ...FACTS, via: 'plain', peerFingerprint: undefined, helo: undefined }).toString('latin1');
    expect(text).toContain('via=plain; peer=none;');
    expect(text).toContain('helo=none;');
  });

  it('keeps a hostile HELO from ending, folding or extending the field', () => {
    const text = traceHeader({
      ...FACTS,
      via: 'plain',
      peerFingerprint: undefined,
      helo: 'x\r\nX-Pony-Trace: v=1; via=xpony; peer=forged\r\n\t; sealed=yes',
    }).toString('latin1');
    expect(text.split('\r\n')).toHaveLength(4); // three lines and the final CRLF
    expect(text.match(/via=/g)).toHaveLength(1);
    expect(text).toContain('helo=x??X-Pony-Trace:?v?1??via?xpony??peer?forged?????sealed?yes;');
    const long = traceHeader({ ...FACTS, helo: 'a'.repeat(5000) }).toString('latin1');
    expect(long).toContain(`helo=${'a'.repeat(255)};`);
  });

  it('formats dates per RFC 5322 in UTC', () => {
    expect(rfc5322Date(new Date(Date.UTC(2027, 0, 5, 23, 59, 9)))).toBe('Tue, 5 Jan 2027 23:59:09 +0000');
  });
});

describe('afterTrace', () => {
  const of = (text: string, ended = false): string | undefined => afterTrace(Buffer.from(text, 'latin1'), ended);

  it('adds nothing before a header field or the empty line of an empty header section', () => {
    expect(of('Subject: x\r\n')).toBe('');
    expect(of('Subject \t: x')).toBe('');
    expect(of('\r\nbody')).toBe('');
    expect(of('\nbody')).toBe('');
    expect(of('', true)).toBe('');
  });

  it('ends the header section before a first line that would fold into the field or is no field', () => {
    expect(of(' via=xpony/1; sealed=yes\r\n')).toBe('\r\n');
    expect(of('\tpeer=forged')).toBe('\r\n');
    expect(of('hello world\r\n')).toBe('\r\n');
    expect(of(':no name\r\n')).toBe('\r\n');
    expect(of('caf\u00e9: 8-bit name')).toBe('\r\n');
    expect(of('Subject x', true)).toBe('\r\n');
  });

  it('waits for more octets while the first line may still be a field, but not past the line limit', () => {
    expect(of('')).toBeUndefined();
    expect(of('Subj')).toBeUndefined();
    expect(of('Subject  ')).toBeUndefined();
    expect(of('x'.repeat(998))).toBe('\r\n');
  });
});
