/**
 * The one way the workers and their primary talk over cluster's IPC channel (workers.ts and the
 * shared-*.ts state): a message sent on a channel that is closing is dropped, not an error event,
 * since the other end is gone or going, and what it would have answered no longer matters.
 */
import type { Worker } from 'node:cluster';

/** In a worker: sends `message` to the primary; `failed` is called if the channel is closed. */
export function toPrimary(message: object, failed?: () => void): void {
  process.send?.(message, undefined, {}, (error: Error | null) => {
    if (error !== null) failed?.();
  });
}

/** In the primary: sends `message` to `worker` unless it is exiting (its exit tidies up after it). */
export function toWorker(worker: Worker, message: object): void {
  if (worker.isConnected()) worker.send(message, undefined, () => undefined);
}
