/**
 * `blackpony demo`: two blackpony hosts and one legacy MX on loopback, each with a Maildir behind
 * it, and three messages sent as Postfix would hand them over. Nothing outside the process is
 * needed: no Postfix (maildir-receiver.ts stands in), no DNS (static routes, offline-resolver.ts),
 * no root (ports chosen by the system).
 *
 *   alpha.demo: outbound -> XPONY tunnel, sealed -> beta.demo inbound -> beta's Maildir
 *   beta.demo:  outbound -> XPONY tunnel, sealed -> alpha.demo inbound -> alpha's Maildir
 *   alpha.demo: outbound -> SMTP (+ STARTTLS when openssl made a certificate) -> legacy.demo's Maildir
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fingerprint } from '../crypto/fingerprint.js';
import { generateKeys, type Keys } from '../crypto/keyfile.js';
import { createInboundServer } from '../inbound/inbound-server.js';
import { rfc5322Date, TRACE_FIELD_NAME } from '../inbound/trace-header.js';
import type { Logger } from '../log.js';
import { createOutboundServer } from '../outbound/outbound-server.js';
import { openPinStore } from '../outbound/pins.js';
import { RecordCache } from '../outbound/record-cache.js';
import type { DeliveryRecord } from '../outbound/transaction.js';
import { formatReply, SmtpClient, type SmtpReply } from '../smtp/index.js';
import { startMaildirReceiver, type DeliveredFile, type MaildirReceiver } from './maildir-receiver.js';
import { OFFLINE_RESOLVER } from './offline-resolver.js';
import { selfSignedCertificate } from './self-signed-certificate.js';

const LOOPBACK = '127.0.0.1';
const CONNECT_TIMEOUT_MS = 5_000;
const COMMAND_TIMEOUT_MS = 30_000;

export interface DemoOptions {
  /** Where the Maildirs go; kept afterwards. */
  dir: string;
  logger: Logger;
}

export interface DemoSite {
  domain: string;
  /** Where its MX listens (the inbound side, or the legacy server itself). */
  mx: string;
  maildir: string;
}

export interface DemoNode extends DemoSite {
  fingerprint: string;
  /** Where "Postfix" hands it outgoing mail (SMTP). */
  outbound: string;
  /** Its pinned peer keys: in a temporary folder removed at stop, as the keys live only as long as the demo. */
  stateDir: string;
}

export interface DemoLegacy extends DemoSite {
  /** Whether it offers STARTTLS, or why not. */
  starttls: true | string;
}

export interface DemoMessage {
  from: string;
  to: string;
  /** The final reply of the sending node's outbound side, as "Postfix" saw it. */
  reply: string;
  delivered: boolean;
  /** Octets handed to the outbound side. */
  sentBytes: number;
  /** The sending node's account of the delivery. */
  record?: DeliveryRecord;
  file?: DeliveredFile;
  /** The X-Pony-Trace field of the delivered file, unfolded; absent behind a legacy MX. */
  trace?: string;
  /** From connecting to the outbound side to its final reply. */
  durationMs: number;
}

export interface Demo {
  dir: string;
  nodes: [DemoNode, DemoNode];
  legacy: DemoLegacy;
  /** Sends the three sample messages, one after the other. */
  sendSamples(): Promise<DemoMessage[]>;
  stop(): Promise<void>;
}

interface RunningNode {
  site: DemoNode;
  keys: Keys;
  receiver: MaildirReceiver;
  /** What its outbound side reported, one record per delivery. */
  deliveries: DeliveryRecord[];
}

const where = (port: number): string => `${LOOPBACK}:${port}`;

