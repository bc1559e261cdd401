/**
 * The processes `npm run bench` measures: blackpony daemons started as real processes (`blackpony
 * run`), so each one's peak RSS and CPU time can be read from /proc; plus the readings themselves.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeys, writeKeyFile } from '../src/crypto/keyfile.js';
import { deployedEnvironment } from '../test/harness/deployed-node-options.js';
import { peakRssMib } from '../test/harness/peak-rss.js';
import { startProcess, type ManagedProcess } from '../test/harness/processes.js';
import { readSmtpGreeting } from '../test/harness/smtp-greeting.js';
import { makeTempDir, removeTempDir } from '../test/harness/temp-dir.js';
import { waitFor } from '../test/harness/wait.js';

const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.js');
/** /proc/PID/stat counts CPU time in clock ticks; 100 per second on Linux (USER_HZ). */
const TICKS_PER_SECOND = 100;
/** One reading of a process: peak RSS since the last resetPeak() and CPU time used so far. */
export interface ProcessReading {
  peakRssMib: number;
  cpuSeconds: number;
}

export async function readProcess(pid: number): Promise<ProcessReading> {
  // Fields after the command name (which may hold spaces): utime and stime are fields 14 and 15.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { peakRssMib: await peakRssMib(pid), cpuSeconds: ticks / TICKS_PER_SECOND };
}

/** Starts a new peak-RSS window (proc(5): writing 5 to clear_refs resets VmHWM to the current RSS). */
export async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5');
}

export interface BlackponyProcess {
  name: string;
  pid: number;
  /** The port it listens on (inbound or outbound, whichever it runs). */
  port: number;
  stateDir: string;
  stop(): Promise<void>;
}

export interface BlackponySide {
  /** Where it listens. */
  port: number;
  inbound?: { postfixPort: number };
  outbound?: { route: string; tunnelIdleSeconds: number; resolverPort: number };
  /** Worker processes (the `workers` setting); default 1. */
  workers?: number;
}

/**
 * Starts `blackpony run` with its own key file and state folder, metrics off, log level warn, one
 * side only (inbound or outbound), with the systemd unit's Node options; resolves once its
 * listener greets.
 */
export async function startBlackpony(name: string, side: BlackponySide): Promise<BlackponyProcess> {
  const dir = await makeTempDir(`bench-${name}`);
  const keys = join(dir, 'keys');
  await writeKeyFile(keys, generateKeys());
  const listen = `127.0.0.1:${side.port}`;
  const config = {
    hostname: `${name}.bench.test`,
    keys,
    state_dir: join(dir, 'state'),
    // One process by default, whose CPU and RSS the bench reads by pid.
    workers: side.workers ?? 1,
    log: { level: 'warn' },
    metrics: { listen: '' },
    inbound: side.inbound === undefined ? { enabled: false } : {
            enabled: true,
            listen,
            postfix: `127.0.0.1:${side.inbound.postfixPort}`,
            client_identity: 'xclient',
            // No DNS per session, like the bench's Postfix (smtpd_peername_lookup = no).
            client_name_lookup: false,
          },
    outbound:
      side.outbound === undefined
        ? { enabled: false }
        : {
            enabled: true,
            listen,
            protocol: 'smtp',
            resolver: [`127.0.0.1:${side.outbound.resolverPort}`],
            routes: { '*': side.outbound.route },
            tunnel_idle_seconds: side.outbound.tunnelIdleSeconds,
            mta_sts: false,
          },
  };
  // JSON is YAML.
  const configFile = join(dir, 'config.yaml');
  await writeFile(configFile, JSON.stringify(config, null, 2));
  // BENCH_CPU_PROF=DIR: each daemon writes a V8 CPU profile there when it stops.
  const profile = process.env.BENCH_CPU_PROF === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`, `--cpu-prof-name=${name}.cpuprofile`];
  const env = await deployedEnvironment();
  const child: ManagedProcess = await startProcess(`blackpony ${name}`, process.execPath, [...profile, MAIN, 'run', '--config', configFile], { env });
  const stop = async (): Promise<void> => {
    await child.stop();
    await removeTempDir(dir);
  };
  try {
    await waitFor(
      `blackpony ${name}: greeting on ${listen}`,
      async () => {
        if (child.status !== null) throw new Error(`blackpony ${name} exited (${JSON.stringify(child.status)}):\n${child.output()}`);
        return readSmtpGreeting(side.port).catch(() => undefined);
      },
      // Generous: with workers, several processes load on a machine the bench keeps busy.
      { timeoutMs: 30_000, diagnostics: () => child.output() },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { name, pid: child.pid, port: side.port, stateDir: config.state_dir, stop };
}
