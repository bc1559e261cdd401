/**
 * Opens an accepted-messages store, for inbound-accepted-messages.test.ts, in a process whose
 * V8 heap the test keeps small. Usage: node CHILD DIR COUNT; opens DIR (5 days, at most COUNT
 * entries), looks up the COUNT identities of keptIdentity() and prints `{ size, found }`.
 */
import { AcceptedMessages, type MessageIdentity } from '../../src/inbound/accepted-messages.js';

/** The i-th of the messages the test writes last, to be found after the open. */
export function keptIdentity(i: number): MessageIdentity {
  return { peer: 'aaaa-bbbb', id: `kept-${i}`, sender: 'alice@a.test', recipients: ['bob@b.test'] };
}

if (process.argv[1]?.includes('accepted-messages-open-child')) {
  const [dir, count] = [process.argv[2]!, Number(process.argv[3])];
  const store = await AcceptedMessages.open({ dir, windowMs: 5 * 86_400_000, maxEntries: count, onError: (error) => console.error(error) });
  let found = 0;
  for (let i = 0; i < count; i++) if ((await store.lookup(keptIdentity(i))) !== undefined) found++;
  console.log(JSON.stringify({ size: store.size, found }));
  await store.close();
}
