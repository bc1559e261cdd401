/**
 * `npm run bench:floor` (part of `npm run bench`, after bench/e2e.ts): the floor under blackpony's
 * CPU per 1 MiB message. Two relays (bench/floor-relay.ts) do only what costs per octet on the
 * tunnel path, with blackpony's own code: read the message, seal it with age, send its header in
 * tunnel frames and its payload in raw runs (XPONY-RAW-PAYLOAD), write; read them, open the
 * frames, open the age file, dot-stuff, write. Each is a process of its own on loopback, like the
 * two daemons:
 *
 *   this process (the sender) -> sealing relay -> frames and raw runs -> opening relay -> this process (the receiver)
 *
 * What blackpony spends beyond this, per message, is what its SMTP sessions, its stream handling
 * and its decisions cost; printed beside the e2e-xpony rows bench/results/latest.json holds (from
 * the e2e bench of the same `npm run bench`), and saved as the `floor` row. The receiver checks
 * every octet against what was sent. Runs are a warm-up, then REPETITIONS counted ones (medians).
 */
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from '../src/crypto/age/index.js';
import { deployedEnvironment } from '../test/harness/deployed-node-options.js';
import { freePort } from '../test/harness/ports.js';
import { startProcess, type ManagedProcess } from '../test/harness/processes.js';
import { waitFor } from '../test/harness/wait.js';
import { ProcessGroup } from './process-groups.js';
import { readRows, RESULTS_FILE, saveRows, type ResultRow } from './results.js';
import { runBench } from './run.js';
import { median } from './statistics.js';
import { blackponyBudget, blackponyCpu, postfixCpu, TARGETS, type CpuRow } from './targets.js';

const RELAY = join(import.meta.dirname, 'floor-relay.js');
const MiB = 1024 * 1024;
const SESSIONS = 20;
const MESSAGES_PER_SESSION = 10;
const WARM_UP_PER_SESSION = 5;
const REPETITIONS = 3;
const RUN_TIMEOUT_MS = 300_000;

/** 1 MiB of lines of at most 76 columns (base64: none starts with a dot), then the end-of-data line. */
function testMessage(): Buffer {
  const lines: string[] = [];
  for (let length = 0; length < MiB;) {
    const columns = Math.min(76, MiB - length - 2);
    lines.push(`${randomBytes(57).toString('base64').slice(0, columns)}\r\n`);
    length += columns + 2;
  }
  return Buffer.from(`${lines.join('')}.\r\n`, 'latin1');
}

/** Takes the opening relay's connections; each must carry `message` over and over, octet for octet. */
class Receiver {
  private received = 0;
  private failure: Error | undefined;
  readonly server: Server = createServer((socket) => this.check(socket));

  private constructor(
    private readonly message: Buffer,
    readonly port: number,
  ) {}

  static async start(message: Buffer): Promise<Receiver> {
    const receiver = new Receiver(message, await freePort());
    await new Promise<void>((resolve) => receiver.server.listen(receiver.port, '127.0.0.1', resolve));
    return receiver;
  }

  private check(socket: Socket): void {
    const message = this.message;
    let offset = 0;
    socket.on('data', (data: Buffer) => {
      for (let at = 0; at < data.length;) {
        const length = Math.min(data.length - at, message.length - offset);
        if (!data.subarray(at, at + length).equals(message.subarray(offset, offset + length))) {
          this.failure ??= new Error(`floor: the opening relay's output differs from the message sent, within its octets ${offset}-${offset + length}`);
        }
        at += length;
        offset = (offset + length) % message.length;
      }
      this.received += data.length;
    });
  }

  /** Resolves once `octets` more have arrived, all as sent. */
  async expect(octets: number): Promise<void> {
    const target = this.received + octets;
    await waitFor(
      `floor: ${octets} octets through both relays`,
      () => {
        if (this.failure !== undefined) throw this.failure;
        return this.received >= target ? true : undefined;
      },
      { timeoutMs: RUN_TIMEOUT_MS, intervalMs: 20 },
    );
    if (this.received !== target) throw new Error(`floor: ${this.received - target + octets} octets arrived for ${octets} sent`);
  }
}

