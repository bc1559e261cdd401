/**
 * `node dist/scripts/fuzz.js [--seconds N] [--target NAME]`: fuzzes the parsers of fuzz-targets.ts
 * round-robin for N seconds (default 60), each turn with a fresh random seed. Prints per target
 * `fuzz <name>: runs N, failures N` and a last line `fuzz: runs N, failures N`. On a failure it
 * prints the shrunk counterexample and the seed that replays it, and exits 1; bad usage exits 2.
 */
import fc from 'fast-check';
import { describeInput, FUZZ_TARGETS, fuzzProperty, type FuzzTarget } from './fuzz-targets.js';

/** Time one target gets before the next one's turn. */
const TURN_MS = 2_000;

interface Options {
  seconds: number;
  targets: readonly FuzzTarget<unknown>[];
}

function parseArgs(args: string[]): Options | string {
  let seconds = 60;
  let targets = FUZZ_TARGETS;
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (flag === '--seconds' && value !== undefined && /^[1-9][0-9]*$/.test(value)) {
      seconds = Number(value);
    } else if (flag === '--target' && value !== undefined) {
      targets = FUZZ_TARGETS.filter((t) => t.name === value);
      if (targets.length === 0) return `unknown target ${JSON.stringify(value)}; targets: ${FUZZ_TARGETS.map((t) => t.name).join(', ')}`;
    } else {
      return `unexpected argument ${JSON.stringify(flag)}`;
    }
  }
  return { seconds, targets };
}

interface Tally {
  target: FuzzTarget<unknown>;
  property: ReturnType<typeof fuzzProperty>;
  runs: number;
  failures: number;
}

function report(tallies: Tally[]): void {
  for (const t of tallies) console.log(`fuzz ${t.target.name}: runs ${t.runs}, failures ${t.failures}`);
  const sum = (key: 'runs' | 'failures') => tallies.reduce((n, t) => n + t[key], 0);
  console.log(`fuzz: runs ${sum('runs')}, failures ${sum('failures')}`);
}

async function main(args: string[]): Promise<number> {
  const options = parseArgs(args);
  if (typeof options === 'string') {
    console.error(`usage: fuzz [--seconds N] [--target NAME]: ${options}`);
    return 2;
  }
  const tallies: Tally[] = options.targets.map((target) => ({ target, property: fuzzProperty(target), runs: 0, failures: 0 }));
  const end = Date.now() + options.seconds * 1000;
  while (Date.now() < end) {
    for (const tally of tallies) {
      const left = end - Date.now();
      if (left <= 0) break;
      const seed = Math.floor(Math.random() * 0x7fffffff);
      const details = await fc.check(tally.property, { seed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: Math.min(TURN_MS, left) });
      tally.runs += details.numRuns;
      // A turn the time limit cut before its first run ends (fast-check counts it failed) with no counterexample.
      if (!details.failed || (details.interrupted && details.counterexample === null)) continue;
      tally.failures++;
      const error = details.errorInstance as Error | undefined;
      console.log(`fuzz ${tally.target.name}: FAILED: ${error?.message ?? String(details.errorInstance)}`);
      console.log(`fuzz ${tally.target.name}: counterexample ${describeInput(details.counterexample?.[0])}`);
      console.log(`fuzz ${tally.target.name}: replay with fc seed ${details.seed}, path ${details.counterexamplePath}`);
      report(tallies);
      return 1;
    }
  }
  report(tallies);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
