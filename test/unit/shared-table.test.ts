/**
 * Tables the workers share (src/outbound/shared-table.ts, expiring-table.ts): what one process
 * learns holds in the others, a process that joins late starts from what the others learned, and
 * two processes that learn different things at once end with the same table.
 */
import { describe, expect, it } from 'vitest';
import { ExpiringTable, type ExpiringChange } from '../../src/outbound/expiring-table.js';
import { sharedTableHub, type SharedTableHub } from './shared-table-hub.js';

const NOW = 1_000;
const LATER = 2_000;

type Hub = SharedTableHub<ExpiringChange<string>>;

async function sharing(hub: Hub, maxEntries = 10): Promise<ExpiringTable<string>> {
  const table = new ExpiringTable<string>(maxEntries);
  await table.share(hub.member());
  return table;
}

describe('ExpiringTable shared between processes', () => {
  it('an entry set or forgotten in one holds in the others; one that joins later starts with it', async () => {
    const hub = sharedTableHub<ExpiringChange<string>>();
    const [a, b] = [await sharing(hub), await sharing(hub)];
    a.set('d.test', 'policy one', LATER);
    expect(b.get('d.test', NOW)).toBeUndefined();
    await hub.settled();
    expect(b.get('d.test', NOW)).toEqual({ value: 'policy one', expiresAt: LATER });
    const late = await sharing(hub);
    expect(late.get('d.test', NOW)?.value).toBe('policy one');
    b.set('d.test', null);
    await hub.settled();
    expect([a, b, late].map((table) => table.get('d.test', NOW))).toEqual([undefined, undefined, undefined]);
  });

  it('two processes that set one entry at once end with the same value, the one passed on last', async () => {
    const hub = sharedTableHub<ExpiringChange<string>>();
    const [a, b] = [await sharing(hub), await sharing(hub)];
    a.set('d.test', 'from a', LATER);
    b.set('d.test', 'from b', LATER);
    expect([a.get('d.test', NOW)?.value, b.get('d.test', NOW)?.value]).toEqual(['from a', 'from b']);
    await hub.settled();
    expect([a.get('d.test', NOW)?.value, b.get('d.test', NOW)?.value]).toEqual(['from b', 'from b']);
  });

  it('keeps its bound and its expiry with entries from the others', async () => {
    const hub = sharedTableHub<ExpiringChange<string>>();
    const a = await sharing(hub);
    const b = await sharing(hub, 2);
    for (const domain of ['a.test', 'b.test', 'c.test']) a.set(domain, domain, LATER);
    await hub.settled();
    expect(['a.test', 'b.test', 'c.test'].map((domain) => b.get(domain, NOW)?.value)).toEqual([undefined, 'b.test', 'c.test']);
    expect(b.get('c.test', LATER)).toBeUndefined();
  });
});
