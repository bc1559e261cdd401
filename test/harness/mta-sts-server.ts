/**
 * An MTA-STS policy server on loopback: Node's HTTPS server presenting one certificate (from the
 * test CA, naming each mta-sts.<domain> it serves) and answering `GET /.well-known/mta-sts.txt`
 * with the policy text of the domain in the Host header, as text/plain; anything else is a 404.
 * The sender reaches it through MtaStsOptions.httpsPort and trusts the CA through trustedCa.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { POLICY_PATH } from '../../src/outbound/mta-sts-fetch.js';
import type { Certificate } from './certificates.js';

export interface MtaStsServer {
  port: number;
  /** Host headers of the requests answered, in order: whether a sender asked. */
  requests: string[];
  close(): Promise<void>;
}

/** `policies`: domain -> policy file text; read at each request, so a test may change it. */
export async function startMtaStsServer(certificate: Certificate, policies: Readonly<Record<string, string>>): Promise<MtaStsServer> {
  const requests: string[] = [];
  const server: Server = createServer({ key: certificate.key, cert: certificate.cert }, (request, response) => {
    const domain = (request.headers.host ?? '').replace(/^mta-sts\.|:\d+$/g, '');
    requests.push(domain);
    const text = policies[domain];
    if (request.url !== POLICY_PATH || text === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
