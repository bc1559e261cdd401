/**
 * A worker of a primary that does not answer, for silent-primary.test.ts. Usage: forked with an
 * IPC channel and one argument, what the worker asks the primary; sends its parent
 * `{ outcome, ms }`: what it did without the answer, and how long it waited. It then reads what
 * the parent sends (a late answer; `{ probe: true }`, answered `{ probed: true }`) until the parent
 * closes the channel.
 *
 * - `limits`: whether 192.0.2.1 may connect (SharedClientLimits); the refusal, or "admitted".
 * - `sightings <state dir>`: the sightings table shared with the other workers (Sightings with a
 *   TableFromPrimary); whether example.org is seen ("seen" / "not seen").
 */
import { Resolver } from 'node:dns/promises';
import { SharedClientLimits } from '../../src/daemon/shared-client-limits.js';
import { TableFromPrimary } from '../../src/daemon/shared-tables.js';
import { Sightings } from '../../src/outbound/sightings.js';
import { DEFAULT_CLIENT_LIMITS } from '../../src/xpony/index.js';

const [asked, stateDir] = process.argv.slice(2);
const started = performance.now();
let outcome: string;
if (asked === 'limits') {
  const admission = await new SharedClientLimits(DEFAULT_CLIENT_LIMITS).connect('192.0.2.1');
  outcome = typeof admission === 'string' ? admission : 'admitted';
} else {
  const sightings = await Sightings.open({
    stateDir: stateDir!,
    lifetimeMs: 3_600_000,
    reprobeMs: 3_600_000,
    // Nothing is probed: the worker only opens the table.
    routing: { resolver: new Resolver() },
    hostName: 'worker.test',
    probeTimeoutMs: 1_000,
    shared: new TableFromPrimary('sightings'),
  });
  outcome = sightings.has('example.org') ? 'seen' : 'not seen';
}
process.send!({ outcome, ms: performance.now() - started });
// Answered after whatever the worker says on the messages before it; the parent then closes the channel.
process.on('message', (message: { probe?: boolean }) => {
  if (message?.probe === true) process.send!({ probed: true });
});
