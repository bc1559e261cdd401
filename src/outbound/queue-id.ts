/**
 * Postfix's queue id for a message it hands us, read from the Received: field Postfix put on top
 * ("... with ESMTP id 4Xk2Lw0Zbyz9sV; ..." or "(Postfix, from userid 0) id 4Xk2...;"), so that
 * each delivery log line can be tied to Postfix's own log. Looks at the first header octets only.
 */
const LOOK_AT = 8192;
const RECEIVED = /^Received:((?:[^\r\n]|\r?\n[ \t])*)/im;
const QUEUE_ID = /\bid ([0-9A-Za-z]{6,})\b/;

/**
 * Whether a queue id is one of Postfix's long ones (`enable_long_queue_ids = yes`: the queue
 * file's time to the microsecond and its inode, never reused). A short one (upper-case hex, inode
 * and microseconds only) names another message once its queue file is gone, so it cannot name a
 * message across retries.
 */
export function isLongQueueId(id: string): boolean {
  return /^[0-9A-Za-z]{12,}$/.test(id) && !/^[0-9A-F]+$/.test(id);
}

export class QueueIdSniffer {
  private head = Buffer.alloc(0);
  private done = false;
  id: string | undefined;

  push(chunk: Buffer): void {
    if (this.done) return;
    this.head = Buffer.concat([this.head, chunk.subarray(0, LOOK_AT - this.head.length)]);
    const text = this.head.toString('latin1');
    const headerEnd = text.search(/\r?\n\r?\n/);
    if (headerEnd < 0 && this.head.length < LOOK_AT) return;
    this.done = true;
    const received = RECEIVED.exec(headerEnd < 0 ? text : text.slice(0, headerEnd));
    this.id = received === null ? undefined : QUEUE_ID.exec(received[1]!)?.[1];
    this.head = Buffer.alloc(0);
  }
}
