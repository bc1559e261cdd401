/**
 * Verdict turns (src/inbound/verdict-turns.ts): one message's end at Postfix at a time, in the
 * order asked; in one process, and for all workers through their primary over node:cluster
 * (src/daemon/shared-verdict-turns.ts), where a worker that dies holding a turn passes it on, and
 * one that gave up waiting (its message got a 451) ends the turn when it comes.
 */
import { spawn } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalVerdictTurns } from '../../src/inbound/verdict-turns.js';
import { bundleTypeScript } from '../harness/typescript-child.js';
import { makeTempDir } from '../harness/temp-dir.js';

describe('LocalVerdictTurns', () => {
  it('gives a key to one transaction at a time, in the order asked; other keys do not wait', async () => {
    const turns = new LocalVerdictTurns();
    const events: string[] = [];
    const endFirst = await turns.take('k');
    const second = turns.take('k').then((end) => (events.push('second'), end));
    const third = turns.take('k').then((end) => (events.push('third'), end));
    (await turns.take('other'))();
    await new Promise((resolve) => setImmediate(resolve));
    expect(events).toEqual([]);
    endFirst();
    (await second)();
    (await third)();
    expect(events).toEqual(['second', 'third']);
    // All ended: the next one gets the key at once, and ending a turn twice changes nothing.
    const again = await turns.take('k');
    again();
    again();
    (await turns.take('k'))();
  });
});

describe('VerdictTurnsForWorkers: turns through the primary', () => {
  let bundle: string;
  beforeAll(async () => {
    bundle = await bundleTypeScript('test/unit/shared-verdict-turns-child.ts', await makeTempDir('turns-child'));
  });

  it("a worker's turn waits for another worker's; one that dies holding it, or gives up waiting, passes it on", async () => {
    // A turn never given would leave the primary waiting: killed after a while, the test fails.
    const child = spawn(process.execPath, [bundle], { stdio: ['ignore', 'pipe', 'inherit'], timeout: 30_000 });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code, output).toBe(0);
    expect(JSON.parse(output)).toEqual([
      'first asked',
      'first has it',
      'second asked',
      'second waits',
      'first ended',
      'second has it',
      'third asked',
      'third waits',
      'second killed',
      'third has it',
      'fourth asked',
      'fourth gave up: verdict turn: no answer from the primary within 0.3 s',
      'first asked',
      'first waits',
      'third ended',
      'first has it',
    ]);
  });
});
