/**
 * A primary and its workers taking verdict turns on one message key through node:cluster, for
 * shared-verdict-turns.test.ts. Prints the workers' events, as JSON. Each worker takes the turn
 * when the primary says "take" ("<name> asked", then "<name> has it" once given), says whether it
 * holds it when asked "status" (a question on the same channel as the grant, so the answer is
 * certain: no timing), and ends it when the primary says "end". A worker that gives up waiting
 * says so ("<name> gave up: <reason>").
 */
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { VerdictTurnsForWorkers, VerdictTurnsFromPrimary } from '../../src/daemon/shared-verdict-turns.js';

if (cluster.isPrimary) {
  const turns = new VerdictTurnsForWorkers();
  /** The workers' events in the order this script takes them (and when it killed one). */
  const events: string[] = [];
  /** Each worker's events not yet taken by next(), and who waits for the next one. */
  const inbox = new Map<Worker, { events: string[]; wake?: () => void }>();
  /**
   * The worker's next event. Kept from the start: two messages read in one go are emitted in one
   * turn, before a listener added after the first could hear the second.
   */
  const next = async (worker: Worker): Promise<string> => {
    const box = inbox.get(worker)!;
    while (box.events.length === 0) await new Promise<void>((resolve) => (box.wake = resolve));
    const event = box.events.shift()!;
    events.push(event);
    return event;
  };
  const start = async (name: string, waitMs = 10_000): Promise<Worker> => {
    const worker = cluster.fork({ TURN_NAME: name, TURN_WAIT_MS: String(waitMs) });
    turns.serve(worker);
    const box: { events: string[]; wake?: () => void } = { events: [] };
    inbox.set(worker, box);
    // 'online' comes before the worker's module has run: it says when it listens.
    const ready = new Promise<void>((resolve) =>
      worker.on('message', (message: { event?: string; ready?: boolean }) => {
        if (message.ready === true) resolve();
        if (message.event === undefined) return;
        box.events.push(message.event);
        box.wake?.();
      }),
    );
    await ready;
    return worker;
  };
  /** `worker` asks for the turn another holds: "<name> asked" (queued by now: one channel, in order), then "<name> waits". */
  const askWhileHeld = async (worker: Worker): Promise<void> => {
    worker.send('take');
    await next(worker);
    worker.send('status');
    await next(worker);
  };
  const [first, second, third] = [await start('first'), await start('second'), await start('third')];
  first.send('take');
  await next(first); // first asked
  await next(first); // first has it
  await askWhileHeld(second);
  first.send('end');
  await next(first); // first ended
  await next(second); // second has it
  await askWhileHeld(third);
  second.process.kill('SIGKILL'); // dies holding the turn
  await once(second, 'exit');
  events.push('second killed');
  await next(third); // third has it
  // A turn asked for in vain: the fourth gives up before the third ends, so its grant comes late.
  const fourth = await start('fourth', 300);
  fourth.send('take');
  await next(fourth); // fourth asked
  await next(fourth); // fourth gave up
  await askWhileHeld(first); // behind the fourth's request
  third.send('end');
  await next(third); // third ended
  await next(first); // first has it: the fourth ended its late grant at once
  for (const worker of [first, third, fourth]) worker.process.kill('SIGTERM');
  process.stdout.write(`${JSON.stringify(events)}\n`);
} else {
  const name = process.env.TURN_NAME!;
  const turns = new VerdictTurnsFromPrimary(Number(process.env.TURN_WAIT_MS));
  let end: (() => void) | undefined;
  process.on('message', (order: string) => {
    if (order === 'take') {
      const taken = turns.take('the-message');
      process.send!({ event: `${name} asked` });
      taken.then(
        (ended) => {
          end = ended;
          process.send!({ event: `${name} has it` });
        },
        (error: Error) => process.send!({ event: `${name} gave up: ${error.message}` }),
      );
    } else if (order === 'status') {
      // After the grant's own turn, if one came before this order: the promise settles in a microtask.
      setImmediate(() => process.send!({ event: `${name} ${end === undefined ? 'waits' : 'holds'}` }));
    } else if (order === 'end') {
      end!();
      end = undefined;
      process.send!({ event: `${name} ended` });
    }
  });
  process.send!({ ready: true });
}
