import { Resolver } from 'node:dns/promises';
import { hostname } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { base64 } from '@scure/base';
import { normalizeDomain } from '../../crypto/domain-name.js';
import { fingerprint } from '../../crypto/fingerprint.js';
import { generateKeys, loadKeyFile } from '../../crypto/keyfile.js';
import { resolverList } from '../../daemon/config-values.js';
import { dnssecOptions } from '../../daemon/daemon.js';
import { loadConfig, type Config } from '../../daemon/config.js';
import type { DialOptions } from '../../outbound/dial.js';
import { MtaStsCache } from '../../outbound/mta-sts.js';
import { openPinStore } from '../../outbound/pins.js';
import { SightingsTable } from '../../outbound/sightings-table.js';
import type { LocalPolicy } from '../../outbound/policy.js';
import { NO_PINS, probe, type AddressProbe, type KeyEvidence, type ProbeReport, type ProbeVerdict } from '../../outbound/probe.js';
import { SMTP_PORT } from '../../outbound/routing.js';
import { failCommand } from '../fail.js';

/** Exit statuses, by what mail to the domain would meet. */
export const PROBE_EXIT = { xpony: 0, legacy: 1, undeliverable: 2, error: 3 } as const;

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const COMMAND_TIMEOUT_MS = 30_000;

interface ProbeOptions {
  config?: string;
  resolver?: string;
  port?: number;
  json?: boolean;
}

function port(text: string): number {
  const value = /^[0-9]{1,5}$/.test(text) ? Number(text) : 0;
  if (value < 1 || value > 65535) throw new InvalidArgumentError('expected a port, 1-65535');
  return value;
}

function resolverAddress(text: string): string {
  let valid = true;
  resolverList([text], () => (valid = false));
  if (!valid) throw new InvalidArgumentError('expected IP[:PORT], e.g. 127.0.0.1:5353 or [::1]:53');
  return text;
}

/** The delivery engine's options, as the daemon would build them from the configuration (or defaults). */
async function dialOptions(options: ProbeOptions, config: Config | undefined): Promise<DialOptions> {
  const outbound = config?.outbound;
  const resolver = new Resolver({ timeout: 5_000, tries: 2 });
  const servers = options.resolver === undefined ? (outbound?.resolver ?? []) : [options.resolver];
  if (servers.length > 0) resolver.setServers([...servers]);
  const localPolicies: Record<string, LocalPolicy> = {};
  for (const [domain, policy] of outbound?.policies ?? []) if (policy !== 'none') localPolicies[domain] = policy;
  return {
    // Without a configuration, a throwaway key: the server cannot tell a probe from a sender.
    keys: config === undefined ? generateKeys() : await loadKeyFile(config.keys),
    hostName: config?.hostname ?? hostname(),
    routing: { resolver, routes: Object.fromEntries(outbound?.routes ?? []), mxPort: options.port ?? outbound?.mxPort ?? SMTP_PORT },
    policy: {
      resolver,
      pins: config === undefined ? NO_PINS : await openPinStore(config.stateDir),
      localPolicies,
      ...dnssecOptions(resolver, outbound?.validatingResolver ?? null),
    },
    ...(outbound?.mtaSts === false ? {} : { mtaSts: new MtaStsCache({ resolver }) }),
    connectTimeoutMs: outbound === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : outbound.connectTimeoutSeconds * 1000,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
  };
}

function exitStatus(verdict: ProbeVerdict): number {
  return verdict.outcome === 'xpony' ? PROBE_EXIT.xpony : verdict.outcome === 'legacy' ? PROBE_EXIT.legacy : PROBE_EXIT.undeliverable;
}

function routingLines(report: ProbeReport): string[] {
  const routing = report.routing;
  if (routing.kind !== 'hops') return [`next hops: none, ${routing.kind} failure: ${routing.reason}`];
  const via = routing.via === 'mx' ? 'MX records' : routing.via === 'implicit-mx' ? 'no MX: the domain itself' : 'static route';
  return [`next hops (${via}):`, ...routing.hops.map((hop) => `  ${String(hop.preference).padStart(3)}  ${hop.host}:${hop.port}  ${hop.addresses.join(', ')}`)];
}

function recordLines(report: ProbeReport): string[] {
  const lookup = report.record;
  if (lookup.kind === 'none') return ['_pony record: none'];
  if (lookup.kind === 'invalid') return [`_pony record: invalid (${lookup.reason})`];
  if (lookup.kind === 'temporary') return [`_pony record: lookup failed (${lookup.reason})`];
  const record = lookup.record;
  return [
    `_pony record (${lookup.validated ? 'DNSSEC-validated' : 'unsigned DNS'}): p=${record.policy}${record.maxAge === undefined ? '' : `, max-age ${record.maxAge} s`}`,
    ...record.noiseKeys.map((key) => `  key ${fingerprint(key)}`),
    `  age ${record.ageRecipient}`,
  ];
}

