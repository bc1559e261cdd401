/**
 * The blackpony daemons `npm run bench` measures: each a real process (`blackpony run`) with its
 * own key file, state folder and configuration, counted as a process group (bench/process-groups.ts)
 * so that its CPU time and peak RSS include any process it starts.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeys, writeKeyFile, type Keys } from '../src/crypto/keyfile.js';
import { deployedEnvironment } from '../test/harness/deployed-node-options.js';
import { startProcess, type ManagedProcess } from '../test/harness/processes.js';
import { readSmtpGreeting } from '../test/harness/smtp-greeting.js';
import { makeTempDir, removeTempDir } from '../test/harness/temp-dir.js';
import { waitFor } from '../test/harness/wait.js';
import { ProcessGroup } from './process-groups.js';

const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.js');

/**
 * The settings every bench daemon runs with, beside its inbound and outbound sections: the one
 * place to change how all of them run (a process model, a log level). Metrics are off and the log
 * says only what went wrong, as neither is what the bench measures.
 */
const SHARED_SETTINGS = {
  log: { level: 'warn' },
  metrics: { listen: '' },
};

/** A daemon's `inbound` and `outbound` sections as the configuration file writes them; a side left out is disabled. */
export interface DaemonSections {
  inbound?: Record<string, unknown> & { listen: string };
  outbound?: Record<string, unknown> & { listen: string };
  /** The `workers` setting, when not its default (`auto`: one per two cores, at least 1, at most 4). */
  workers?: number;
}

export interface BlackponyProcess {
  name: string;
  pid: number;
  /** The daemon and every process it starts. */
  group: ProcessGroup;
  keys: Keys;
  stateDir: string;
  stop(): Promise<void>;
}

/**
 * The inbound section of a daemon on 127.0.0.1:`port` relaying to `postfix` (HOST:PORT or
 * unix:/PATH) with XCLIENT, and no DNS per session, like the bench's Postfix instances.
 */
export function inboundSection(port: number, postfix: string): NonNullable<DaemonSections['inbound']> {
  return { enabled: true, listen: `127.0.0.1:${port}`, postfix, client_identity: 'xclient', client_name_lookup: false };
}

/** BENCH_WORKERS, when set: the `workers` setting of every daemon that names none. */
function benchWorkers(): number | undefined {
  const value = process.env.BENCH_WORKERS;
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]?$/.test(value)) throw new Error(`BENCH_WORKERS: expected 1-99, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** Resolves once `listen` (HOST:PORT or unix:/PATH) answers with an SMTP greeting. */
function readGreeting(listen: string): Promise<string> {
  if (listen.startsWith('unix:')) return readSmtpGreeting({ path: listen.slice('unix:'.length) });
  const colon = listen.lastIndexOf(':');
  return readSmtpGreeting(Number(listen.slice(colon + 1)), listen.slice(0, colon));
}

/**
 * Starts `blackpony run` with SHARED_SETTINGS and `sections`, with the systemd unit's Node
 * options; resolves once each of its listeners greets.
 */
export async function startBlackpony(name: string, sections: DaemonSections): Promise<BlackponyProcess> {
  const dir = await makeTempDir(`bench-${name}`);
  const keys = generateKeys();
  const keyFile = join(dir, 'keys');
  await writeKeyFile(keyFile, keys);
  const stateDir = join(dir, 'state');
  // BENCH_CPU_PROF=DIR: each daemon writes a V8 CPU profile there when it stops. A profile is of
  // one process, and a worker's would be lost (workers are stopped by the primary), so a profiled
  // daemon runs with workers: 1. BENCH_WORKERS=N: every daemon that sets none runs N workers.
  const profiled = process.env.BENCH_CPU_PROF !== undefined;
  const workers = profiled ? 1 : (sections.workers ?? benchWorkers());
  const config = {
    hostname: `${name}.bench.test`,
    keys: keyFile,
    state_dir: stateDir,
    ...SHARED_SETTINGS,
    ...(workers === undefined ? {} : { workers }),
    inbound: sections.inbound ?? { enabled: false },
    outbound: sections.outbound ?? { enabled: false },
  };
  // JSON is YAML.
  const configFile = join(dir, 'config.yaml');
  await writeFile(configFile, JSON.stringify(config, null, 2));
  const profile = !profiled ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`, `--cpu-prof-name=${name}.cpuprofile`];
  // BENCH_NODE_FLAGS="--flag=value ...": node options for every daemon, after the unit's
  // NODE_OPTIONS, to compare V8 settings in the same bench (also those Node refuses in NODE_OPTIONS).
  const nodeFlags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const env = await deployedEnvironment();
  const child: ManagedProcess = await startProcess(`blackpony ${name}`, process.execPath, [...profile, ...nodeFlags, MAIN, 'run', '--config', configFile], {
    env,
  });
  const group = await ProcessGroup.of(`blackpony-${name}`, child.pid);
  const stop = async (): Promise<void> => {
    await child.stop();
    await group.remove();
    await removeTempDir(dir);
  };
  try {
    for (const listen of [sections.inbound?.listen, sections.outbound?.listen]) {
      if (listen === undefined) continue;
      await waitFor(
        `blackpony ${name}: greeting on ${listen}`,
        async () => {
          if (child.status !== null) throw new Error(`blackpony ${name} exited (${JSON.stringify(child.status)}):\n${child.output()}`);
          return readGreeting(listen).catch(() => undefined);
        },
        // Generous: with workers, several processes load on a machine the bench keeps busy.
        { timeoutMs: 30_000, diagnostics: () => child.output() },
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { name, pid: child.pid, group, keys, stateDir, stop };
}
