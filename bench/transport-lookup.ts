/**
 * `npm run bench`, last part (alone: `npm run bench:lookup`): Postfix's transport lookup (outbound.transport_lookup), which
 * trivial-rewrite waits for on every recipient. A client speaks the socketmap protocol as
 * trivial-rewrite does (netstring requests on a kept connection, one at a time per connection)
 * to the lookup as the daemon serves it, with its policy sources on real DNS (dnsmasq):
 *
 * - cached:   the same few domains again and again (answers from the cache);
 * - uncached: a new domain each time (one `_pony` query each, answered NXDOMAIN by dnsmasq).
 *
 * Reports lookups per second over CONNECTIONS connections and the latency of single lookups;
 * results go to bench/results/transport-lookup.json.
 */
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { Resolver } from 'node:dns/promises';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { generateKeys } from '../src/crypto/keyfile.js';
import { identityToRecipient } from '../src/crypto/age/index.js';
import { serializePonyRecord } from '../src/crypto/pony-record.js';
import { openPinStore } from '../src/outbound/pins.js';
import { createSocketmapServer, NetstringReader } from '../src/outbound/socketmap.js';
import { TransportLookup } from '../src/outbound/transport-lookup.js';
import { startDns } from '../test/harness/dnsmasq.js';
import { makeTempDir } from '../test/harness/temp-dir.js';
import { quantile } from './statistics.js';
import { runBench } from './run.js';

const CONNECTIONS = 8;
const CACHED_LOOKUPS = 50_000;
const UNCACHED_LOOKUPS = 2_000;
const LATENCY_SAMPLES = 2_000;
const RESULTS = join(import.meta.dirname, '..', '..', 'bench', 'results', 'transport-lookup.json');

/** One socketmap connection, as trivial-rewrite keeps it: a request, then its answer. */
class LookupClient {
  private readonly reader = new NetstringReader();
  private pending: ((answer: string) => void) | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const answer of this.reader.push(chunk).requests) this.pending?.(answer.toString('latin1'));
    });
  }

  static async open(port: number): Promise<LookupClient> {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.setNoDelay(true);
    return new LookupClient(socket);
  }

  lookup(key: string): Promise<string> {
    const request = `transport ${key}`;
    return new Promise((resolve) => {
      this.pending = resolve;
      this.socket.write(`${Buffer.byteLength(request)}:${request},`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

async function throughput(clients: readonly LookupClient[], keys: (i: number) => string, total: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    clients.map(async (client) => {
      while (next < total) await client.lookup(keys(next++));
    }),
  );
  return total / ((performance.now() - started) / 1000);
}

async function latencies(client: LookupClient, keys: (i: number) => string, count: number): Promise<{ p50: number; p99: number }> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await client.lookup(keys(i));
    samples.push(performance.now() - started);
  }
  return { p50: quantile(samples, 0.5), p99: quantile(samples, 0.99) };
}

async function main(): Promise<void> {
  const peer = generateKeys();
  const record = serializePonyRecord({ noiseKeys: [peer.noise.publicKey], ageRecipient: identityToRecipient(peer.ageX25519Identity), policy: 'enforce' });
  const dns = await startDns({ txt: [{ name: '_pony.peer.test', value: record }] });
  const resolver = new Resolver({ timeout: 2_000, tries: 1 });
  resolver.setServers([`127.0.0.1:${dns.port}`]);
  const lookup = new TransportLookup({
    policy: { resolver, pins: await openPinStore(await makeTempDir('bench-pins')) },
    ownKey: () => generateKeys().noise.publicKey,
    answer: 'blackpony:inet:[127.0.0.1]:10587',
    cacheMs: 3_600_000,
    temporaryCacheMs: 10_000,
    deadlineMs: 10_000,
    maxEntries: 100_000,
  });
  const server = createSocketmapServer(async (_map, key) => (await lookup.lookup(key)).answer);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => LookupClient.open(port)));
  try {
    const cachedKeys = (i: number): string => `user${i}@${i % 2 === 0 ? 'peer.test' : 'legacy.test'}`;
    let fresh = 0;
    const uncachedKeys = (): string => `user@d${fresh++}.test`;
    await throughput(clients, cachedKeys, 1_000); // warm-up
    const rows = [
      {
        case: 'cached',
        connections: CONNECTIONS,
        lookups_per_s: await throughput(clients, cachedKeys, CACHED_LOOKUPS),
        latency_ms: await latencies(clients[0]!, cachedKeys, LATENCY_SAMPLES),
      },
      {
        case: 'uncached',
        connections: CONNECTIONS,
        lookups_per_s: await throughput(clients, uncachedKeys, UNCACHED_LOOKUPS),
        latency_ms: await latencies(clients[0]!, uncachedKeys, Math.min(LATENCY_SAMPLES, UNCACHED_LOOKUPS)),
      },
    ];
    console.log(`\ntransport lookup (socketmap), node ${process.version}, ${CONNECTIONS} connections`);
    for (const row of rows) {
      console.log(
        `  ${row.case.padEnd(9)} ${row.lookups_per_s.toFixed(0).padStart(7)} lookups/s   latency p50 ${row.latency_ms.p50.toFixed(3)} ms, p99 ${row.latency_ms.p99.toFixed(3)} ms`,
      );
    }
    await writeFile(RESULTS, `${JSON.stringify(rows, null, 2)}\n`);
    console.log(`wrote ${RESULTS}`);
  } finally {
    for (const client of clients) client.close();
    server.close();
    await dns.stop();
  }
}

runBench(main);
