/**
 * A mail site as deployed: a real Postfix with deploy/postfix's inbound and LMTP outbound
 * snippets, and `blackpony run` as a child process in front of it (inbound) and behind it
 * (outbound), so a test can SIGKILL either blackpony side and start it again.
 */
import type { PonyPolicy } from '../../src/crypto/pony-record.js';
import { freePort } from '../harness/ports.js';
import { startPostfix, type PostfixInstance } from '../harness/postfix.js';
import { mainCfSnippet, masterCfSnippet, startPostfixBehind, type PostfixBehind } from '../integration/inbound-fixtures.js';
import { ponyRecordFor } from '../integration/outbound-fixtures.js';
import { startDaemon, type Daemon, type DaemonOptions } from './daemon.js';
import { loadScaled } from '../harness/wait.js';

const SNIPPET_OUTBOUND = '127.0.0.1]:10587';
/** outbound.command_timeout_seconds of a site's blackpony. */
export const COMMAND_TIMEOUT_SECONDS = Math.ceil(loadScaled(5_000) / 1_000);

export interface DaemonSiteOptions {
  domain: string;
  /** Where its inbound side listens (its MX, or behind a man in the middle). */
  inbound: { host: string; port: number };
  mxPort: number;
  dnsPort: number;
  mailboxes: readonly string[];
  /** outbound.tunnel_idle_seconds; default 0, so that each delivery meets a fault on a connection of its own. */
  tunnelIdleSeconds?: number;
  /** Its worker processes; default 1. */
  workers?: number;
  /** Postfix parameters beyond the deploy snippets (e.g. a larger message_size_limit). */
  mainCf?: Record<string, string>;
}

export interface DaemonSite {
  domain: string;
  postfix: PostfixInstance;
  daemon: Daemon;
  mailboxes: readonly string[];
  record(policy: PonyPolicy): string;
  stop(): Promise<void>;
}

export async function startDaemonSite(options: DaemonSiteOptions): Promise<DaemonSite> {
  const hostName = `mx.${options.domain}`;
  const [listenerPort, outboundPort] = [await freePort(), await freePort()];
  const outbound = mainCfSnippet('outbound-lmtp.cf');
  const transport = outbound.default_transport ?? '';
  if (!transport.endsWith(SNIPPET_OUTBOUND))
    throw new Error(`deploy/postfix/outbound-lmtp.cf: expected default_transport to end in ${SNIPPET_OUTBOUND}, got ${transport}`);
  const postfix = await startPostfix({
    hostname: hostName,
    mailboxes: options.mailboxes,
    mainCf: { ...mainCfSnippet(), ...outbound, default_transport: transport.replace(SNIPPET_OUTBOUND, `127.0.0.1]:${outboundPort}`), ...options.mainCf },
    masterCf: [masterCfSnippet(listenerPort)],
  });
  const daemon = await startDaemon({
    hostName,
    ...(options.workers === undefined ? {} : { workers: options.workers }),
    inbound: { listen: `${options.inbound.host}:${options.inbound.port}`, postfixPort: listenerPort, dnsPort: options.dnsPort },
    // Short timeouts, so that remotes slower than them are met within a test's time.
    outbound: {
      port: outboundPort,
      dnsPort: options.dnsPort,
      mxPort: options.mxPort,
      connectTimeoutSeconds: Math.ceil(loadScaled(2_000) / 1_000),
      commandTimeoutSeconds: COMMAND_TIMEOUT_SECONDS,
      tunnelIdleSeconds: options.tunnelIdleSeconds ?? 0,
    },
  });
  return {
    domain: options.domain,
    postfix,
    daemon,
    mailboxes: options.mailboxes,
    record(policy) {
      return ponyRecordFor(daemon.keys, policy);
    },
    async stop() {
      await daemon.stop();
      await postfix.stop();
    },
  };
}

/** `blackpony run`, inbound only, on 127.0.0.1:`port` in front of a Postfix with the deploy snippet's listener. */
export interface InboundDaemon {
  behind: PostfixBehind;
  daemon: Daemon;
  port: number;
  stop(): Promise<void>;
}

export async function startInboundDaemon(
  hostName: string,
  inbound: Omit<NonNullable<DaemonOptions['inbound']>, 'listen' | 'postfixPort'> = {},
  workers?: number,
): Promise<InboundDaemon> {
  const behind = await startPostfixBehind();
  const port = await freePort();
  let daemon: Daemon;
  try {
    daemon = await startDaemon({
      hostName,
      ...(workers === undefined ? {} : { workers }),
      inbound: { listen: `127.0.0.1:${port}`, postfixPort: behind.listenerPort, ...inbound },
    });
  } catch (error) {
    await behind.postfix.stop();
    throw error;
  }
  return {
    behind,
    daemon,
    port,
    async stop() {
      await daemon.stop();
      await behind.postfix.stop();
    },
  };
}
