/**
 * Test messages whose delivery can be checked byte for byte: each has a unique Message-ID and a
 * body of random base64 lines (with a leading-dot line, which dot-stuffing must survive), and
 * we keep the SHA-256 of the body as it should arrive. Used by the adversity tests and the soak.
 */
import { createHash, randomBytes } from 'node:crypto';

export interface TestMessage {
  id: string;
  to: string[];
  /** The message as sent, CRLF line ends, without the final "." line. */
  text: string;
  /** SHA-256 (hex) of the body as a Maildir stores it: LF line ends. */
  bodySha256: string;
}

const LINE = 76;

/** A message of about `size` octets from `from` to `to`. */
export function makeMessage(id: string, from: string, to: readonly string[], size = 4_096): TestMessage {
  const lines = [`.leading dot of ${id}`];
  let length = lines[0]!.length + 2;
  while (length < size) {
    const line = randomBytes((LINE / 4) * 3).toString('base64');
    lines.push(line);
    length += line.length + 2;
  }
  const header = [
    `From: <${from}>`,
    `To: ${to.join(', ')}`,
    `Subject: adversity ${id}`,
    'Date: Sun, 22 Nov 2026 00:00:00 +0000',
    `Message-ID: <${id}@adversity.test>`,
  ];
  return {
    id,
    to: [...to],
    text: `${header.join('\r\n')}\r\n\r\n${lines.join('\r\n')}\r\n`,
    bodySha256: sha256(`${lines.join('\n')}\n`),
  };
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The Message-ID local part of a delivered message of ours, or undefined. */
export function deliveredId(bytes: Buffer): string | undefined {
  const head = bytes.subarray(0, bytes.indexOf('\n\n')).toString('latin1');
  return /^Message-ID: <([^@>]+)@adversity\.test>/im.exec(head)?.[1];
}

/** SHA-256 of a delivered message's body (everything after the first empty line). */
export function deliveredBodySha256(bytes: Buffer): string {
  const start = bytes.indexOf('\n\n');
  return sha256(start < 0 ? Buffer.alloc(0) : bytes.subarray(start + 2));
}

export interface DeliveryTally {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  corrupted: number;
}

/**
 * Compares what arrived (per recipient mailbox, each message's bytes) with what was sent: a
 * recipient without its copy is lost, a second copy is a duplicate, a body whose hash differs is
 * corrupt. Counts are per (message, recipient).
 */
export function tallyDeliveries(sent: readonly TestMessage[], mailboxes: ReadonlyMap<string, readonly Buffer[]>): DeliveryTally {
  const expected = new Map<string, TestMessage>();
  for (const message of sent) for (const to of message.to) expected.set(`${message.id} ${to}`, message);
  const seen = new Map<string, number>();
  let corrupted = 0;
  for (const [mailbox, messages] of mailboxes) {
    for (const bytes of messages) {
      const id = deliveredId(bytes);
      if (id === undefined) continue;
      const key = `${id} ${mailbox}`;
      const message = expected.get(key);
      if (message === undefined || deliveredBodySha256(bytes) !== message.bodySha256) corrupted++;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
  }
  let delivered = 0;
  let duplicated = 0;
  for (const key of expected.keys()) {
    const count = seen.get(key) ?? 0;
    if (count > 0) delivered++;
    duplicated += Math.max(0, count - 1);
  }
  return { sent: expected.size, delivered, lost: expected.size - delivered, duplicated, corrupted };
}

export function formatTally(tally: DeliveryTally): string {
  return `sent ${tally.sent}, delivered ${tally.delivered}, lost ${tally.lost}, duplicated ${tally.duplicated}, corrupted ${tally.corrupted}`;
}
