/**
 * `npm run bench:handshakes`: fresh tunnels per second. Clients open XPONY tunnels to one
 * `blackpony run` (inbound side, the built CLI) over loopback, as many at once as CONCURRENCY,
 * each a new TCP connection, EHLO, XPONY and the whole Noise XX handshake, then close it; counted
 * after WARM_UP_SECONDS of the same. The daemon runs with 1 worker and with WORKERS, interleaved (1 N 1 N ...), ROUNDS times; the medians
 * go to bench/results/handshakes-node<major>.json and are printed against the target (issue 17: 300/s on
 * this project's 2-core machine), with the CPU each tunnel cost the daemon (all its processes) and
 * the clients. The clients run in CLIENTS processes of their own, so that the client side's crypto
 * does not share the daemon's cores in one process.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { generateKeys } from '../src/crypto/keyfile.js';
import { connectXpony } from '../src/xpony/index.js';
import { freePort } from '../test/harness/ports.js';
import type { ProcessGroup } from './process-groups.js';
import { inboundSection, startBlackpony } from './processes.js';
import { runBench } from './run.js';
import { median } from './statistics.js';

const TARGET_PER_SECOND = 300;
const SECONDS = 3;
/**
 * Seconds of tunnels before the counted ones, in each run: a daemon runs for days, so its JIT is
 * measured settled (without it, each 3-second run counted V8 still compiling, on both sides).
 */
const WARM_UP_SECONDS = 3;
const ROUNDS = 3;
const CONCURRENCY = 16;
// One client process per core the 1-worker daemon leaves free. More processes than cores would
// add the scheduler's contention (measured with two on two cores: the clients' CPU per tunnel up
// by a quarter or more, the daemon's by up to a tenth), which clients on other machines do not cause.
const CLIENTS = Math.max(1, availableParallelism() - 1);
const WORKERS = Math.max(2, Math.min(availableParallelism(), 4));
// One file per Node major version: `npm run bench:handshakes:node24` runs daemon and clients on
// Node 24 (native ML-KEM), which is a different figure from the machine's own Node.
const RESULTS = join(import.meta.dirname, '..', '..', 'bench', 'results', `handshakes-node${process.versions.node.split('.')[0]}.json`);

