/**
 * `blackpony run` as a child process (the built CLI), so the adversity tests can measure its
 * memory, kill it with SIGKILL and start it again with the same configuration and state.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeys, writeKeyFile, type Keys } from '../../src/crypto/keyfile.js';
import { PROJECT_ROOT } from '../harness/cli.js';
import { deployedEnvironment } from '../harness/deployed-node-options.js';
import { startProcess, type ManagedProcess } from '../harness/processes.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { loadScaled, waitFor } from '../harness/wait.js';

const CLI = join(PROJECT_ROOT, 'bin/blackpony.js');

export interface DaemonOptions {
  hostName: string;
  /** Worker processes (the `workers` setting); default 1: limits, logs and kills are about one process. */
  workers?: number;
  keys?: Keys;
  /**
   * The inbound side: where it listens and the Postfix listener behind it; absent: off. Clients
   * are named through the test DNS on `dnsPort`; without one, not at all (never the machine's DNS).
   */
  inbound?: {
    listen: string;
    postfixPort: number;
    /** Default 127.0.0.1. */
    postfixHost?: string;
    dnsPort?: number;
    maxClients?: number;
    idleSeconds?: number;
    limits?: Record<string, unknown>;
    /** inbound.tls: STARTTLS offered with this certificate; absent: none. */
    tls?: { cert: string; key: string };
    /** inbound.client_identity and inbound.source_address; default xclient from the system's choice. */
    clientIdentity?: 'xclient' | 'proxy' | 'none';
    sourceAddress?: string;
  };
  /** The outbound side: where Postfix hands it mail, and how it finds next hops; absent: off. */
  outbound?: {
    port: number;
    /** What Postfix (or sendmail) speaks to it; default lmtp. */
    protocol?: 'lmtp' | 'smtp';
    dnsPort: number;
    mxPort: number;
    connectTimeoutSeconds?: number;
    commandTimeoutSeconds?: number;
    tunnelIdleSeconds?: number;
    /** A DNSSEC-validating resolver on 127.0.0.1 (outbound.validating_resolver); absent: none. */
    validatingPort?: number;
    /** Where the transport lookup (socketmap) listens on 127.0.0.1; absent: off. */
    transportLookupPort?: number;
  };
}

export interface Daemon {
  keys: Keys;
  process: ManagedProcess;
  /** SIGKILL, no goodbye; resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts it again with the same configuration, keys and state directory. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Its JSON log lines, optionally only those whose `msg` starts with `prefix`, across restarts. */
  log(prefix?: string): Array<Record<string, unknown>>;
}

function configText(options: DaemonOptions, keysPath: string): string {
  const { inbound, outbound } = options;
  return [
    `hostname: ${options.hostName}`,
    `keys: ${keysPath}`,
    'state_dir: .',
    `workers: ${options.workers ?? 1}`,
    inbound === undefined
      ? 'inbound: {enabled: false}'
      : [
          'inbound:',
          `  listen: "${inbound.listen}"`,
          `  postfix: ${inbound.postfixHost ?? '127.0.0.1'}:${inbound.postfixPort}`,
          `  client_identity: ${inbound.clientIdentity ?? 'xclient'}`,
          `  source_address: "${inbound.sourceAddress ?? ''}"`,
          inbound.dnsPort === undefined ? '  client_name_lookup: false' : `  resolver: ["127.0.0.1:${inbound.dnsPort}"]`,
          `  max_clients: ${inbound.maxClients ?? 1000}`,
          `  timeouts: {idle_seconds: ${inbound.idleSeconds ?? 300}, postfix_seconds: 30}`,
          // JSON is YAML: the settings of inbound.limits as given, the rest at their defaults.
          ...(inbound.limits === undefined ? [] : [`  limits: ${JSON.stringify(inbound.limits)}`]),
          ...(inbound.tls === undefined ? [] : [`  tls: ${JSON.stringify(inbound.tls)}`]),
        ].join('\n'),
    outbound === undefined
      ? 'outbound: {enabled: false}'
      : [
          'outbound:',
          `  listen: "127.0.0.1:${outbound.port}"`,
          `  protocol: ${outbound.protocol ?? 'lmtp'}`,
          `  resolver: ["127.0.0.1:${outbound.dnsPort}"]`,
          `  mx_port: ${outbound.mxPort}`,
          `  connect_timeout_seconds: ${outbound.connectTimeoutSeconds ?? Math.ceil(loadScaled(5_000) / 1_000)}`,
          `  command_timeout_seconds: ${outbound.commandTimeoutSeconds ?? 300}`,
          `  tunnel_idle_seconds: ${outbound.tunnelIdleSeconds ?? 60}`,
          '  mta_sts: false',
          ...(outbound.validatingPort === undefined ? [] : [`  validating_resolver: "127.0.0.1:${outbound.validatingPort}"`]),
          ...(outbound.transportLookupPort === undefined ? [] : [`  transport_lookup: {listen: "127.0.0.1:${outbound.transportLookupPort}"}`]),
        ].join('\n'),
    'metrics: {listen: ""}',
    '',
  ].join('\n');
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const dir = await makeTempDir(`daemon-${options.hostName}`);
  const keys = options.keys ?? generateKeys();
  const keysPath = join(dir, 'keys');
  const configPath = join(dir, 'config.yaml');
  await writeKeyFile(keysPath, keys);
  await writeFile(configPath, configText(options, keysPath));
  const earlierLogs: string[] = [];
  let current: ManagedProcess | undefined;
  const parsed = (text: string) =>
    text
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const daemon: Daemon = {
    keys,
    get process() {
      return current!;
    },
    async start() {
      if (current !== undefined) earlierLogs.push(current.stderr());
      const started = await startProcess(`blackpony run (${options.hostName})`, process.execPath, [CLI, 'run', '--config', configPath], {
        cwd: dir,
        env: await deployedEnvironment(),
      });
      current = started;
      await waitFor(
        `blackpony run (${options.hostName}) listening`,
        () => {
          if (started.status !== null) throw new Error(`blackpony run (${options.hostName}) exited ${JSON.stringify(started.status)}\n${started.output()}`);
          return parsed(started.stderr()).some((line) => line.msg === 'listening') ? true : undefined;
        },
        { diagnostics: () => started.output() },
      );
    },
    async kill() {
      if (current === undefined || current.status !== null) return;
      process.kill(current.pid, 'SIGKILL');
      await current.exited;
    },
    async stop() {
      await current?.stop();
    },
    log(prefix = '') {
      return parsed([...earlierLogs, current?.stderr() ?? ''].join('\n')).filter((line) => String(line.msg).startsWith(prefix));
    },
  };
  await daemon.start();
  return daemon;
}