interface Relay {
  process: ManagedProcess;
  group: ProcessGroup;
  port: number;
}

async function startRelay(role: 'seal' | 'open', nextPort: number, env: NodeJS.ProcessEnv): Promise<Relay> {
  const port = await freePort();
  const child = await startProcess(`floor ${role}`, process.execPath, [RELAY, role, String(port), String(nextPort)], { env });
  await waitFor(`floor ${role} relay listening`, () => {
    if (child.status !== null) throw new Error(`floor ${role} relay exited (${JSON.stringify(child.status)}):\n${child.output()}`);
    return child.stdout().includes('listening') ? true : undefined;
  });
  return { process: child, group: await ProcessGroup.of(`floor-${role}`, child.pid), port };
}

/** Sends `perSession` messages on each of SESSIONS connections, with backpressure. */
function send(port: number, message: Buffer, perSession: number): void {
  for (let s = 0; s < SESSIONS; s++) {
    const socket = connect(port, '127.0.0.1');
    let sent = 0;
    const pump = (): void => {
      while (sent < perSession) {
        sent++;
        if (!socket.write(message)) {
          socket.once('drain', pump);
          return;
        }
      }
      socket.end();
    };
    pump();
  }
}

/** CPU milliseconds per message of each relay over one run of `perSession` messages per session. */
async function run(relays: Relay[], receiver: Receiver, message: Buffer, perSession: number): Promise<number[]> {
  const before = await Promise.all(relays.map(async (r) => r.group.read()));
  send(relays[0]!.port, message, perSession);
  await receiver.expect(SESSIONS * perSession * message.length);
  const after = await Promise.all(relays.map(async (r) => r.group.read()));
  for (const r of relays) if (r.process.status !== null) throw new Error(`floor: a relay exited:\n${r.process.output()}`);
  return relays.map((_r, i) => ((after[i]!.cpuSeconds - before[i]!.cpuSeconds) * 1000) / (SESSIONS * perSession));
}

export interface FloorRow {
  scenario: 'floor';
  size_bytes: number;
  cpu_ms_per_msg: { sealing_relay: number; opening_relay: number };
}

type E2eCpuRow = ResultRow & CpuRow & { size_bytes: number };

/** The e2e row of `scenario` at `size` among `rows`, if the e2e bench wrote one. */
function e2eRow(rows: readonly Partial<E2eCpuRow>[], scenario: 'e2e-starttls' | 'e2e-xpony', size: number): E2eCpuRow | undefined {
  return rows.find((r) => r.scenario === scenario && r.size_bytes === size && r.cpu_ms_per_msg !== undefined) as E2eCpuRow | undefined;
}

/**
 * Sets the floor beside the e2e rows of the same `npm run bench`: how many times the floor each
 * daemon spends, and, for each 1 MiB bar (targets.ts), what it leaves blackpony in that run and
 * whether the floor plus what every message costs (blackpony's CPU per 4 KiB message) fits it.
 */
