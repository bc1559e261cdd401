/**
 * The turns of src/inbound/verdict-turns.ts kept once for all workers: a sender's retry may reach
 * another worker than the first copy it retries, while Postfix still judges that copy. The primary
 * (workers.ts) keeps a queue of turns per message key; a worker asks for a turn before it passes a
 * message's end to Postfix and ends it once the verdict is read and remembered. A worker that dies
 * ends its turns and leaves the queues.
 *
 * Messages on one worker's channel arrive in the order sent, so a turn ended before another is
 * asked for is gone from the queue when the primary reads the request.
 */
import type { Worker } from 'node:cluster';
import type { VerdictTurns } from '../inbound/verdict-turns.js';
import { toPrimary, toWorker } from './worker-channel.js';

/** What a worker asks or tells the primary. */
type TurnRequest = { blackpony: 'turn'; op: 'take' | 'end'; key: string; request: number };
/** The primary's answer: the turn asked for with `request` is this worker's now. */
type TurnGranted = { blackpony: 'turn-granted'; key: string; request: number };

/** In a worker: the primary's queues. */
export class VerdictTurnsFromPrimary implements VerdictTurns {
  private nextRequest = 0;
  private readonly waiting = new Map<number, () => void>();

  /** `waitMs`: how long a turn may take to come (the turns before it last as long as their verdicts). */
  constructor(private readonly waitMs: number) {
    process.on('message', (message: TurnGranted) => {
      if (message?.blackpony !== 'turn-granted') return;
      const granted = this.waiting.get(message.request);
      // Given up on meanwhile: ended at once, so that the next one waits no longer.
      if (granted === undefined) toPrimary({ blackpony: 'turn', op: 'end', key: message.key, request: message.request } satisfies TurnRequest);
      else granted();
    });
  }

  take(key: string): Promise<() => void> {
    const request = this.nextRequest++;
    return new Promise((resolve, reject) => {
      const fail = (reason: string): void => {
        clearTimeout(timer);
        this.waiting.delete(request);
        reject(new Error(`verdict turn: ${reason}`));
      };
      const timer = setTimeout(() => fail(`no answer from the primary within ${this.waitMs / 1000} s`), this.waitMs);
      this.waiting.set(request, () => {
        clearTimeout(timer);
        this.waiting.delete(request);
        resolve(() => toPrimary({ blackpony: 'turn', op: 'end', key, request } satisfies TurnRequest));
      });
      toPrimary({ blackpony: 'turn', op: 'take', key, request } satisfies TurnRequest, () => fail('the channel to the primary is closed'));
    });
  }
}

/** In the primary: per message key, the turns asked for in order; the first holds it. */
export class VerdictTurnsForWorkers {
  private readonly queues = new Map<string, { worker: Worker; request: number }[]>();

  /** Answers `worker` until it exits, then ends its turns and drops what it asked for. */
  serve(worker: Worker): void {
    worker.on('message', (message: TurnRequest) => {
      if (message?.blackpony !== 'turn') return;
      const { key, request } = message;
      if (message.op === 'take') {
        const queue = this.queues.get(key) ?? [];
        this.queues.set(key, queue);
        queue.push({ worker, request });
        if (queue.length === 1) grant(key, queue[0]!);
      } else this.remove(key, (turn) => turn.worker === worker && turn.request === request);
    });
    worker.once('exit', () => {
      for (const key of [...this.queues.keys()]) this.remove(key, (turn) => turn.worker === worker);
    });
  }

  /** Drops the turns of `key` that `which` picks; a new first one gets the turn. */
  private remove(key: string, which: (turn: { worker: Worker; request: number }) => boolean): void {
    const queue = this.queues.get(key);
    if (queue === undefined) return;
    const holder = queue[0];
    const left = queue.filter((turn) => !which(turn));
    if (left.length === 0) this.queues.delete(key);
    else this.queues.set(key, left);
    if (left[0] !== undefined && left[0] !== holder) grant(key, left[0]);
  }
}

function grant(key: string, turn: { worker: Worker; request: number }): void {
  toWorker(turn.worker, { blackpony: 'turn-granted', key, request: turn.request } satisfies TurnGranted);
}