/** Opens tunnels to `port`, CONCURRENCY at a time, for `seconds`; counts them. */
async function tunnelFor(port: number, keys: ReturnType<typeof generateKeys>, seconds: number): Promise<{ tunnels: number; failures: number }> {
  const deadline = performance.now() + seconds * 1000;
  let tunnels = 0;
  let failures = 0;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      try {
        const result = await connectXpony({ host: '127.0.0.1', port, localHostName: 'client.bench.test', keys });
        if (result.kind !== 'tunnel') throw new Error('no XPONY offered');
        result.tunnel.destroy();
        tunnels++;
      } catch {
        failures++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  return { tunnels, failures };
}

/**
 * In a client process: once told to, tunnels to `port` for WARM_UP_SECONDS (not counted), says so,
 * and once told again, for `seconds`; reports the count and its CPU.
 */
async function client(port: number, seconds: number): Promise<void> {
  const keys = generateKeys();
  process.send?.('ready');
  await once(process, 'message');
  await tunnelFor(port, keys, WARM_UP_SECONDS);
  process.send?.('warm');
  await once(process, 'message');
  const before = process.cpuUsage();
  const { tunnels, failures } = await tunnelFor(port, keys, seconds);
  const used = process.cpuUsage(before);
  process.send?.({ tunnels, failures, cpuSeconds: (used.user + used.system) / 1e6 });
  process.disconnect();
}

interface Measurement {
  perSecond: number;
  failures: number;
  /** CPU per tunnel of the daemon (every process of it) and of the client processes. */
  daemonCpuMs: number;
  clientCpuMs: number;
}

/**
 * Tunnels per second against `daemon` from CLIENTS client processes, started together once all are
 * loaded, and counted together once all have warmed up.
 */
async function measure(port: number, daemon: ProcessGroup): Promise<Measurement> {
  const children = Array.from({ length: CLIENTS }, () => fork(process.argv[1]!, ['client', String(port), String(SECONDS)]));
  const nextMessage = async (child: (typeof children)[number]): Promise<unknown> => (await once(child, 'message'))[0];
  await Promise.all(children.map(nextMessage));
  const warm = children.map(nextMessage);
  for (const child of children) child.send('warm up');
  await Promise.all(warm);
  const counts = children.map(async (child) => (await nextMessage(child)) as { tunnels: number; failures: number; cpuSeconds: number });
  const before = await daemon.read();
  for (const child of children) child.send('go');
  const results = await Promise.all(counts);
  const after = await daemon.read();
  const sum = (field: 'tunnels' | 'failures' | 'cpuSeconds'): number => results.reduce((total, count) => total + count[field], 0);
  const tunnels = Math.max(1, sum('tunnels'));
  return {
    perSecond: sum('tunnels') / SECONDS,
    failures: sum('failures'),
    daemonCpuMs: ((after.cpuSeconds - before.cpuSeconds) * 1000) / tunnels,
    clientCpuMs: (sum('cpuSeconds') * 1000) / tunnels,
  };
}

async function main(): Promise<void> {
  // Postfix is never asked: the tunnels close before any mail command.
  const postfixPort = await freePort();
  const runs = new Map<number, Measurement[]>([
    [1, []],
    [WORKERS, []],
  ]);
  let failures = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const workers of runs.keys()) {
      const port = await freePort();
      const daemon = await startBlackpony(`handshakes-${workers}`, { inbound: inboundSection(port, `127.0.0.1:${postfixPort}`), workers });
      try {
        const result = await measure(port, daemon.group);
        runs.get(workers)!.push(result);
        failures += result.failures;
      } finally {
        await daemon.stop();
      }
    }
  }
  const rows = [...runs].map(([workers, measured]) => ({
    scenario: 'fresh-tunnels',
    workers,
    tunnels_per_s: Math.round(median(measured.map((m) => m.perSecond))),
    cpu_ms_per_tunnel: {
      daemon: Number(median(measured.map((m) => m.daemonCpuMs)).toFixed(2)),
      clients: Number(median(measured.map((m) => m.clientCpuMs)).toFixed(2)),
    },
  }));
  for (const row of rows) {
    const verdict = row.tunnels_per_s >= TARGET_PER_SECOND ? 'ok  ' : 'MISS';
    console.log(
      `${verdict} fresh tunnels, ${row.workers} worker${row.workers === 1 ? '' : 's'}: ${row.tunnels_per_s}/s (target >= ${TARGET_PER_SECOND}/s; median of ${ROUNDS} runs of ${SECONDS} s, ${CLIENTS} client processes x ${CONCURRENCY} at once)`,
    );
    console.log(
      `     CPU per tunnel: daemon ${row.cpu_ms_per_tunnel.daemon} ms (${Math.round(1000 / row.cpu_ms_per_tunnel.daemon)} tunnels/s per core it has), clients ${row.cpu_ms_per_tunnel.clients} ms`,
    );
  }
  const [one, many] = rows;
  console.log(
    `scaling: ${(many!.tunnels_per_s / one!.tunnels_per_s).toFixed(2)}x with ${WORKERS} workers on ${availableParallelism()} cores (clients share the cores)`,
  );
  if (failures > 0) console.log(`failed handshakes: ${failures}`);
  // Other work on the machine takes the cores the figures are about.
  const load = Number(loadavg()[0]!.toFixed(1));
  console.log(`load average (1 min) at the end: ${load} on ${availableParallelism()} cores`);
  await writeFile(
    RESULTS,
    `${JSON.stringify({ machine: { cores: availableParallelism(), node: process.version, load_average: load }, rows, failures }, null, 2)}\n`,
  );
}

if (process.argv[2] === 'client') void client(Number(process.argv[3]), Number(process.argv[4]));
else runBench(main);
