/**
 * `npm run bench`: blackpony's SMTP throughput, latency and memory against direct delivery, all
 * measured in one run (interleaved repetitions, medians) because the machine is shared:
 *
 * - direct:    smtp-source -> smtp-sink (the ceiling)
 * - encrypted: smtp-source -> blackpony outbound -> XPONY tunnel, sealed -> blackpony inbound
 *              -> "Postfix" -> smtp-sink
 * - fallback:  smtp-source -> blackpony outbound -> smtp-sink (a legacy peer)
 * - fresh-tunnels: encrypted with tunnel reuse off: every message is a new handshake
 * - large:     one 50 MiB message through encrypted
 *
 * The inbound relays to Postfix with XCLIENT, which smtp-sink does not speak the way Postfix does
 * (it answers XCLIENT with 250, not a new 220 greeting; a PROXY line is an unknown command to
 * it). So "Postfix" is a real Postfix smtpd that passes each message straight on to the same
 * smtp-sink as a before-queue proxy filter (smtpd_proxy_filter: no queue file, no delivery agent).
 *
 * Each blackpony is a real process; its peak RSS (VmHWM, reset per run) and CPU time come from /proc
 * or its cgroup (bench/process-groups.ts). These are the secondary rows of bench/results/latest.json
 * (bench/e2e.ts has the primary ones): a table on stdout and the rows, then the bars, met or
 * missed.
 * BENCH_CPU_PROF=DIR writes each daemon's V8 CPU profile to DIR (bench/processes.ts).
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startDns, type TestDns } from '../test/harness/dnsmasq.js';
import { freePort } from '../test/harness/ports.js';
import { startPostfix, type PostfixInstance } from '../test/harness/postfix.js';
import { startSmtpSink, type SmtpSink } from '../test/harness/smtp-sink.js';
import { runSmtpSource } from '../test/harness/smtp-source.js';
import { testMessage, TimedSender } from './latency.js';
import type { GroupReading } from './process-groups.js';
import { inboundSection, startBlackpony, type BlackponyProcess } from './processes.js';
import { saveRows } from './results.js';
import { runBench } from './run.js';
import { median, quantile } from './statistics.js';

const REPETITIONS = 3;
const SESSIONS = 20;
const KiB = 1024;
const MiB = 1024 * KiB;
/** Each timed run sends about this many seconds' worth of messages (from a calibration run). */
const TARGET_SECONDS = 2.5;
const LATENCY_SAMPLES: Record<number, number> = { [4 * KiB]: 300, [MiB]: 40 };
const LARGE = 50 * MiB;