async function besideE2e(floor: { sealing: number; opening: number }): Promise<void> {
  const rows = (await readRows()) as Partial<E2eCpuRow>[];
  const [xpony, small, starttls] = [e2eRow(rows, 'e2e-xpony', MiB), e2eRow(rows, 'e2e-xpony', 4 * 1024), e2eRow(rows, 'e2e-starttls', MiB)];
  if (xpony === undefined || small === undefined || starttls === undefined) {
    console.log(`no e2e rows in ${RESULTS_FILE} to set beside the floor: run npm run bench:e2e first`);
    return;
  }
  const [big, perMessage] = [xpony.cpu_ms_per_msg, small.cpu_ms_per_msg];
  console.log(
    `blackpony (e2e-xpony rows in ${RESULTS_FILE}): outbound ${big.blackpony_out!.toFixed(2)} ms per 1 MiB message, ${(big.blackpony_out! / floor.sealing).toFixed(1)} times the floor ` +
      `(${perMessage.blackpony_out!.toFixed(2)} ms per 4 KiB message); inbound ${big.blackpony_in!.toFixed(2)}, ${(big.blackpony_in! / floor.opening).toFixed(1)} times (${perMessage.blackpony_in!.toFixed(2)} at 4 KiB)`,
  );
  const targets = TARGETS.find((t) => t.size === MiB)!;
  const [floorCpu, spent] = [floor.sealing + floor.opening, blackponyCpu(xpony)];
  const least = floorCpu + blackponyCpu(small);
  console.log(
    `at 1 MiB blackpony spent ${spent.toFixed(2)} ms per message; the floor and its cost per 4 KiB message come to ${least.toFixed(2)} ` +
      `(the two Postfixes over STARTTLS spent ${postfixCpu(starttls).toFixed(2)}, those on the blackpony path ${postfixCpu(xpony).toFixed(2)}). What each bar left it in that run:`,
  );
  const bars = [
    ...targets.ratio.map((ratio, i) => ({ name: `${i === 0 ? '' : 'later: '}ratio ${ratio}`, budget: blackponyBudget(starttls, xpony, ratio) })),
    ...targets.cpuShare.map((share, i) => ({ name: `${i === 0 ? '' : 'later: '}CPU ${share * 100}%`, budget: share * postfixCpu(starttls) })),
  ];
  for (const { name, budget } of bars) {
    const verdict =
      spent <= budget
        ? 'met'
        : least <= budget
          ? 'within reach of cutting all the rest'
          : floorCpu <= budget
            ? 'under the floor and the cost per message: out of reach of cutting the rest'
            : 'under the floor alone';
    console.log(`  ${name}: ${budget.toFixed(2)} ms, ${verdict}`);
  }
}

async function main(): Promise<void> {
  const message = testMessage();
  const identity = generateX25519Identity();
  const env = {
    ...(await deployedEnvironment()),
    FLOOR_RECIPIENT: identityToRecipient(identity),
    FLOOR_IDENTITY: identity,
    FLOOR_FRAME_KEY: randomBytes(32).toString('hex'),
  };
  const receiver = await Receiver.start(message);
  const relays: Relay[] = [];
  try {
    relays.push(await startRelay('open', receiver.port, env));
    relays.unshift(await startRelay('seal', relays[0]!.port, env));
    await run(relays, receiver, message, WARM_UP_PER_SESSION);
    const runs: number[][] = [];
    for (let rep = 0; rep < REPETITIONS; rep++) runs.push(await run(relays, receiver, message, MESSAGES_PER_SESSION));
    const [sealing, opening] = [0, 1].map((i) => Number(median(runs.map((r) => r[i]!)).toFixed(2))) as [number, number];
    const row: FloorRow = { scenario: 'floor', size_bytes: MiB, cpu_ms_per_msg: { sealing_relay: sealing, opening_relay: opening } };
    console.log(
      `\nfloor, node ${process.version}, ${SESSIONS} sessions, medians of ${REPETITIONS} runs of ${SESSIONS * MESSAGES_PER_SESSION} messages of 1 MiB`,
    );
    console.log(`CPU ms per message: sealing relay ${sealing.toFixed(2)}, opening relay ${opening.toFixed(2)}, both ${(sealing + opening).toFixed(2)}`);
    await besideE2e({ sealing, opening });
    const file = await saveRows([row], (r) => r.scenario === 'floor');
    console.log(`wrote ${file}`);
  } finally {
    for (const r of relays) {
      await r.process.stop();
      await r.group.remove();
    }
    await new Promise<void>((resolve) => receiver.server.close(() => resolve()));
  }
}

runBench(main);
