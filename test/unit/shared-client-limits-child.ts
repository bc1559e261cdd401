/**
 * A worker of a primary that does not answer, for shared-client-limits.test.ts. Usage: forked
 * with an IPC channel; asks SharedClientLimits whether 192.0.2.1 may connect and sends its parent
 * `{ outcome, ms }`: the refusal (or "admitted") and how long the answer took.
 */
import { SharedClientLimits } from '../../src/daemon/shared-client-limits.js';
import { DEFAULT_CLIENT_LIMITS } from '../../src/xpony/index.js';

const started = performance.now();
const admission = await new SharedClientLimits(DEFAULT_CLIENT_LIMITS).connect('192.0.2.1');
process.send!({ outcome: typeof admission === 'string' ? admission : 'admitted', ms: performance.now() - started });
process.disconnect();