export async function startDemo(options: DemoOptions): Promise<Demo> {
  const stops: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(stops.splice(0).map((close) => close()));
  };
  try {
    // Each run has new keys, so the pins and the legacy MX's private key die with it: a second run
    // in the same --dir must not meet the first run's pins.
    const ephemeral = await mkdtemp(join(tmpdir(), 'blackpony-demo-state-'));
    stops.push(() => rm(ephemeral, { recursive: true, force: true }));
    const alpha = await startNode('alpha.demo', options.dir, ephemeral, stops);
    const beta = await startNode('beta.demo', options.dir, ephemeral, stops);
    const legacy = await startLegacy(options.dir, ephemeral, stops);
    // As in a Postfix transport map: [HOST]:PORT, no MX lookup.
    const routes = Object.fromEntries([alpha.site, beta.site, legacy.site].map((site) => [site.domain, `[${LOOPBACK}]:${port(site.mx)}`]));
    for (const node of [alpha, beta]) await startOutbound(node, routes, options.logger, stops);
    const receivers = new Map([alpha, beta, legacy].map((site) => [site.site.domain, site.receiver]));
    const send = (node: RunningNode, from: string, to: string, subject: string, body: string): Promise<DemoMessage> =>
      sendSample({ node, from, to, subject, body, receiver: receivers.get(to.slice(to.indexOf('@') + 1))! });
    return {
      dir: options.dir,
      nodes: [alpha.site, beta.site],
      legacy: legacy.site,
      async sendSamples() {
        return [
          await send(alpha, 'alice@alpha.demo', 'bob@beta.demo', 'Hello Bob', 'Hello Bob, this message travelled in a Noise tunnel, sealed to your age key.'),
          await send(beta, 'bob@beta.demo', 'alice@alpha.demo', 'Re: Hello Bob', 'Hello Alice, and this one came back the same way.'),
          await send(
            alpha,
            'alice@alpha.demo',
            'carol@legacy.demo',
            'Hello Carol',
            'Hello Carol, your server speaks no XPONY, so this one went the ordinary way.',
          ),
        ];
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

function port(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** A blackpony host's receiving half: its Maildir store ("Postfix") and the inbound side in front of it. */
async function startNode(domain: string, dir: string, ephemeral: string, stops: (() => Promise<void>)[]): Promise<RunningNode> {
  const hostName = `mx.${domain}`;
  const keys = generateKeys();
  const maildir = join(dir, domain, 'Maildir');
  const receiver = await startMaildirReceiver({ domain, hostName, maildir, xclient: true });
  stops.push(() => receiver.close());
  const inbound = createInboundServer({ keys, hostName, postfix: { host: LOOPBACK, port: receiver.port, timeoutMs: COMMAND_TIMEOUT_MS } });
  const listening = await inbound.listen(0, LOOPBACK);
  stops.push(() => inbound.close());
  const site: DemoNode = {
    domain,
    mx: where(listening.port),
    maildir,
    fingerprint: fingerprint(keys.noise.publicKey),
    outbound: '',
    stateDir: join(ephemeral, domain, 'state'),
  };
  return { site, keys, receiver, deliveries: [] };
}

/** A blackpony host's sending half: the outbound side "Postfix" relays through, routed statically. */
async function startOutbound(node: RunningNode, routes: Record<string, string>, logger: Logger, stops: (() => Promise<void>)[]): Promise<void> {
  const hostName = `mx.${node.site.domain}`;
  const outbound = createOutboundServer({
    hostName,
    lmtp: false,
    sessionIdleMs: 0,
    logger: logger.child({ node: node.site.domain }),
    onDelivery: (record) => node.deliveries.push(record),
    dial: {
      keys: node.keys,
      hostName,
      routing: { resolver: OFFLINE_RESOLVER, routes },
      policy: { resolver: OFFLINE_RESOLVER, pins: await openPinStore(node.site.stateDir), recordCache: new RecordCache() },
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
    },
  });
  const listening = await outbound.listen(0, LOOPBACK);
  stops.push(() => outbound.close());
  node.site.outbound = where(listening.port);
}

/** The legacy MX: a plain mail store, with STARTTLS when a certificate could be made. */
async function startLegacy(dir: string, ephemeral: string, stops: (() => Promise<void>)[]): Promise<{ site: DemoLegacy; receiver: MaildirReceiver }> {
  const domain = 'legacy.demo';
  const hostName = `mx.${domain}`;
  const certificate = await selfSignedCertificate(join(ephemeral, domain), hostName);
  const maildir = join(dir, domain, 'Maildir');
  const receiver = await startMaildirReceiver({
    domain,
    hostName,
    maildir,
    xclient: false,
    ...(certificate.kind === 'certificate' ? { tls: { key: certificate.key, cert: certificate.cert } } : {}),
  });
  stops.push(() => receiver.close());
  return { site: { domain, mx: where(receiver.port), maildir, starttls: certificate.kind === 'certificate' ? true : certificate.reason }, receiver };
}

function sampleMessage(from: string, to: string, subject: string, body: string): Buffer {
  const domain = from.slice(from.indexOf('@') + 1);
  const headers = [
    `From: <${from}>`,
    `To: <${to}>`,
    `Subject: ${subject}`,
    `Date: ${rfc5322Date(new Date())}`,
    `Message-ID: <${randomBytes(8).toString('hex')}@${domain}>`,
  ];
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body}\r\n`, 'utf8');
}

interface Sample {
  node: RunningNode;
  receiver: MaildirReceiver;
  from: string;
  to: string;
  subject: string;
  body: string;
}

/** One message, handed to the node's outbound side as Postfix would: EHLO, MAIL, RCPT, DATA, QUIT. */
async function sendSample(sample: Sample): Promise<DemoMessage> {
  const message = sampleMessage(sample.from, sample.to, sample.subject, sample.body);
  const filesBefore = sample.receiver.delivered.length;
  const recordsBefore = sample.node.deliveries.length;
  const started = performance.now();
  const reply = await transaction(sample.node.site.outbound, sample.from, sample.to, message);
  const durationMs = Math.round(performance.now() - started);
  const file = sample.receiver.delivered[filesBefore];
  const record = sample.node.deliveries[recordsBefore];
  const trace = file === undefined ? undefined : traceField(await readFile(file.path, 'latin1'));
  return {
    from: sample.from,
    to: sample.to,
    reply: formatReply(reply),
    delivered: reply.code === 250 && file !== undefined,
    sentBytes: message.length,
    durationMs,
    ...(record === undefined ? {} : { record }),
    ...(file === undefined ? {} : { file }),
    ...(trace === undefined ? {} : { trace }),
  };
}

/** The reply that ended the transaction: the final one to DATA, or the first refusal. */
async function transaction(outbound: string, from: string, to: string, message: Buffer): Promise<SmtpReply> {
  const client = await SmtpClient.open({ host: LOOPBACK, port: port(outbound), timeoutMs: COMMAND_TIMEOUT_MS, label: 'outbound' });
  try {
    for (const [line, expected] of [
      ['EHLO demo-postfix', 250],
      [`MAIL FROM:<${from}>`, 250],
      [`RCPT TO:<${to}>`, 250],
      ['DATA', 354],
    ] as const) {
      const reply = await client.command(line);
      if (reply.code !== expected) return reply;
    }
    client.writeData(message);
    return await client.endData();
  } finally {
    client.quit();
  }
}

/** The X-Pony-Trace field in a stored message's header, unfolded to one line. */
function traceField(stored: string): string | undefined {
  const header = stored.split(/\r?\n\r?\n/, 1)[0]!.replace(/\r?\n[ \t]+/g, ' ');
  return header.split(/\r?\n/).find((line) => line.startsWith(`${TRACE_FIELD_NAME}:`));
}
