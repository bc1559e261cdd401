/**
 * A second blackpony process writing pins, for the concurrency test in outbound-pins.test.ts.
 * Usage: node outbound-pins-child.mjs <state-dir> <domain> <tag 0-255> <count>
 * Pins `count` keys [tag, i, 0, ...] one after another, then prints "done".
 */
import { openPinStore } from '../../src/outbound/pins.js';

const [stateDir, domain, tag, count] = process.argv.slice(2);
const store = await openPinStore(stateDir!);
for (let i = 0; i < Number(count); i++) {
  const key = new Uint8Array(32);
  key[0] = Number(tag);
  key[1] = i;
  await store.pin(domain!, key, 30);
}
process.stdout.write('done\n');
