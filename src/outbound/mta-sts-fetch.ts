/**
 * Fetching an MTA-STS policy file (RFC 8461 section 3.3): `GET /.well-known/mta-sts.txt` from
 * `mta-sts.<domain>` over HTTPS, the certificate PKIX-validated for that name. Every deviation is
 * a failure, never a hint to follow: a redirect, any status but 200, a Content-Type other than
 * text/plain, a body over 64 KiB, a fetch taking longer than the timeout as a whole (lookup,
 * connect, TLS, headers and body together; a server dribbling bytes does not extend it).
 *
 * The host name is resolved through the injected DnsResolver, like every other outbound lookup,
 * never through the system resolver.
 */
import { request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { rootCertificates } from 'node:tls';
import { dnsFailure, type DnsResolver } from '../dns.js';
import { MtaStsError, quoted } from './mta-sts-policy.js';

export const POLICY_PATH = '/.well-known/mta-sts.txt';
/** RFC 8461 section 3.2: policy files are at most 64 KiB. */
export const MAX_POLICY_BYTES = 64 * 1024;
export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;
const HTTPS_PORT = 443;

export interface PolicyFetchOptions {
  resolver: DnsResolver;
  /** Trust anchors (PEM) accepted beside Node's built-in roots, e.g. a private CA. */
  trustedCa?: readonly (string | Buffer)[];
  /** Tests only: the port of the policy server (default 443). */
  httpsPort?: number;
  /** For the whole fetch (default DEFAULT_FETCH_TIMEOUT_MS). */
  timeoutMs?: number;
}

/** The policy file's text; rejects with MtaStsError naming the URL and what went wrong. */
export function fetchPolicyText(domain: string, options: PolicyFetchOptions): Promise<string> {
  const host = `mta-sts.${domain}`;
  const port = options.httpsPort ?? HTTPS_PORT;
  const url = `https://${host}${port === HTTPS_PORT ? '' : `:${port}`}${POLICY_PATH}`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  const failure = (reason: string): MtaStsError => new MtaStsError(domain, `${url}: ${reason}`);

  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (outcome: { text: string } | { error: MtaStsError }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if ('text' in outcome) {
        resolve(outcome.text);
      } else {
        outgoing.destroy();
        reject(outcome.error);
      }
    };
    const fail = (reason: string): void => finish({ error: failure(reason) });
    const failWith = (error: Error): void => fail(describeError(error));

    const outgoing = request({
      host,
      port,
      path: POLICY_PATH,
      method: 'GET',
      servername: host,
      ca: [...rootCertificates, ...(options.trustedCa ?? [])],
      minVersion: 'TLSv1.2',
      lookup: resolverLookup(options.resolver),
      agent: false,
      headers: { accept: 'text/plain' },
    });
    const timer = setTimeout(() => fail(`no complete answer within ${timeoutMs} ms`), timeoutMs);
    outgoing.on('error', failWith);
    outgoing.on('response', (response: IncomingMessage) => {
      response.on('error', failWith);
      const problem = responseProblem(response);
      if (problem !== null) {
        fail(problem);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_POLICY_BYTES) fail(`body larger than ${MAX_POLICY_BYTES} bytes`);
        else chunks.push(chunk);
      });
      response.on('end', () => {
        try {
          finish({ text: new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)) });
        } catch {
          fail('body is not UTF-8');
        }
      });
      response.on('close', () => fail('connection closed before the end of the body'));
    });
    outgoing.end();
  });
}

/** Why a response's head rules it out, or null. */
function responseProblem(response: IncomingMessage): string | null {
  const status = response.statusCode ?? 0;
  if (status >= 300 && status < 400) return `redirect (HTTP ${status}) not followed`;
  if (status !== 200) return `HTTP ${status} (expected 200)`;
  const type = response.headers['content-type'];
  if (type === undefined) return 'no Content-Type (expected text/plain)';
  if (type.split(';', 1)[0]!.trim().toLowerCase() !== 'text/plain') return `Content-Type ${quoted(type)} (expected text/plain)`;
  const length = Number(response.headers['content-length'] ?? 0);
  if (length > MAX_POLICY_BYTES) return `body of ${length} bytes announced (limit ${MAX_POLICY_BYTES})`;
  return null;
}

function describeError(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === undefined || error.message.includes(code) ? error.message : `${error.message} (${code})`;
}

/** A net/tls `lookup` that asks `resolver` for A and AAAA records instead of the system resolver. */
function resolverLookup(resolver: DnsResolver): LookupFunction {
  return (hostname, options, callback) => {
    resolveAddresses(resolver, hostname, options.family).then(
      (addresses) => (options.all ? callback(null, addresses) : callback(null, addresses[0]!.address, addresses[0]!.family)),
      (error: NodeJS.ErrnoException) => callback(error, ''),
    );
  };
}

async function resolveAddresses(resolver: DnsResolver, hostname: string, family: number | string | undefined): Promise<LookupAddress[]> {
  const queries = [
    { family: 4, type: 'A', query: () => resolver.resolve4(hostname) },
    { family: 6, type: 'AAAA', query: () => resolver.resolve6(hostname) },
  ].filter((q) => family === undefined || family === 0 || family === q.family || family === `IPv${q.family}`);
  const answers = await Promise.allSettled(queries.map((q) => q.query()));
  const addresses = answers.flatMap((answer, index) =>
    answer.status === 'fulfilled' ? answer.value.map((address) => ({ address, family: queries[index]!.family })) : [],
  );
  if (addresses.length > 0) return addresses;
  const why = answers.map((answer, index) =>
    answer.status === 'rejected' ? dnsFailure(`${queries[index]!.type} ${hostname}`, answer.reason).detail : `${queries[index]!.type} ${hostname}: no records`,
  );
  return Promise.reject(Object.assign(new Error(`no address for ${hostname} (${why.join('; ')})`), { code: 'ENOTFOUND' }));
}
