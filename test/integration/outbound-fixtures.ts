/**
 * Mail sites for the outbound tests, each a real Postfix on loopback:
 * - a blackpony site: Postfix behind blackpony's inbound side on its own loopback address (its
 *   MX), and Postfix's outgoing mail handed to blackpony's outbound side over LMTP or SMTP;
 * - a legacy site: Postfix alone on its loopback address, with STARTTLS.
 * Every MX listens on the same port (MX_PORT-like, chosen per test file) at a different
 * 127.0.0.N address, as port 25 would be on separate hosts.
 */
import { identityToRecipient } from '../../src/crypto/age/index.js';
import { generateKeys, type Keys } from '../../src/crypto/keyfile.js';
import { serializePonyRecord, type PonyPolicy } from '../../src/crypto/pony-record.js';
import { createInboundServer, type InboundServer, type InboundServerOptions } from '../../src/inbound/inbound-server.js';
import type { DnsResolver } from '../../src/dns.js';
import type { MtaStsCache } from '../../src/outbound/mta-sts.js';
import { createOutboundServer, type OutboundServer } from '../../src/outbound/outbound-server.js';
import { openPinStore, type PinStore } from '../../src/outbound/pins.js';
import { RecordCache } from '../../src/outbound/record-cache.js';
import type { DnsStub, ValidatingResolver } from '../../src/outbound/validated-dns.js';
import type { DeliveryRecord } from '../../src/outbound/transaction.js';
import { createLogger, type Logger } from '../../src/log.js';
import { selfSignedCertificate, type Certificate } from '../harness/certificates.js';
import { freePort, tcpPortFree } from '../harness/ports.js';
import { startPostfix, type PostfixInstance } from '../harness/postfix.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { mainCfSnippet, masterCfEntries, masterCfSnippet } from './inbound-fixtures.js';
import { loadScaled } from '../harness/wait.js';

/** A port free on every 127.0.0.N the tests use. */
export async function sharedMxPort(addresses: readonly string[]): Promise<number> {
  for (;;) {
    const port = await freePort();
    const free = await Promise.all(addresses.map((address) => tcpPortFree(address, port)));
    if (free.every(Boolean)) return port;
  }
}

export interface Outbound {
  server: OutboundServer;
  port: number;
  pins: PinStore;
  deliveries: DeliveryRecord[];
}

export interface SiteOptions {
  domain: string;
  /** The MX address, 127.0.0.N. */
  address: string;
  mxPort: number;
  resolver: () => DnsResolver;
  mailboxes: readonly string[];
  /** Over LMTP (default) or SMTP. */
  lmtp?: boolean;
  keys?: Keys;
  localPolicies?: Record<string, 'enforce' | 'testing'>;
  mtaSts?: MtaStsCache;
  trustedCa?: string[];
  /** The test DNS asked directly for TLSA (the DANE guard without a validating resolver). */
  directDns?: DnsStub;
  /** A DNSSEC-validating resolver whose AD bit makes a `_pony` record DNSSEC evidence (outbound.validating_resolver). */
  validating?: ValidatingResolver;
  /** The outbound side's logger (default: silent, or BLACKPONY_TEST_LOG's level on stderr). */
  logger?: Logger;
  /** A certificate the inbound side offers STARTTLS with; without one it offers none. */
  tls?: Certificate;
}

export interface BlackponySite {
  domain: string;
  keys: Keys;
  postfix: PostfixInstance;
  inbound: InboundServer;
  outbound: Outbound;
  /** Postfix's XCLIENT listener behind the inbound side. */
  listenerPort: number;
  /** Stops the inbound side (the MX goes away). */
  stopInbound(): Promise<void>;
  /**
   * Starts the inbound side again, at its MX address or elsewhere (behind a man in the middle),
   * with the site's keys or others (a key rotation), and other options of its inbound server.
   */
  startInbound(at?: { host: string; port: number }, keys?: Keys, options?: Partial<InboundServerOptions>): Promise<number>;
  /** The `_pony` record for this site's keys. */
  record(policy: PonyPolicy): string;
}

export async function startOutbound(options: SiteOptions & { keys: Keys; hostName: string; stateDir: string }): Promise<Outbound> {
  const pins = await openPinStore(options.stateDir);
  const deliveries: DeliveryRecord[] = [];
  const server = createOutboundServer({
    hostName: options.hostName,
    lmtp: options.lmtp ?? true,
    sessionIdleMs: 5_000,
    logger: options.logger ?? createLogger({ level: process.env.BLACKPONY_TEST_LOG ?? 'silent' }),
    onDelivery: (record) => deliveries.push(record),
    dial: {
      keys: options.keys,
      hostName: options.hostName,
      routing: { resolver: options.resolver(), mxPort: options.mxPort },
      policy: {
        resolver: options.resolver(),
        pins,
        recordCache: new RecordCache(),
        ...(options.localPolicies === undefined ? {} : { localPolicies: options.localPolicies }),
        ...(options.directDns === undefined ? {} : { directDns: options.directDns }),
        ...(options.validating === undefined ? {} : { validating: options.validating }),
      },
      ...(options.mtaSts === undefined ? {} : { mtaSts: options.mtaSts }),
      ...(options.trustedCa === undefined ? {} : { trustedCa: options.trustedCa }),
      connectTimeoutMs: loadScaled(3_000),
      commandTimeoutMs: loadScaled(10_000),
    },
  });
  const address = await server.listen(0, '127.0.0.1');
  return { server, port: address.port, pins, deliveries };
}