const SCENARIOS = ['direct', 'encrypted', 'fallback', 'fresh-tunnels', 'large'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Path {
  /** postfix-front: smtp-source -> the "Postfix" in front of smtp-sink, the ceiling of encrypted (printed, not a row). */
  scenario: Scenario | 'postfix-front';
  /** Where smtp-source connects. */
  port: number;
  outbound?: BlackponyProcess;
  inbound?: BlackponyProcess;
}

interface Run {
  msgsPerS: number;
  rss: { outbound: number | null; inbound: number | null };
  cpu: { outbound: number | null; inbound: number | null };
}

export interface Row {
  scenario: Scenario | 'postfix-front';
  size_bytes: number;
  reuse: boolean;
  msgs_per_s: number;
  mb_per_s: number;
  ratio_to_direct: number | null;
  latency_ms: { p50: number; p99: number } | null;
  rss_peak_mib: { outbound: number | null; inbound: number | null };
  /** CPU seconds per message, per blackpony process (an addition to the fields). */
  cpu_s_per_msg: { outbound: number | null; inbound: number | null };
}

function medianOrNull(values: readonly (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length === 0 ? null : median(present);
}

class Bench {
  private constructor(
    readonly sink: SmtpSink,
    readonly postfix: PostfixInstance,
    readonly dns: TestDns,
    readonly receiver: BlackponyProcess,
    readonly paths: Record<Scenario | 'postfix-front', Path>,
  ) {}

  static async start(): Promise<Bench> {
    const sink = await startSmtpSink();
    const postfix = await startPostfix({
      mainCf: {
        smtpd_authorized_xclient_hosts: '127.0.0.0/8',
        smtpd_proxy_filter: `127.0.0.1:${sink.port}`,
        smtpd_peername_lookup: 'no',
        message_size_limit: String(200 * MiB),
        mailbox_size_limit: '0',
      },
    });
    // The sender's resolver: a local one that knows no _pony record (opportunistic mode, as for
    // a peer that publishes none), answering at once as a caching resolver would.
    const dns = await startDns({});
    const receiverPort = await freePort();
    const receiver = await startBlackpony('receiver', { inbound: inboundSection(receiverPort, `127.0.0.1:${postfix.port}`) });
    const sender = async (name: string, route: string, tunnelIdleSeconds: number): Promise<{ daemon: BlackponyProcess; port: number }> => {
      const port = await freePort();
      const outbound = {
        enabled: true,
        listen: `127.0.0.1:${port}`,
        protocol: 'smtp',
        resolver: [`127.0.0.1:${dns.port}`],
        routes: { '*': route },
        tunnel_idle_seconds: tunnelIdleSeconds,
        mta_sts: false,
      };
      return { daemon: await startBlackpony(name, { outbound }), port };
    };
    const toReceiver = `[127.0.0.1]:${receiverPort}`;
    const encrypted = await sender('encrypted', toReceiver, 60);
    const fallback = await sender('fallback', `[127.0.0.1]:${sink.port}`, 60);
    const fresh = await sender('fresh', toReceiver, 0);
    return new Bench(sink, postfix, dns, receiver, {
      direct: { scenario: 'direct', port: sink.port },
      'postfix-front': { scenario: 'postfix-front', port: postfix.port },
      encrypted: { scenario: 'encrypted', port: encrypted.port, outbound: encrypted.daemon, inbound: receiver },
      fallback: { scenario: 'fallback', port: fallback.port, outbound: fallback.daemon },
      'fresh-tunnels': { scenario: 'fresh-tunnels', port: fresh.port, outbound: fresh.daemon, inbound: receiver },
      large: { scenario: 'large', port: encrypted.port, outbound: encrypted.daemon, inbound: receiver },
    });
  }

  /** One smtp-source run through `path`; checks that every message reached the sink. */
  async run(path: Path, size: number, reuse: boolean, messages: number, sessions = SESSIONS): Promise<Run> {
    const processes = [path.outbound, path.inbound];
    await Promise.all(processes.map(async (p) => p?.group.resetPeaks()));
    const before = await Promise.all(processes.map(async (p) => p?.group.read()));
    const counted = this.sink.messageCount();
    const result = await runSmtpSource({
      port: path.port,
      sessions,
      messages,
      size,
      reuse,
      from: 'bench@source.test',
      to: 'bench@sink.test',
      timeoutMs: 300_000,
    });
    if (result.exitCode !== 0) throw new Error(`smtp-source to ${path.scenario}: exit ${result.exitCode}: ${result.stderr}`);
    await this.sink.waitForMessages(counted + messages).catch((error: Error) => {
      throw new Error(`${path.scenario}: not every message reached smtp-sink (smtp-source said: ${result.stderr.trim() || 'nothing'}): ${error.message}`);
    });
    const after = await Promise.all(processes.map(async (p) => p?.group.read()));
    const rss = (i: number): number | null => after[i]?.peakRssMib ?? null;
    const cpu = (i: number): number | null => {
      const b: GroupReading | undefined = before[i];
      const a = after[i];
      return a === undefined || b === undefined ? null : (a.cpuSeconds - b.cpuSeconds) / messages;
    };
    return { msgsPerS: messages / (result.elapsedMs / 1000), rss: { outbound: rss(0), inbound: rss(1) }, cpu: { outbound: cpu(0), inbound: cpu(1) } };
  }

  /**
   * Proof that the encrypted paths are encrypted: a sender pins a peer's key only after a message
   * went through an XPONY tunnel to it (and through a tunnel the message is always sealed; the
   * inbound refuses what it cannot open, so it would not have reached the sink).
   */
  async assertTunnelled(path: Path): Promise<void> {
    const pins = await readdir(join(path.outbound!.stateDir, 'pins')).catch((): string[] => []);
    if (!pins.includes('sink.test.json')) throw new Error(`${path.scenario}: the sender pinned no key for sink.test: mail did not go through an XPONY tunnel`);
  }

  async stop(): Promise<void> {
    const { encrypted, fallback } = this.paths;
    await Promise.all([encrypted.outbound!.stop(), fallback.outbound!.stop(), this.paths['fresh-tunnels'].outbound!.stop(), this.receiver.stop()]);
    await Promise.all([this.postfix.stop(), this.dns.stop(), this.sink.stop()]);
  }
}

interface Case {
  path: Path;
  size: number;
  reuse: boolean;
  messages: number;
  runs: Run[];
}

/** The count of messages that takes about TARGET_SECONDS, from a warm-up run. */
async function calibrate(bench: Bench, path: Path, size: number, reuse: boolean): Promise<number> {
  const probe = size >= MiB ? 60 : 600;
  const run = await bench.run(path, size, reuse, probe);
  return Math.max(SESSIONS * 2, Math.round((run.msgsPerS * TARGET_SECONDS) / SESSIONS) * SESSIONS);
}

/** Added latency (p50, p99 of the path minus those of direct), messages sent alternately. */
async function addedLatency(bench: Bench, path: Path, size: number, reuse: boolean): Promise<{ p50: number; p99: number }> {
  const message = testMessage(size);
  const direct = new TimedSender(bench.paths.direct.port, reuse);
  const other = new TimedSender(path.port, reuse);
  const a: number[] = [];
  const b: number[] = [];
  const samples = LATENCY_SAMPLES[size] ?? 40;
  for (let i = 0; i < samples + 5; i++) {
    const [ta, tb] = [await direct.send(message), await other.send(message)];
    if (i < 5) continue; // warm-up
    a.push(ta);
    b.push(tb);
  }
  direct.close();
  other.close();
  return { p50: quantile(b, 0.5) - quantile(a, 0.5), p99: quantile(b, 0.99) - quantile(a, 0.99) };
}

const round = (n: number | null, digits: number): number | null => (n === null ? null : Number(n.toFixed(digits)));

function rowOf(c: Case, direct: number | null, latency: { p50: number; p99: number } | null): Row {
  const msgsPerS = median(c.runs.map((r) => r.msgsPerS));
  const perProcess = (
    pick: (run: Run) => { outbound: number | null; inbound: number | null },
    digits: number,
  ): { outbound: number | null; inbound: number | null } => ({
    outbound: round(medianOrNull(c.runs.map((r) => pick(r).outbound)), digits),
    inbound: round(medianOrNull(c.runs.map((r) => pick(r).inbound)), digits),
  });
  return {
    scenario: c.path.scenario,
    size_bytes: c.size,
    reuse: c.reuse,
    msgs_per_s: round(msgsPerS, 2)!,
    mb_per_s: round((msgsPerS * c.size) / 1e6, 2)!,
    ratio_to_direct: direct === null ? null : round(msgsPerS / direct, 3),
    latency_ms: latency === null ? null : { p50: round(latency.p50, 1)!, p99: round(latency.p99, 1)! },
    rss_peak_mib: perProcess((r) => r.rss, 1),
    cpu_s_per_msg: perProcess((r) => r.cpu, 5),
  };
}

const sizeLabel = (bytes: number): string => (bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes / KiB} KiB`);
const num = (n: number | null | undefined, digits = 0): string => (n === null || n === undefined ? '-' : n.toFixed(digits));

function printTable(rows: readonly Row[]): void {
  const head = ['scenario', 'size', 'reuse', 'msgs/s', 'MB/s', 'ratio', 'lat+ p50', 'lat+ p99', 'RSS out', 'RSS in', 'CPU ms/msg out', 'in'];
  const widths = [14, 7, 6, 8, 7, 6, 9, 9, 8, 7, 15, 6];
  const line = (cells: string[]): string => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' ');
  console.log(line(head));
  for (const r of rows) {
    console.log(
      line([
        r.scenario,
        sizeLabel(r.size_bytes),
        r.reuse ? '-d' : 'no',
        num(r.msgs_per_s, r.msgs_per_s < 10 ? 2 : 0),
        num(r.mb_per_s, 1),
        r.ratio_to_direct === null ? '-' : `${(r.ratio_to_direct * 100).toFixed(0)}%`,
        r.latency_ms === null ? '-' : `${num(r.latency_ms.p50, 1)} ms`,
        r.latency_ms === null ? '-' : `${num(r.latency_ms.p99, 1)} ms`,
        num(r.rss_peak_mib.outbound),
        num(r.rss_peak_mib.inbound),
        num(r.cpu_s_per_msg.outbound === null ? null : r.cpu_s_per_msg.outbound * 1000, 2),
        num(r.cpu_s_per_msg.inbound === null ? null : r.cpu_s_per_msg.inbound * 1000, 2),
      ]),
    );
  }
}

/** The bars; `worstRss` is the highest peak RSS of any repetition of the runs it names. */
function checkTargets(rows: readonly Row[], worstRss: number): void {
  const find = (scenario: Scenario, size: number, reuse: boolean): Row =>
    rows.find((r) => r.scenario === scenario && r.size_bytes === size && r.reuse === reuse)!;
  const small = find('encrypted', 4 * KiB, false);
  const big = find('encrypted', MiB, false);
  const fresh = rows.find((r) => r.scenario === 'fresh-tunnels')!;
  const bars: [string, boolean][] = [
    [
      `encrypted >= 20% of direct in msgs/s at 4 KiB, new connection per message: ${((small.ratio_to_direct ?? 0) * 100).toFixed(0)}%`,
      (small.ratio_to_direct ?? 0) >= 0.2,
    ],
    [`encrypted >= 40% of direct in MB/s at 1 MiB: ${((big.ratio_to_direct ?? 0) * 100).toFixed(0)}%`, (big.ratio_to_direct ?? 0) >= 0.4],
    [`peak RSS of each blackpony process <= 150 MiB (50 MiB message, 20-session runs; worst repetition): ${worstRss.toFixed(0)} MiB`, worstRss <= 150],
  ];
  for (const [text, pass] of bars) console.log(`${pass ? 'ok  ' : 'MISS'} ${text}`);
  // The bar for fresh tunnels (300/s) is on the handshake alone, in bench/handshakes.ts.
  console.log(
    `fresh-tunnels: ${fresh.msgs_per_s.toFixed(0)} messages/s with a new tunnel each (handshake, sealing, the inbound's Postfix connection); handshakes alone: npm run bench:handshakes`,
  );
}

async function main(): Promise<void> {
  const started = performance.now();
  const bench = await Bench.start();
  try {
    const { direct, encrypted, fallback } = bench.paths;
    const cases: Case[] = [];
    for (const size of [4 * KiB, MiB]) {
      for (const reuse of [false, true]) {
        for (const path of [direct, encrypted, fallback]) cases.push({ path, size, reuse, messages: await calibrate(bench, path, size, reuse), runs: [] });
      }
    }
    await bench.assertTunnelled(encrypted);
    const fresh: Case = { path: bench.paths['fresh-tunnels'], size: 4 * KiB, reuse: true, messages: 0, runs: [] };
    fresh.messages = await calibrate(bench, fresh.path, fresh.size, fresh.reuse);
    await bench.assertTunnelled(fresh.path);
    const large: Case = { path: bench.paths.large, size: LARGE, reuse: false, messages: 1, runs: [] };
    const largeDirect: Case = { path: direct, size: LARGE, reuse: false, messages: 1, runs: [] };
    const fronts = [4 * KiB, MiB].map((size) => ({
      path: bench.paths['postfix-front'],
      size,
      reuse: false,
      messages: cases.find((c) => c.path === direct && c.size === size && !c.reuse)!.messages,
      runs: [] as Run[],
    }));
    const all = [...cases, ...fronts, fresh, largeDirect, large];
    for (let rep = 0; rep < REPETITIONS; rep++) {
      for (const c of all) c.runs.push(await bench.run(c.path, c.size, c.reuse, c.messages, c.size === LARGE ? 1 : SESSIONS));
      console.error(`repetition ${rep + 1}/${REPETITIONS} done (${((performance.now() - started) / 1000).toFixed(0)} s)`);
    }

    const rows: Row[] = [];
    const directRate = (size: number, reuse: boolean): number =>
      median(cases.find((c) => c.path === direct && c.size === size && c.reuse === reuse)!.runs.map((r) => r.msgsPerS));
    for (const c of cases) {
      const latency = c.path === direct ? null : await addedLatency(bench, c.path, c.size, c.reuse);
      rows.push(rowOf(c, directRate(c.size, c.reuse), latency));
    }
    rows.push(rowOf(fresh, directRate(fresh.size, fresh.reuse), await addedLatency(bench, fresh.path, fresh.size, fresh.reuse)));
    rows.push(rowOf(large, median(largeDirect.runs.map((r) => r.msgsPerS)), null));

    const measured = [...cases.filter((c) => c.path !== direct), large];
    const worstRss = Math.max(...measured.flatMap((c) => c.runs.flatMap((r) => [r.rss.outbound ?? 0, r.rss.inbound ?? 0])));
    console.log(`\nblackpony SMTP benchmark, node ${process.version}, ${SESSIONS} sessions, medians of ${REPETITIONS} interleaved runs`);
    console.log('ratio: msgs/s (= MB/s) against direct; lat+: added latency against direct, one message at a time; RSS: peak MiB per process\n');
    printTable(rows);
    const frontRows = fronts.map((c) => rowOf(c, directRate(c.size, c.reuse), null));
    for (const r of frontRows) {
      console.log(
        `ceiling of encrypted: smtp-source -> Postfix smtpd (proxy filter) -> smtp-sink, ${sizeLabel(r.size_bytes)}: ${num(r.msgs_per_s)} msgs/s, ${((r.ratio_to_direct ?? 0) * 100).toFixed(0)}% of direct`,
      );
    }
    console.log('');
    checkTargets(rows, worstRss);
    const file = await saveRows(rows, (row) => SCENARIOS.includes(row.scenario as Scenario));
    console.log(`\nwrote ${file} (${((performance.now() - started) / 1000).toFixed(0)} s in all)`);
  } finally {
    await bench.stop();
  }
}

runBench(main);