function pinLines(report: ProbeReport, pinStore: string): string[] {
  const pin = report.pin;
  if (pin === null) return [`pin: none (${pinStore})`];
  if (typeof pin === 'string') return [`pin: unreadable: ${pin}`];
  return ['pin:', ...pin.map((key) => `  key ${key.fingerprint}, expires ${key.expiresAt}`)];
}

function mtaStsLine(report: ProbeReport): string {
  const sts = report.mtaSts;
  if (sts === 'not-consulted') return 'MTA-STS: not consulted (outbound.mta_sts is false)';
  if (sts.kind === 'policy') {
    const keys = sts.policy.ponyKeys.map((key) => fingerprint(key));
    return `MTA-STS: mode ${sts.policy.mode}, mx ${sts.policy.mx.join(', ')} (${sts.source})${keys.length === 0 ? '' : `; XPONY keys over HTTPS: ${keys.join(', ')}`}`;
  }
  return `MTA-STS: ${sts.kind === 'none' ? 'none' : 'unavailable'} (${sts.reason})`;
}

/** A post-quantum recipient is about 2,000 characters: its start and length tell it apart well enough here (--json has it whole). */
function shortRecipient(recipient: string): string {
  return recipient.length <= 80 ? recipient : `${recipient.slice(0, 24)}... (${recipient.length} characters)`;
}

const EVIDENCE: Record<KeyEvidence, string> = {
  dnssec: 'DNSSEC-validated record',
  https: 'MTA-STS policy file (HTTPS)',
  pin: 'pin',
  'unsigned-record': 'unsigned record',
};
const KEY_STANDING = { match: 'matches', 'not-in-record': 'NOT in the record', 'no-record': 'no record', 'not-pinned': 'NOT pinned', 'no-pin': 'no pin' };

function addressLines(probed: AddressProbe): string[] {
  const lines = [`${probed.host}[${probed.address}]:${probed.port}`];
  const field = (name: string, value: string): void => {
    lines.push(`  ${(name === '' ? '' : `${name}:`).padEnd(10)} ${value}`);
  };
  if (probed.error !== undefined) {
    field('error', probed.error);
    return lines;
  }
  if (probed.greeting !== undefined) field('greeting', probed.greeting);
  if (probed.ehlo !== undefined) field('EHLO', probed.ehlo.slice(1).join(', '));
  const xpony = probed.xpony;
  if (xpony !== undefined) {
    if (!xpony.offered) field('XPONY', 'not offered');
    else if (xpony.fingerprint === undefined) field('XPONY', `offered; handshake failed: ${xpony.error}`);
    else {
      field('XPONY', `offered; ${xpony.error === undefined ? 'tunnel up' : `handshake failed: ${xpony.error}`}; server key ${xpony.fingerprint}`);
      field(
        '',
        `record: ${KEY_STANDING[xpony.record!]}; pin: ${KEY_STANDING[xpony.pin!]}; policy: ${xpony.acceptedByPolicy === true ? 'accepts it' : 'does NOT accept it'}`,
      );
      field(
        '',
        `evidence: ${xpony.evidence === undefined || xpony.evidence.length === 0 ? 'none (only the handshake)' : xpony.evidence.map((kind) => EVIDENCE[kind]).join(', ')}`,
      );
      if (xpony.ageRecipients !== undefined) field('', `age recipients: ${xpony.ageRecipients.map(shortRecipient).join(', ')}`);
      if (xpony.innerEhlo !== undefined) field('', `inner EHLO: ${xpony.innerEhlo}`);
    }
  }
  const tls = probed.starttls;
  if (tls !== undefined) {
    if (!tls.offered) field('STARTTLS', tls.error === undefined ? 'not offered' : `not offered (${tls.error})`);
    else if (tls.error !== undefined) field('STARTTLS', `offered; failed: ${tls.error}`);
    else {
      const certificate =
        tls.certificateValid === true ? 'certificate valid' : `certificate not valid for ${probed.host} (${tls.certificateError ?? 'unverified'})`;
      field('STARTTLS', `offered; ${tls.protocol ?? '?'} ${tls.cipher ?? '?'}; ${certificate}`);
    }
  }
  if (probed.mtaStsMatch !== undefined) field('MTA-STS', probed.mtaStsMatch ? 'host named by the policy' : 'host NOT named by the policy');
  return lines;
}

