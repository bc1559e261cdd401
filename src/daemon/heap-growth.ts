/**
 * How far V8 lets the old generation grow between full collections, set for the daemon process.
 *
 * Every message passes through Buffers the size of a 64 KiB chunk (socket reads, each age chunk
 * and tunnel frame node:crypto returns). They die within a few milliseconds, but V8 counts the
 * external memory allocated since the last full collection against the old generation's limit,
 * which it sets at about twice the live heap: with a live heap of 13-14 MiB, 12 MiB of such
 * Buffers between two young-generation collections started a full one, some 50 per 400 messages
 * of 1 MiB and a quarter of each daemon's CPU. At three times the live heap they come a fifth to
 * a tenth as often; with the unit's small young generation (systemd/blackpony.service), which
 * frees those Buffers sooner, peak memory is lower, not higher (docs/PERFORMANCE.md, "Full
 * collections").
 *
 * The setting is V8's --heap-growing-percent. Node refuses it in NODE_OPTIONS, and V8 reads it at
 * each full collection, so the daemon sets it for itself at start; a value on node's own command
 * line is left as the operator chose it.
 */
import { setFlagsFromString } from 'node:v8';

/** The old generation's limit after a full collection: (1 + this / 100) times the live heap. */
export const HEAP_GROWING_PERCENT = 200;

const FLAG = '--heap-growing-percent';

/** The flag to set, or undefined when node's command line (`execArgv`) already sets one. */
export function heapGrowthFlag(execArgv: readonly string[]): string | undefined {
  // V8 takes --heap_growing_percent too, and the value after "=" or as the next argument.
  const given = execArgv.some((arg) => arg.split('=')[0]!.replaceAll('_', '-') === FLAG);
  return given ? undefined : `${FLAG}=${HEAP_GROWING_PERCENT}`;
}

/** Applies HEAP_GROWING_PERCENT to this process unless node's command line chose a value. */
export function tuneHeapGrowth(): void {
  const flag = heapGrowthFlag(process.execArgv);
  if (flag !== undefined) setFlagsFromString(flag);
}
