import { describe, expect, it } from 'vitest';
import { asReplyText } from '../../src/smtp/reply-text.js';
import { SmtpReplyError } from '../../src/smtp/reply-error.js';

describe('reply text', () => {
  it('folds line ends and other control characters into spaces, and keeps UTF-8', () => {
    expect(asReplyText('TLS handshake: error:0A00010B:wrong version number:ssl3_record.c:350:\n')).toBe(
      'TLS handshake: error:0A00010B:wrong version number:ssl3_record.c:350:',
    );
    expect(asReplyText('a\r\n250 2.0.0 forged\x00\x7fb')).toBe('a 250 2.0.0 forged b');
    expect(asReplyText('4.1.1 Empfänger unbekannt')).toBe('4.1.1 Empfänger unbekannt');
  });

  it('is what the reply error carries, so no error message can split a reply to Postfix or a client', () => {
    expect(new SmtpReplyError(451, '4.4.1 x: TLS failed\n; retrying').message).toBe('4.4.1 x: TLS failed ; retrying');
    expect(new SmtpReplyError(451, ['4.3.0 a\r\n221 bye', 'b']).lines).toEqual(['4.3.0 a 221 bye', 'b']);
  });
});
