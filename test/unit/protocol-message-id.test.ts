/** XPONY-ID values: their syntax, and the sender's derivation from a Postfix queue id that is never reused. */
import { describe, expect, it } from 'vitest';
import { isLongQueueId } from '../../src/outbound/queue-id.js';
import { isMessageId, messageId } from '../../src/xpony/message-id.js';

describe('XPONY-ID', () => {
  it('is 128 bits of base64url, the same for the same queue id and sender, different otherwise', () => {
    const id = messageId('4Xk2Lw0Zbyz9sV', 'alice@a.test');
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(isMessageId(id)).toBe(true);
    expect(messageId('4Xk2Lw0Zbyz9sV', 'alice@a.test')).toBe(id);
    expect(messageId('4Xk2Lw0Zbyz9sW', 'alice@a.test')).not.toBe(id);
    expect(messageId('4Xk2Lw0Zbyz9sV', 'bob@a.test')).not.toBe(id);
  });

  it('refuses anything else as a value', () => {
    for (const value of ['', 'short', `${'A'.repeat(22)}=`, `${'A'.repeat(21)}B`, `${'A'.repeat(21)}+`, 'A'.repeat(23), true])
      expect(isMessageId(value), String(value)).toBe(false);
  });

  it("is derived only from Postfix's long queue ids, never from short ones (reused once the queue file is gone)", () => {
    expect(isLongQueueId('4Xk2Lw0Zbyz9sV')).toBe(true);
    expect(isLongQueueId('3A5F1234B')).toBe(false);
    expect(isLongQueueId('3A5F1234B0C1')).toBe(false);
    expect(isLongQueueId('[UNAVAILABLE]')).toBe(false);
  });
});
