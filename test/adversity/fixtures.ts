/**
 * Shared pieces of the adversity suite: sending test messages into a Postfix, tallying what
 * arrived in mailboxes, holding deferred mail, MX records, and a frame splitter for men in the middle.
 */
import { expect } from 'vitest';
import { deliveredId, makeMessage, tallyDeliveries, type DeliveryTally, type TestMessage } from '../../scripts/adversity-messages.js';
import type { DnsRecords } from '../harness/dnsmasq.js';
import type { PostfixInstance } from '../harness/postfix.js';
import { runSwaks } from '../harness/swaks.js';
import { AEAD_TAG_LENGTH } from '../../src/crypto/primitives.js';
import { FRAME_HEADER, RAW_RUN_LENGTH } from '../../src/xpony/limits.js';

export const TUNNEL_READY = '220 2.0.0 XPONY tunnel ready\r\n';

/** Prints a part's figure line (vitest shows console output). */
export function printFigure(line: string): void {
  console.log(line);
}

/** Sends a fresh test message into `postfix` with swaks; resolves once Postfix queued it. */
export async function sendMessage(postfix: PostfixInstance, id: string, from: string, to: readonly string[], size?: number): Promise<TestMessage> {
  const message = makeMessage(id, from, to, size);
  const sent = await runSwaks({ server: `127.0.0.1:${postfix.port}`, from, to, data: message.text });
  expect(sent.exitCode, sent.transcript).toBe(0);
  return message;
}

/** Copies of our message `id` in a mailbox. */
export async function copiesOf(postfix: PostfixInstance, mailbox: string, id: string): Promise<number> {
  return (await postfix.maildirMessages(mailbox)).filter((m) => deliveredId(m.bytes) === id).length;
}

/** What arrived for `sent`, across the mailboxes of the given Postfix instances. */
export async function tally(
  sent: readonly TestMessage[],
  sites: ReadonlyArray<{ postfix: PostfixInstance; mailboxes: readonly string[] }>,
): Promise<DeliveryTally> {
  const mailboxes = new Map<string, Buffer[]>();
  for (const site of sites) {
    for (const mailbox of site.mailboxes)
      mailboxes.set(
        mailbox,
        (await site.postfix.maildirMessages(mailbox)).map((m) => m.bytes),
      );
  }
  return tallyDeliveries(sent, mailboxes);
}

/** How many messages Postfix holds (in any queue) for `recipient`. */
export async function queuedFor(postfix: PostfixInstance, recipient: string): Promise<number> {
  return (await postfix.queue()).filter((m) => m.recipients.some((r) => r.address === recipient)).length;
}

/** Deferred mail in `postfix` waits for the test's flush: no retry or queue run of its own for an hour. */
export async function holdDeferred(postfix: PostfixInstance): Promise<void> {
  await postfix.postconf(['-e', 'minimal_backoff_time=3600s', 'maximal_backoff_time=3600s', 'queue_run_delay=3600s']);
  await postfix.restart();
}

/**
 * Retries at once what holdDeferred holds, once no delivery is under way: a message still in the
 * active queue when the flush comes (its deferral not yet recorded) would miss it and wait its hour.
 */
export async function retryHeld(postfix: PostfixInstance): Promise<void> {
  await postfix.waitForQueue('no delivery under way', (queue) => queue.every((message) => message.queueName !== 'active'));
  await postfix.flush();
}

/** DNS for sites reached through their MX (mx.DOMAIN, preference 10, at ADDRESS), and `_pony` records for `pony`. */
export function mxRecords(sites: ReadonlyArray<{ domain: string; address: string }>, pony: ReadonlyArray<{ domain: string; record: string }> = []): DnsRecords {
  return {
    mx: sites.map((site) => ({ domain: site.domain, host: `mx.${site.domain}`, preference: 10 })),
    a: sites.map((site) => ({ host: `mx.${site.domain}`, address: site.address })),
    ...(pony.length === 0 ? {} : { txt: pony.map((site) => ({ name: `_pony.${site.domain}`, value: site.record })) }),
  };
}

/**
 * A raw-run frame on the wire (XPONY-RAW-PAYLOAD): length, then a sealed type octet and 4-octet
 * count. A man in the middle spots one by its size alone (a data frame of 4 octets would look the
 * same; blackpony sends none), but cannot read how many raw octets it announces.
 */
export const RAW_RUN_FRAME_OCTETS = FRAME_HEADER + 1 + RAW_RUN_LENGTH + AEAD_TAG_LENGTH;

/** What crossed one direction of a tunnel connection: a whole frame, or octets of a raw run. */
export interface TunnelPiece {
  kind: 'frame' | 'raw';
  octets: Buffer;
}

/**
 * Splits one direction of a tunnel connection into frames (length-prefixed, section 5 of
 * docs/PROTOCOL.md), so a man in the middle can drop, hold, copy or damage whole frames. Past the
 * first raw-run frame it cannot tell where the run ends, so it hands on everything after it as raw
 * octets, as they come.
 */
export class FrameSplitter {
  #pending = Buffer.alloc(0);
  #raw = false;

  push(data: Buffer): TunnelPiece[] {
    if (this.#raw) return data.length > 0 ? [{ kind: 'raw', octets: data }] : [];
    this.#pending = Buffer.concat([this.#pending, data]);
    const pieces: TunnelPiece[] = [];
    while (this.#pending.length >= FRAME_HEADER && this.#pending.length >= FRAME_HEADER + this.#pending.readUInt16BE(0)) {
      const frame = this.#pending.subarray(0, FRAME_HEADER + this.#pending.readUInt16BE(0));
      this.#pending = this.#pending.subarray(frame.length);
      pieces.push({ kind: 'frame', octets: frame });
      if (frame.length === RAW_RUN_FRAME_OCTETS) {
        this.#raw = true;
        if (this.#pending.length > 0) pieces.push({ kind: 'raw', octets: this.#pending });
        this.#pending = Buffer.alloc(0);
        break;
      }
    }
    return pieces;
  }
}
