/**
 * The message the legacy-MTA tests (legacy-mtas.test.ts, sendmail.test.ts) send through each MTA,
 * and how they find it and compare it at the far end.
 */
import { expect } from 'vitest';
import type { MaildirMessage } from '../harness/maildir.js';

/** A message with a dot line, a long line and the headers a sender writes itself (LF: as MTAs store it). */
export function messageOf(id: string, to: string): string {
  return [
    'From: Alice <alice@sender.test>',
    `To: ${to}`,
    `Subject: legacy MTA ${id}`,
    'Date: Fri, 04 Dec 2026 00:00:00 +0000',
    `Message-ID: <${id}@sender.test>`,
    'X-Odd:   spaced   value',
    '',
    'first line',
    '.a line that starts with a dot',
    '..two dots',
    'x'.repeat(900),
    ...Array.from({ length: 100 }, (_, i) => `body line ${i}`),
    '',
  ].join('\n');
}

export function withId(messages: MaildirMessage[], id: string): MaildirMessage[] {
  return messages.filter((message) => message.bytes.includes(`Message-ID: <${id}@sender.test>`));
}

/** Everything the sender wrote arrives unchanged at the end of the stored message (only trace headers go above). */
export function expectByteForByte(delivered: Buffer, message: string): void {
  expect(delivered.subarray(delivered.length - Buffer.byteLength(message)).toString('latin1')).toBe(message);
}