function verdictLine(verdict: ProbeVerdict): string {
  const status = exitStatus(verdict);
  if (verdict.outcome === 'xpony') return `verdict: encrypted through XPONY via ${verdict.peer}, server key ${verdict.fingerprint} (exit ${status})`;
  if (verdict.outcome === 'legacy') {
    const sealed = verdict.sealedRelay === true ? 'sealed (the envelope in clear) through an MX without XPONY, ' : '';
    return `verdict: deliverable WITHOUT XPONY, ${sealed}${verdict.mode === 'starttls' ? 'over STARTTLS' : 'in plaintext'} via ${verdict.peer} (exit ${status})`;
  }
  const what = verdict.permanent ? 'refused (bounce)' : `deferred${verdict.deferral === undefined ? '' : ` (${verdict.deferral})`}`;
  return `verdict: ${what}: ${verdict.reason} (exit ${status})`;
}

/** Remote servers choose their greeting and reply texts: control characters could drive the terminal. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it replaces
  return text.replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, '?');
}

const TRANSPORT_ROUTES: Record<ProbeReport['transport']['route'], string> = {
  blackpony: 'to blackpony',
  postfix: "stays with Postfix's own smtp",
  wait: 'Postfix defers it (temporary failure)',
};

function readable(report: ProbeReport, pinStore: string): string {
  const policy = report.policy;
  const sections = [
    [`probe ${report.domain} (no mail is sent)`, `transport lookup: ${TRANSPORT_ROUTES[report.transport.route]}: ${report.transport.reason}`],
    routingLines(report),
    [
      ...recordLines(report),
      ...pinLines(report, pinStore),
      `policy: ${policy.mode}${'source' in policy ? ` (${policy.source})` : ''}: ${policy.reason}`,
      mtaStsLine(report),
    ],
    ...report.addresses.map(addressLines),
    [...(report.attempts.length === 0 ? [] : ['attempts:', ...report.attempts.map((attempt) => `  ${attempt}`)]), verdictLine(report.verdict)],
  ];
  return printable(`${sections.map((lines) => lines.join('\n')).join('\n\n')}\n`);
}

/** Keys as base64 in JSON output. */
function jsonValue(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? base64.encode(value) : value;
}

/** `blackpony probe DOMAIN`: how mail to a domain would travel, checked without sending any. */
export function probeCommand(): Command {
  return new Command('probe')
    .description('check how mail to a domain would travel (XPONY, STARTTLS, plaintext or not at all), without sending any')
    .argument('<domain>', 'the destination domain')
    .option('--config <file>', "use this configuration: its keys, resolver, routes, local policies, mx_port and the state dir's pins")
    .addOption(new Option('--resolver <ip[:port]>', "the DNS server to ask (default: the configuration's, else the system's)").argParser(resolverAddress))
    .addOption(new Option('--port <n>', "the port of MX hosts (default: the configuration's mx_port, else 25; test networks)").argParser(port))
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      '\nExit status:\n' +
        '  0  mail would go encrypted through XPONY, to a server key the sender policy accepts\n' +
        '  1  mail would be delivered, but not through XPONY (STARTTLS or plaintext)\n' +
        '  2  mail would not be delivered now: deferred (enforce or pin not satisfiable, MTA-STS enforce\n' +
        '     not satisfiable, no reachable MX) or refused (no such domain, null MX)\n' +
        '  3  usage or configuration error\n' +
        '\nExample:\n' +
        '  blackpony probe example.org --config /etc/blackpony/config.yaml\n' +
        '  blackpony probe example.test --resolver 127.0.0.1:5353 --port 2525 --json',
    )
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : PROBE_EXIT.error))
    .action(async (domain: string, options: ProbeOptions, command: Command) => {
      let dial: DialOptions;
      let config: Config | undefined;
      // A usage error (exit 3), not a domain whose mail would be deferred.
      if (normalizeDomain(domain) === null) return failCommand(command, 'probe', new Error(`${JSON.stringify(domain)} is not a domain name`));
      try {
        config = options.config === undefined ? undefined : await loadConfig(options.config);
        dial = await dialOptions(options, config);
      } catch (error) {
        return failCommand(command, 'probe', error);
      }
      let report: ProbeReport;
      try {
        const sightings = config === undefined ? undefined : await SightingsTable.open({ stateDir: config.stateDir, persist: false });
        report = await probe(domain, dial, sightings === undefined ? undefined : (name) => sightings.has(name));
      } catch (error) {
        return failCommand(command, 'probe', error);
      }
      const pinStore = config === undefined ? 'no --config, so no pin store' : dial.policy.pins.directory;
      process.stdout.write(options.json === true ? `${JSON.stringify(report, jsonValue, 2)}\n` : readable(report, pinStore));
      process.exitCode = exitStatus(report.verdict);
    });
}
