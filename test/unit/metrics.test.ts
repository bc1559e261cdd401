import { request, Agent } from 'node:http';
import { once } from 'node:events';
import { connect, createServer, type Server } from 'node:net';
import { Gauge, register as globalRegistry } from 'prom-client';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { createMetrics, type Metrics } from '../../src/daemon/metrics.js';
import { MetricsServerError, serveMetrics, type MetricsServer } from '../../src/daemon/metrics-server.js';
import { VERSION } from '../../src/version.js';
import { parseSamples, type Sample } from '../harness/prometheus-samples.js';

/** The value of the one sample with exactly these labels; fails if there is none. */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (sample) => sample.name === name && JSON.stringify(Object.entries(sample.labels).sort()) === JSON.stringify(Object.entries(labels).sort()),
  );
  if (found.length !== 1) throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0]!.value;
}

async function scrape(metrics: Metrics): Promise<Sample[]> {
  return parseSamples(await metrics.registry.metrics());
}

describe('metrics', () => {
  it('starts every series at 0, with build info and the default process metrics', async () => {
    const samples = await scrape(createMetrics());
    expect(sampleValue(samples, 'blackpony_build_info', { version: VERSION })).toBe(1);
    expect(sampleValue(samples, 'blackpony_sessions_total', { side: 'inbound' })).toBe(0);
    expect(sampleValue(samples, 'blackpony_sessions_active', { side: 'outbound' })).toBe(0);
    expect(sampleValue(samples, 'blackpony_inbound_messages_total', { via: 'starttls', sealed: 'true', outcome: 'deferred' })).toBe(0);
    expect(sampleValue(samples, 'blackpony_deliveries_total', { mode: 'none', outcome: 'deferred' })).toBe(0);
    expect(sampleValue(samples, 'blackpony_delivery_bytes_total', { mode: 'xpony' })).toBe(0);
    expect(sampleValue(samples, 'blackpony_handshake_seconds_count', { side: 'client', outcome: 'failed' })).toBe(0);
    expect(sampleValue(samples, 'blackpony_policy_deferrals_total', { reason: 'mta-sts' })).toBe(0);
    expect(sampleValue(samples, 'blackpony_testing_failures_total')).toBe(0);
    expect(sampleValue(samples, 'blackpony_postfix_failures_total', { kind: 'lost' })).toBe(0);
    expect(sampleValue(samples, 'blackpony_limit_refusals_total', { limit: 'handshake_message3_seconds' })).toBe(0);
    // CPU time counts from the registry's creation in whole clock ticks: 0 right after it.
    expect(sampleValue(samples, 'blackpony_process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);
    expect(sampleValue(samples, 'blackpony_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(samples.some((sample) => sample.name.startsWith('blackpony_nodejs_heap_size_total_bytes'))).toBe(true);
    expect(samples.filter((sample) => !sample.name.startsWith('blackpony_'))).toEqual([]);
  });

  it('counts sessions opened and open now, per side', async () => {
    const metrics = createMetrics();
    metrics.sessionOpened('inbound');
    metrics.sessionOpened('inbound');
    metrics.sessionOpened('outbound');
    metrics.sessionClosed('inbound');
    const samples = await scrape(metrics);
    expect(sampleValue(samples, 'blackpony_sessions_total', { side: 'inbound' })).toBe(2);
    expect(sampleValue(samples, 'blackpony_sessions_active', { side: 'inbound' })).toBe(1);
    expect(sampleValue(samples, 'blackpony_sessions_total', { side: 'outbound' })).toBe(1);
    expect(sampleValue(samples, 'blackpony_sessions_active', { side: 'outbound' })).toBe(1);
  });

  it('counts clients refused by a limit, by the limit', async () => {
    const metrics = createMetrics();
    metrics.limitReached('connections_per_client');
    metrics.limitReached('connections_per_client');
    metrics.limitReached('xpony_attempts_per_connection');
    const samples = await scrape(metrics);
    expect(sampleValue(samples, 'blackpony_limit_refusals_total', { limit: 'connections_per_client' })).toBe(2);
    expect(sampleValue(samples, 'blackpony_limit_refusals_total', { limit: 'xpony_attempts_per_connection' })).toBe(1);
    expect(sampleValue(samples, 'blackpony_limit_refusals_total', { limit: 'max_clients' })).toBe(0);
  });

  it('counts inbound messages by transport, sealing and outcome, and the retries answered from the accepted messages', async () => {
    const metrics = createMetrics();
    expect(sampleValue(await scrape(metrics), 'blackpony_inbound_retries_answered_total')).toBe(0);
    metrics.inboundMessage({ via: 'xpony', sealed: true, outcome: 'accepted', retry: false });
    metrics.inboundMessage({ via: 'xpony', sealed: true, outcome: 'accepted', retry: true });
    metrics.inboundMessage({ via: 'plain', sealed: false, outcome: 'rejected', retry: false });
    const samples = await scrape(metrics);
    expect(sampleValue(samples, 'blackpony_inbound_retries_answered_total')).toBe(1);
    expect(sampleValue(samples, 'blackpony_inbound_messages_total', { via: 'xpony', sealed: 'true', outcome: 'accepted' })).toBe(2);
    expect(sampleValue(samples, 'blackpony_inbound_messages_total', { via: 'plain', sealed: 'false', outcome: 'rejected' })).toBe(1);
    expect(sampleValue(samples, 'blackpony_inbound_messages_total', { via: 'xpony', sealed: 'false', outcome: 'accepted' })).toBe(0);
  });

  it('counts deliveries per mode and outcome, and bytes of delivered mail only', async () => {
    const metrics = createMetrics();
    metrics.delivery({ mode: 'xpony', outcome: 'delivered', bytes: 1000 });
    metrics.delivery({ mode: 'xpony', outcome: 'delivered', bytes: 234 });
    metrics.delivery({ mode: 'starttls', outcome: 'deferred', bytes: 5000 });
    metrics.delivery({ mode: 'none', outcome: 'deferred', bytes: 70 });
    const samples = await scrape(metrics);
    expect(sampleValue(samples, 'blackpony_deliveries_total', { mode: 'xpony', outcome: 'delivered' })).toBe(2);
    expect(sampleValue(samples, 'blackpony_deliveries_total', { mode: 'starttls', outcome: 'deferred' })).toBe(1);
    expect(sampleValue(samples, 'blackpony_deliveries_total', { mode: 'none', outcome: 'deferred' })).toBe(1);
    expect(sampleValue(samples, 'blackpony_delivery_bytes_total', { mode: 'xpony' })).toBe(1234);
    expect(sampleValue(samples, 'blackpony_delivery_bytes_total', { mode: 'starttls' })).toBe(0);
    expect(samples.filter((sample) => sample.name === 'blackpony_delivery_bytes_total' && sample.labels.mode === 'none')).toEqual([]);
  });

  it('puts handshake durations into buckets from half a millisecond to 5 seconds', async () => {
    const metrics = createMetrics();
    metrics.handshake({ side: 'server', outcome: 'tunnel', seconds: 0.0004 });
    metrics.handshake({ side: 'server', outcome: 'tunnel', seconds: 0.003 });
    metrics.handshake({ side: 'client', outcome: 'failed', seconds: 7 });
    const samples = await scrape(metrics);
    const server = { side: 'server', outcome: 'tunnel' };
    expect(sampleValue(samples, 'blackpony_handshake_seconds_count', server)).toBe(2);
    expect(sampleValue(samples, 'blackpony_handshake_seconds_sum', server)).toBeCloseTo(0.0034, 10);
    expect(sampleValue(samples, 'blackpony_handshake_seconds_bucket', { ...server, le: '0.0005' })).toBe(1);
    expect(sampleValue(samples, 'blackpony_handshake_seconds_bucket', { ...server, le: '0.0025' })).toBe(1);
    expect(sampleValue(samples, 'blackpony_handshake_seconds_bucket', { ...server, le: '0.005' })).toBe(2);
    const client = { side: 'client', outcome: 'failed' };
    expect(sampleValue(samples, 'blackpony_handshake_seconds_bucket', { ...client, le: '5' })).toBe(0);
    expect(sampleValue(samples, 'blackpony_handshake_seconds_bucket', { ...client, le: '+Inf' })).toBe(1);
  });

  it('counts policy deferrals by reason and testing failures', async () => {
    const metrics = createMetrics();
    metrics.policyDeferral('key-mismatch');
    metrics.policyDeferral('key-mismatch');
    metrics.policyDeferral('downgrade');
    metrics.testingFailure();
    const samples = await scrape(metrics);
    expect(sampleValue(samples, 'blackpony_policy_deferrals_total', { reason: 'key-mismatch' })).toBe(2);
    expect(sampleValue(samples, 'blackpony_policy_deferrals_total', { reason: 'downgrade' })).toBe(1);
    expect(sampleValue(samples, 'blackpony_policy_deferrals_total', { reason: 'enforce' })).toBe(0);
    expect(sampleValue(samples, 'blackpony_testing_failures_total')).toBe(1);
  });

  it('counts sealed relays by outcome, each series from 0', async () => {
    const metrics = createMetrics();
    metrics.sealedRelay('delivered');
    const samples = await scrape(metrics);
    expect(sampleValue(samples, 'blackpony_sealed_relays_total', { outcome: 'delivered' })).toBe(1);
    expect(sampleValue(samples, 'blackpony_sealed_relays_total', { outcome: 'deferred' })).toBe(0);
  });

  it('counts failures to use Postfix by kind', async () => {
    const metrics = createMetrics();
    metrics.postfixFailure('connect');
    metrics.postfixFailure('connect');
    metrics.postfixFailure('refused');
    const samples = await scrape(metrics);
    expect(sampleValue(samples, 'blackpony_postfix_failures_total', { kind: 'connect' })).toBe(2);
    expect(sampleValue(samples, 'blackpony_postfix_failures_total', { kind: 'refused' })).toBe(1);
    expect(sampleValue(samples, 'blackpony_postfix_failures_total', { kind: 'timeout' })).toBe(0);
  });

  it('keeps two instances apart, and out of prom-client global registry', async () => {
    const first = createMetrics();
    const second = createMetrics();
    first.sessionOpened('outbound');
    first.testingFailure();
    expect(sampleValue(await scrape(first), 'blackpony_sessions_total', { side: 'outbound' })).toBe(1);
    expect(sampleValue(await scrape(second), 'blackpony_sessions_total', { side: 'outbound' })).toBe(0);
    expect(sampleValue(await scrape(second), 'blackpony_testing_failures_total')).toBe(0);
    expect(await globalRegistry.metrics()).not.toContain('blackpony_');
  });

  // Checked by tsc (npm test type-checks the tests): a typo in a label value does not compile.
  it('types every label as its set of values', () => {
    const metrics = createMetrics();
    expectTypeOf(metrics.sessionOpened).parameter(0).toEqualTypeOf<'inbound' | 'outbound'>();
    expectTypeOf(metrics.inboundMessage)
      .parameter(0)
      .toEqualTypeOf<{ via: 'xpony' | 'starttls' | 'plain'; sealed: boolean; outcome: 'accepted' | 'rejected' | 'deferred'; retry: boolean }>();
    expectTypeOf(metrics.delivery)
      .parameter(0)
      .toEqualTypeOf<{ mode: 'xpony' | 'starttls' | 'plain' | 'none'; outcome: 'delivered' | 'deferred' | 'bounced'; bytes: number }>();
    expectTypeOf(metrics.handshake).parameter(0).toEqualTypeOf<{ side: 'client' | 'server'; outcome: 'tunnel' | 'failed'; seconds: number }>();
    expectTypeOf(metrics.policyDeferral).parameter(0).toEqualTypeOf<'enforce' | 'downgrade' | 'key-mismatch' | 'pin-store' | 'dns' | 'mta-sts'>();
  });
});

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(address: string, path: string, options: { method?: string; agent?: Agent } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(
      `http://${address}${path}`,
      { method: options.method ?? 'GET', ...(options.agent === undefined ? {} : { agent: options.agent }) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('metrics server', () => {
  const servers: MetricsServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  async function start(metrics: Metrics, host = '127.0.0.1'): Promise<MetricsServer> {
    const server = await serveMetrics(metrics, { host, port: 0 });
    servers.push(server);
    return server;
  }

  it('answers GET /metrics with the registry text and its content type', async () => {
    const metrics = createMetrics();
    const server = await start(metrics);
    expect(server.address).toMatch(/^127\.0\.0\.1:[0-9]+$/);
    metrics.delivery({ mode: 'plain', outcome: 'bounced', bytes: 10 });
    const response = await get(server.address, '/metrics?name[]=ignored');
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe(metrics.registry.contentType);
    expect(sampleValue(parseSamples(response.body), 'blackpony_deliveries_total', { mode: 'plain', outcome: 'bounced' })).toBe(1);
    metrics.delivery({ mode: 'plain', outcome: 'bounced', bytes: 10 });
    expect(sampleValue(parseSamples((await get(server.address, '/metrics')).body), 'blackpony_deliveries_total', { mode: 'plain', outcome: 'bounced' })).toBe(
      2,
    );
  });

  it('answers 404 for other paths and 405 for other methods', async () => {
    const server = await start(createMetrics());
    for (const path of ['/', '/metrics/', '/metricsx', '/..%2fmetrics']) {
      const response = await get(server.address, path);
      expect(response.status, path).toBe(404);
      expect(response.body).not.toContain('blackpony_');
    }
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const response = await get(server.address, '/metrics', { method });
      expect(response.status, method).toBe(405);
      expect(response.headers.allow).toBe('GET, HEAD');
      expect(response.body).not.toContain('blackpony_');
    }
  });

  it('answers HEAD /metrics without a body', async () => {
    const server = await start(createMetrics());
    const response = await get(server.address, '/metrics', { method: 'HEAD' });
    expect(response.status).toBe(200);
    expect(response.body).toBe('');
  });

  it('answers 500 naming the cause when collecting fails', async () => {
    const metrics = createMetrics();
    new Gauge({
      name: 'blackpony_broken',
      help: 'fails to collect',
      registers: [metrics.registry],
      collect: () => {
        throw new Error('collector broke');
      },
    });
    const server = await start(metrics);
    const response = await get(server.address, '/metrics');
    expect(response.status).toBe(500);
    expect(response.body).toContain('collector broke');
  });

  it('serves on localhost and [::1]', async () => {
    for (const host of ['localhost', '::1']) {
      const server = await start(createMetrics(), host);
      expect((await get(server.address, '/metrics')).status, host).toBe(200);
    }
  });

  it('refuses a host that is not loopback, naming the address and why', async () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.7', '::ffff:192.0.2.7', '2001:db8::1', '128.0.0.1']) {
      const attempt = serveMetrics(createMetrics(), { host, port: 0 });
      await expect(attempt, host).rejects.toThrow(MetricsServerError);
      await expect(attempt, host).rejects.toThrow(/is not a loopback address.*metrics reveal who this host exchanges mail with/);
      await expect(attempt, host).rejects.toThrow(host.includes(':') ? `[${host}]:0` : `${host}:0`);
    }
  });

  it('names the address when the port is taken', async () => {
    const taken = await listenOn(0);
    const port = (taken.address() as { port: number }).port;
    try {
      await expect(serveMetrics(createMetrics(), { host: '127.0.0.1', port })).rejects.toThrow(
        new RegExp(`^metrics\\.listen: 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`),
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('closes with an idle keep-alive connection and a half-sent request open, and frees the port', async () => {
    const server = await serveMetrics(createMetrics(), { host: '127.0.0.1', port: 0 });
    const agent = new Agent({ keepAlive: true });
    try {
      expect((await get(server.address, '/metrics', { agent })).status).toBe(200);
      const [idle] = Object.values(agent.freeSockets).flat();
      const idleClosed = new Promise((resolve) => idle!.once('close', resolve));
      const halfSent = connect(portOf(server.address), '127.0.0.1');
      await once(halfSent, 'connect');
      halfSent.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      halfSent.on('error', () => undefined); // the server resets it: expected
      const halfSentClosed = new Promise((resolve) => halfSent.once('close', resolve));
      await server.close();
      await Promise.all([idleClosed, halfSentClosed]);
      const again = await listenOn(portOf(server.address));
      await new Promise((resolve) => again.close(resolve));
    } finally {
      agent.destroy();
    }
  });
});
