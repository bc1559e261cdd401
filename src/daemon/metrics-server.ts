/**
 * Serves the metrics to Prometheus over HTTP: GET /metrics, nothing else. It binds loopback only,
 * checked again here whatever the configuration said, as the counters reveal who this host
 * exchanges mail with; a scraper elsewhere reaches it through a proxy or tunnel of its choosing.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { BlockList, type AddressInfo } from 'node:net';
import { lookup } from 'node:dns/promises';
import { formatHostPort, type HostPort } from './config-values.js';
import type { Registry } from 'prom-client';
import { errorMessage } from '../error-message.js';

export class MetricsServerError extends Error {
  override readonly name = 'MetricsServerError';
}

export interface MetricsServer {
  /** Where it listens, as `HOST:PORT`. */
  readonly address: string;
  /** Stops listening and drops open connections, keep-alive ones included. */
  close(): Promise<void>;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

function isLoopback(ip: string, family: number): boolean {
  return LOOPBACK.check(ip, family === 6 ? 'ipv6' : 'ipv4');
}

/** The loopback address to bind for `host` (a name is resolved first, so it cannot point elsewhere). */
async function loopbackAddress(target: HostPort): Promise<{ address: string; family: number }> {
  const where = `metrics.listen: ${formatHostPort(target)}`;
  let resolved: { address: string; family: number };
  try {
    resolved = await lookup(target.host);
  } catch (error) {
    throw new MetricsServerError(`${where}: cannot resolve ${JSON.stringify(target.host)}: ${errorMessage(error)}`);
  }
  if (!isLoopback(resolved.address, resolved.family)) {
    throw new MetricsServerError(
      `${where}: ${resolved.address} is not a loopback address; refusing to serve metrics there, as metrics reveal who this host exchanges mail with`,
    );
  }
  return resolved;
}

async function answer(metrics: MetricsSource, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '').split('?', 1)[0];
  if (path !== '/metrics') {
    response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: metrics are at /metrics\n');
    return;
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end(`method ${request.method} not allowed: use GET\n`);
    return;
  }
  try {
    const text = await metrics.registry.metrics();
    response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text);
  } catch (error) {
    response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`collecting metrics failed: ${errorMessage(error)}\n`);
  }
}

/** What is served: a daemon's Metrics, or the sum of the workers' (workers.ts). */
export interface MetricsSource {
  readonly registry: Pick<Registry, 'metrics' | 'contentType'>;
}

/** Serves `metrics` on `target` (port 0: any free port); throws MetricsServerError if it cannot. */
export async function serveMetrics(metrics: MetricsSource, target: HostPort): Promise<MetricsServer> {
  const { address } = await loopbackAddress(target);
  const server = createServer((request, response) => void answer(metrics, request, response));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(target.port, address, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    throw new MetricsServerError(`metrics.listen: ${formatHostPort(target)}: ${errorMessage(error)}`);
  }
  const bound = server.address() as AddressInfo;
  return {
    address: formatHostPort({ host: bound.address, port: bound.port }),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
