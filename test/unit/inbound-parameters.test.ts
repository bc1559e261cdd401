/** What blackpony learns from Postfix's EHLO, and the xtext it uses for XCLIENT and DSN parameters. */
import { describe, expect, it } from 'vitest';
import { capabilitiesOf } from '../../src/inbound/postfix-capabilities.js';
import { xtext } from '../../src/smtp/xtext.js';

describe('xtext (RFC 3461)', () => {
  it('encodes "+", "=", spaces, controls and non-ASCII; leaves the rest', () => {
    expect(xtext('rfc822;user@d.test')).toBe('rfc822;user@d.test');
    expect(xtext('a+b=c d\u00e9\r')).toBe('a+2Bb+3Dc+20d+C3+A9+0D');
  });
});

describe('capabilitiesOf', () => {
  it('reads SIZE and the passed-through extensions from EHLO lines', () => {
    expect(capabilitiesOf(['host', 'PIPELINING', 'SIZE 10240000', 'dsn', '8BITMIME', 'SMTPUTF8'])).toEqual({
      size: 10240000,
      eightBitMime: true,
      smtpUtf8: true,
      dsn: true,
    });
    expect(capabilitiesOf(['host', 'SIZE'])).toEqual({ size: 0, eightBitMime: false, smtpUtf8: false, dsn: false });
    // The first line names the host: never a keyword.
    expect(capabilitiesOf(['SIZE 5', 'PIPELINING']).size).toBe(0);
  });
});