const SNIPPET_OUTBOUND = '127.0.0.1]:10587';

/** Postfix's outgoing mail goes to blackpony: deploy/postfix's outbound snippets, port substituted. */
function outboundSnippets(outbound: Outbound, lmtp: boolean): { mainCf: Record<string, string>; masterCf: string[] } {
  const parameters = mainCfSnippet(lmtp ? 'outbound-lmtp.cf' : 'outbound-smtp.cf');
  const transport = parameters.default_transport ?? '';
  if (!transport.endsWith(SNIPPET_OUTBOUND))
    throw new Error(`deploy/postfix outbound snippet: expected default_transport to end in ${SNIPPET_OUTBOUND}, got ${transport}`);
  parameters.default_transport = transport.replace(SNIPPET_OUTBOUND, `127.0.0.1]:${outbound.port}`);
  return { mainCf: parameters, masterCf: lmtp ? [] : [masterCfEntries('outbound-smtp-master.cf')] };
}

export async function startBlackponySite(options: SiteOptions): Promise<BlackponySite> {
  const keys = options.keys ?? generateKeys();
  const hostName = `mx.${options.domain}`;
  const stateDir = await makeTempDir(`site-${options.domain}`);
  const outbound = await startOutbound({ ...options, keys, hostName, stateDir });
  const listenerPort = await freePort();
  const snippets = outboundSnippets(outbound, options.lmtp ?? true);
  const postfix = await startPostfix({
    hostname: hostName,
    mailboxes: options.mailboxes,
    mainCf: { ...mainCfSnippet(), ...snippets.mainCf },
    masterCf: [masterCfSnippet(listenerPort), ...snippets.masterCf],
  });
  const makeInbound = (inboundKeys = keys, inboundOptions: Partial<InboundServerOptions> = {}): InboundServer =>
    createInboundServer({
      ...inboundOptions,
      keys: inboundKeys,
      hostName,
      postfix: { host: '127.0.0.1', port: listenerPort, timeoutMs: loadScaled(10_000) },
      ...(options.tls === undefined ? {} : { tls: { key: options.tls.key, cert: options.tls.cert } }),
    });
  let inbound = makeInbound();
  await inbound.listen(options.mxPort, options.address);
  return {
    domain: options.domain,
    keys,
    postfix,
    outbound,
    listenerPort,
    get inbound() {
      return inbound;
    },
    async stopInbound() {
      await inbound.close();
    },
    async startInbound(at = { host: options.address, port: options.mxPort }, inboundKeys = keys, inboundOptions = {}) {
      inbound = makeInbound(inboundKeys, inboundOptions);
      return (await inbound.listen(at.port, at.host)).port;
    },
    record(policy) {
      return ponyRecordFor(keys, policy);
    },
  };
}

/** The `_pony` record a site with `keys` publishes. */
export function ponyRecordFor(keys: Keys, policy: PonyPolicy): string {
  return serializePonyRecord({ noiseKeys: [keys.noise.publicKey], ageRecipient: identityToRecipient(keys.ageX25519Identity), policy, maxAge: 86_400 });
}

export interface LegacySite {
  domain: string;
  postfix: PostfixInstance;
}

/** A legacy site: STARTTLS with the given certificate (or a self-signed one for its MX name), or none. */
export async function startLegacySite(options: Omit<SiteOptions, 'resolver' | 'lmtp' | 'keys' | 'tls'> & { tls: boolean | Certificate }): Promise<LegacySite> {
  const dir = await makeTempDir(`legacy-${options.domain}`);
  const tls = options.tls === false ? undefined : options.tls === true ? await selfSignedCertificate(dir, 'mx', `mx.${options.domain}`) : options.tls;
  const postfix = await startPostfix({
    hostname: `mx.${options.domain}`,
    mailboxes: options.mailboxes,
    mainCf: {
      // An explicit master.cf address must be among inet_interfaces; 127.0.0.N is not an interface of its own.
      inet_interfaces: 'all',
      ...(tls === undefined ? {} : { smtpd_tls_cert_file: tls.certFile, smtpd_tls_key_file: tls.keyFile, smtpd_tls_security_level: 'may' }),
    },
    masterCf: [`${options.address}:${options.mxPort} inet n - n - - smtpd`],
  });
  return { domain: options.domain, postfix };
}
