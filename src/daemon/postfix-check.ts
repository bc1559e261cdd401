/**
 * Whether a Postfix configuration works with blackpony's, as deploy/README.md sets them up: port
 * 25 left to blackpony, a loopback or unix-socket listener for blackpony's relay that learns the
 * real client (XCLIENT or PROXY) from blackpony and from nobody else, mynetworks trusting no more
 * than it should, and Postfix's outgoing mail routed to blackpony (transport lookup or
 * default_transport). Pure: it reads postconf's output (postfix-settings.ts) and the parsed
 * configuration, and returns one finding per thing to change.
 */
import type { Config } from './config.js';
import { formatEndpoint, formatHostPort, type Endpoint, type HostPort } from './config-values.js';
import {
  addressList,
  coversHost,
  entryHolds,
  inetListener,
  isLoopbackHost,
  isWidePublicNetwork,
  networkSize,
  nextHopEndpoint,
  sameEndpoint,
} from './postfix-addresses.js';
import { postfixList, serviceId, type MasterService, type PostfixSettings } from './postfix-settings.js';
import { transportAnswer } from './transport-map.js';

/** `problem`: mail is lost, refused, relayed or sent wrongly until it changes (exit 1); `note`: a documented trade-off. */
export type Severity = 'problem' | 'note';

export interface Finding {
  readonly severity: Severity;
  /** What the finding is about: port 25, relay listener, client identity, mynetworks, transport. */
  readonly topic: string;
  /** What is wrong and what to change, in one line. */
  readonly text: string;
}

export interface CheckOptions {
  /** How the reader runs postconf, for the commands suggested: `postconf` or `postconf -c DIR`. */
  readonly postconf: string;
}

/** The port blackpony.socket binds, on every address, with `inbound.listen: systemd`. */
const SYSTEMD_SMTP: readonly HostPort[] = [
  { host: '0.0.0.0', port: 25 },
  { host: '::', port: 25 },
];

/** What systemd/blackpony-outbound.socket binds, with `outbound.listen: systemd`. */
const SYSTEMD_OUTBOUND: Endpoint = { path: '/run/blackpony-lmtp.sock' };
/** What systemd/blackpony-lookup.socket binds, with `outbound.transport_lookup.listen: systemd`. */
const SYSTEMD_LOOKUP: HostPort = { host: '127.0.0.1', port: 10588 };

/** Where the outbound side listens: its setting, or for `systemd` what the shipped socket unit binds. */
function outboundEndpoint(config: Config): Endpoint {
  const listen = config.outbound.listen;
  return listen === 'systemd' ? SYSTEMD_OUTBOUND : listen;
}

export function checkPostfix(postfix: PostfixSettings, config: Config, options: CheckOptions): Finding[] {
  const findings: Finding[] = [];
  const report = (severity: Severity, topic: string, text: string): void => {
    findings.push({ severity, topic, text });
  };
  if (config.inbound.enabled) checkInbound(postfix, config, options, report);
  if (config.outbound.enabled) checkOutbound(postfix, config, options, report);
  return findings;
}

type Report = (severity: Severity, topic: string, text: string) => void;

function checkInbound(postfix: PostfixSettings, config: Config, options: CheckOptions, report: Report): void {
  checkPort25(postfix, config, options, report);
  const listener = relayListener(postfix, config, report);
  const passesClient = listener !== undefined && checkClientIdentity(postfix, config, listener, report);
  checkOtherListeners(postfix, listener, options, report);
  checkMynetworks(postfix, listener, passesClient, report);
}

/** Postfix listeners on the address blackpony takes (inbound.listen). */
function checkPort25(postfix: PostfixSettings, config: Config, options: CheckOptions, report: Report): void {
  const listen = config.inbound.listen;
  const addresses = listen === 'systemd' ? SYSTEMD_SMTP : [listen];
  const setting = listen === 'systemd' ? 'systemd (blackpony.socket)' : formatHostPort(listen);
  const port = addresses[0]!.port;
  for (const service of postfix.activeServices()) {
    if (service.type !== 'inet') continue;
    const where = inetListener(service, postfix.main('inet_interfaces'));
    if (where.port !== port || !addresses.some((address) => coversHost(where.hosts, address.host))) continue;
    const postscreen = service.command === 'postscreen' ? '; to keep postscreen, put it behind blackpony (deploy/postfix/postscreen-master.cf)' : '';
    report(
      'problem',
      `port ${port}`,
      `master.cf service ${serviceId(service)} (${service.command}) still listens on port ${port}, which blackpony takes (inbound.listen: ${setting}): comment it out with \`${options.postconf} -M# ${serviceId(service)}\`${postscreen}`,
    );
  }
}

/** The master.cf service blackpony relays to (inbound.postfix), or undefined after reporting why there is none. */
function relayListener(postfix: PostfixSettings, config: Config, report: Report): MasterService | undefined {
  const endpoint = config.inbound.postfix;
  const target = `inbound.postfix ${formatEndpoint(endpoint)}`;
  if (!('path' in endpoint) && !isLoopbackHost(endpoint.host)) {
    report(
      'problem',
      'relay listener',
      `${target} is neither loopback nor a unix socket: Postfix would take XCLIENT or PROXY lines from a network address; use the unix-socket listener of deploy/postfix/master.cf`,
    );
    return undefined;
  }
  const queueDirectory = postfix.main('queue_directory');
  const services = postfix.activeServices();
  const listener = services.find((service) => listensOn(postfix, service, endpoint, queueDirectory));
  if (listener === undefined) {
    const hint = 'path' in endpoint ? misplacedSocket(services, endpoint.path, queueDirectory) : '';
    const add =
      'path' in endpoint
        ? 'the blackpony-smtpd service of deploy/postfix/master.cf'
        : 'the 127.0.0.1:10025 listener of deploy/postfix/master.cf (or postscreen-master.cf)';
    report(
      'problem',
      'relay listener',
      `no master.cf service listens on ${formatEndpoint(endpoint)} (${target}${'path' in endpoint ? `; queue_directory is ${queueDirectory}` : ''})${hint}: add ${add}, or correct inbound.postfix`,
    );
    return undefined;
  }
  const daemons = config.inbound.clientIdentity === 'proxy' ? ['smtpd', 'postscreen'] : ['smtpd'];
  if (!daemons.includes(listener.command)) {
    report(
      'problem',
      'relay listener',
      `master.cf service ${serviceId(listener)} (${target}) runs ${listener.command}, not ${daemons.join(' or ')}: blackpony's sessions need Postfix's SMTP server there`,
    );
    return undefined;
  }
  if (listener.type === 'inet') {
    const hosts = inetListener(listener, postfix.main('inet_interfaces')).hosts;
    if (!hosts.every(isLoopbackHost)) {
      report(
        'problem',
        'relay listener',
        `master.cf service ${serviceId(listener)} (${target}) listens on ${hosts.join(', ')}, beyond loopback: other hosts reach it and could pass for any client; name it ${formatEndpoint(endpoint)}`,
      );
    }
  }
  return listener;
}

function listensOn(postfix: PostfixSettings, service: MasterService, endpoint: Endpoint, queueDirectory: string): boolean {
  if ('path' in endpoint) return service.type === 'unix' && unixSocketPath(service, queueDirectory) === endpoint.path;
  if (service.type !== 'inet') return false;
  const where = inetListener(service, postfix.main('inet_interfaces'));
  return where.port === endpoint.port && coversHost(where.hosts, endpoint.host);
}

/** Where master(8) makes a unix service's socket: public/ with "n" in the private column, else private/. */
function unixSocketPath(service: MasterService, queueDirectory: string): string {
  return `${queueDirectory}/${service.private === 'n' ? 'public' : 'private'}/${service.name}`;
}

/** A hint when the socket's service exists but master(8) puts it elsewhere (private/ for public/, or another queue directory). */
function misplacedSocket(services: readonly MasterService[], path: string, queueDirectory: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const service = services.find((candidate) => candidate.type === 'unix' && candidate.name === name);
  if (service === undefined) return '';
  const column = service.private === 'n' ? '' : ` (set its private column to n for ${queueDirectory}/public/)`;
  return `; service ${serviceId(service)} makes ${unixSocketPath(service, queueDirectory)} instead${column}`;
}

/** Whether the relay listener learns the real client from blackpony, and from blackpony only. */
function checkClientIdentity(postfix: PostfixSettings, config: Config, listener: MasterService, report: Report): boolean {
  const endpoint = config.inbound.postfix;
  const id = serviceId(listener);
  const tcp = !('path' in endpoint);
  if (config.inbound.clientIdentity === 'proxy') {
    const parameter = `${listener.command}_upstream_proxy_protocol`;
    let passes = postfix.effective(listener, parameter) === 'haproxy';
    if (!passes) {
      report(
        'problem',
        'client identity',
        `master.cf service ${id} takes no PROXY lines, but blackpony sends them (inbound.client_identity: proxy): add \`-o ${parameter}=haproxy\` to it`,
      );
    }
    if (listener.command === 'postscreen' && postfix.service('smtpd', 'pass') === undefined) {
      report(
        'problem',
        'client identity',
        `postscreen (${id}) has no \`smtpd pass\` service to hand clients to: add the one in deploy/postfix/postscreen-master.cf`,
      );
      passes = false;
    }
    if (tcp) {
      report(
        'note',
        'client identity',
        `${id} is a loopback TCP port: any local user can send it a PROXY line and pass for any client (deploy/postfix/README.md, "postscreen")`,
      );
    }
    return passes;
  }
  if (postfix.effective(listener, 'smtpd_upstream_proxy_protocol') !== '') {
    report(
      'problem',
      'client identity',
      `master.cf service ${id} expects PROXY lines (smtpd_upstream_proxy_protocol), but blackpony sends XCLIENT (inbound.client_identity: xclient): remove the setting, or set client_identity: proxy`,
    );
    return false;
  }
  const blackpony = tcp && endpoint.host.includes(':') ? '::1' : '127.0.0.1';
  const entries = addressList(postfix.effective(listener, 'smtpd_authorized_xclient_hosts'));
  const granted = entries.some((entry) => entryHolds(entry, blackpony));
  if (!granted) {
    report(
      'problem',
      'client identity',
      `master.cf service ${id} does not grant XCLIENT to blackpony (${blackpony}), so blackpony relays nothing and every client gets a 451: add \`-o smtpd_authorized_xclient_hosts=${blackpony}\` to it`,
    );
  }
  const others = entries.filter(
    (entry) => entry.range === undefined || entry.range.prefix !== (entry.range.family === 'ipv4' ? 32 : 128) || !entryHolds(entry, blackpony),
  );
  if (others.length > 0) {
    report(
      'problem',
      'client identity',
      `master.cf service ${id} grants XCLIENT to more than blackpony's ${blackpony} (${others.map((entry) => entry.text).join(', ')}): whoever connects from there can pass for any client; set \`-o smtpd_authorized_xclient_hosts=${blackpony}\``,
    );
  }
  if (tcp)
    report(
      'note',
      'client identity',
      `${id} is a loopback TCP port: any local user can send it XCLIENT and pass for any client; the unix-socket listener of deploy/postfix/master.cf keeps them out`,
    );
  return granted;
}

/** XCLIENT granted elsewhere, and PROXY lines taken on listeners others reach. */
function checkOtherListeners(postfix: PostfixSettings, listener: MasterService | undefined, options: CheckOptions, report: Report): void {
  const others = postfix.activeServices().filter((service) => service !== listener);
  const smtpds = others.filter((service) => service.command === 'smtpd');
  const inheriting = smtpds.filter((service) => postfix.overrideOf(service, 'smtpd_authorized_xclient_hosts') === undefined);
  const mainValue = postfix.main('smtpd_authorized_xclient_hosts');
  if (mainValue !== '' && inheriting.length > 0) {
    report(
      'problem',
      'client identity',
      `main.cf grants XCLIENT to ${mainValue} on ${inheriting.map(serviceId).join(', ')}: only blackpony's listener should; \`${options.postconf} -e 'smtpd_authorized_xclient_hosts ='\` (deploy/postfix/main.cf)`,
    );
  }
  for (const service of smtpds) {
    const value = postfix.overrideOf(service, 'smtpd_authorized_xclient_hosts');
    if (value === undefined || value === '') continue;
    report(
      'problem',
      'client identity',
      `master.cf service ${serviceId(service)} also grants XCLIENT (to ${value}): only blackpony's listener should; remove its -o smtpd_authorized_xclient_hosts`,
    );
  }
  const inetInterfaces = postfix.main('inet_interfaces');
  for (const service of others) {
    if (service.type !== 'inet' || !['smtpd', 'postscreen'].includes(service.command)) continue;
    const parameter = `${service.command}_upstream_proxy_protocol`;
    if (postfix.effective(service, parameter) === '') continue;
    const hosts = inetListener(service, inetInterfaces).hosts;
    if (hosts.every(isLoopbackHost)) continue;
    report(
      'problem',
      'client identity',
      `master.cf service ${serviceId(service)} takes PROXY lines (${parameter}) on ${hosts.join(', ')}: anyone who reaches it can pass for any client; bind it to 127.0.0.1 or remove the setting`,
    );
  }
}

/** mynetworks as the relay listener sees it: no wide public networks, and loopback only while the real client is passed. */
function checkMynetworks(postfix: PostfixSettings, listener: MasterService | undefined, passesClient: boolean, report: Report): void {
  const value = listener === undefined ? postfix.main('mynetworks') : postfix.effective(listener, 'mynetworks');
  const entries = addressList(value);
  for (const entry of entries.filter(isWidePublicNetwork)) {
    report(
      'problem',
      'mynetworks',
      `${entry.text} trusts a wide public network (${networkSize(entry.range!)}): Postfix, now judging each real client, relays for all of them (permit_mynetworks); list your own hosts only`,
    );
  }
  if (listener === undefined || passesClient) return;
  const loopback = entries.find((entry) => entryHolds(entry, '127.0.0.1') || entryHolds(entry, '::1'));
  if (loopback !== undefined) {
    report(
      'problem',
      'mynetworks',
      `${loopback.text} trusts blackpony's own loopback address, and ${serviceId(listener)} does not learn the real client from blackpony: every client would look trusted; fix the client identity above (or drop loopback from mynetworks)`,
    );
  }
}

function checkOutbound(postfix: PostfixSettings, config: Config, options: CheckOptions, report: Report): void {
  const service = config.outbound.transportLookup.listen === '' ? defaultRoute(postfix, config, report) : lookupRoute(postfix, config, options, report);
  if (service !== undefined) checkTransportService(postfix, config, service, report);
}

/** The socketmap entry of blackpony's transport lookup, first in transport_maps; the service its answers name. */
function lookupRoute(postfix: PostfixSettings, config: Config, options: CheckOptions, report: Report): MasterService | undefined {
  const setting = config.outbound.transportLookup.listen;
  const lookup = setting === 'systemd' ? SYSTEMD_LOOKUP : (setting as HostPort);
  const wanted = `socketmap:inet:${formatHostPort(lookup)}:transport`;
  const maps = postfixList(postfix.main('transport_maps'));
  const index = maps.findIndex((map) => {
    const match = /^socketmap:inet:(.+):[^:]+$/.exec(map);
    const endpoint = match === null ? undefined : nextHopEndpoint(match[1]!, 'smtp', '');
    return endpoint !== undefined && sameEndpoint(endpoint, lookup);
  });
  if (index === -1) {
    const other = maps.find((map) => map.startsWith('socketmap:'));
    report(
      'problem',
      'transport',
      `transport_maps does not ask blackpony's lookup (outbound.transport_lookup.listen ${formatHostPort(lookup)})${other === undefined ? '' : `, it asks ${other}`}: \`${options.postconf} -e "transport_maps = ${wanted} $(${options.postconf} -h transport_maps)"\``,
    );
    return undefined;
  }
  if (index > 0) {
    report(
      'problem',
      'transport',
      `transport_maps asks ${maps.slice(0, index).join(', ')} before blackpony's lookup: a domain answered there never reaches blackpony, even one that requires the tunnel; put ${maps[index]} first`,
    );
  }
  const transport = transportAnswer(config, outboundEndpoint(config)).split(':')[0]!;
  const service = postfix.service(transport, 'unix');
  if (service === undefined) {
    report(
      'problem',
      'transport',
      `blackpony's lookup answers with the service ${transport} (outbound.transport_lookup.transport), which master.cf lacks: add deploy/postfix/outbound-master.cf`,
    );
  }
  return service;
}

/** Without the lookup: default_transport (or relayhost through smtp) leading to outbound.listen. */
function defaultRoute(postfix: PostfixSettings, config: Config, report: Report): MasterService | undefined {
  const listen = outboundEndpoint(config);
  const defaultTransport = postfix.main('default_transport');
  const colon = defaultTransport.indexOf(':');
  const transport = colon === -1 ? defaultTransport : defaultTransport.slice(0, colon);
  const service = postfix.service(transport, 'unix');
  if (service !== undefined && ['lmtp', 'smtp'].includes(service.command)) {
    const nextHop = colon === -1 ? '' : defaultTransport.slice(colon + 1);
    const via = nextHop === '' && service.command === 'smtp' ? postfix.main('relayhost') : nextHop;
    const endpoint = via === '' ? undefined : nextHopEndpoint(via, service.command, postfix.main('queue_directory'));
    if (endpoint !== undefined && sameEndpoint(endpoint, listen)) return service;
  }
  const tables = postfix.main('transport_maps') === '' ? '' : ` (transport_maps is not read here: check it with postmap -q DOMAIN)`;
  report(
    'problem',
    'transport',
    `Postfix hands no mail to blackpony: outbound.transport_lookup.listen is "", and neither default_transport (${defaultTransport}) nor relayhost (${postfix.main('relayhost')}) leads to outbound.listen ${formatEndpoint(listen)}${tables}: set up the lookup (deploy/postfix/outbound-lookup.cf) or the simple mode (deploy/README.md)`,
  );
  return undefined;
}

/** The master.cf service that hands mail to blackpony: its client, chroot, XFORWARD and recipients per transaction. */
function checkTransportService(postfix: PostfixSettings, config: Config, service: MasterService, report: Report): void {
  const { protocol } = config.outbound;
  const listen = outboundEndpoint(config);
  const id = serviceId(service);
  if (service.command !== protocol) {
    report(
      'problem',
      'transport',
      `master.cf service ${id} runs ${service.command}, but blackpony speaks ${protocol} (outbound.protocol): make it ${protocol}`,
    );
    return;
  }
  if ('path' in listen && service.chroot === 'y') {
    report(
      'problem',
      'transport',
      `master.cf service ${id} is chrooted, so it cannot reach ${listen.path} (outbound.listen): set its chroot column to n (deploy/postfix/outbound-master.cf)`,
    );
  }
  const xforward = `${protocol}_send_xforward_command`;
  if (postfix.effective(service, xforward) !== 'yes') {
    report(
      'problem',
      'transport',
      `master.cf service ${id} does not send XFORWARD: a retry after a lost reply through a tunnel is delivered twice; add \`-o ${xforward}=yes\``,
    );
  }
  if (postfix.main('enable_long_queue_ids') !== 'yes') {
    report(
      'problem',
      'transport',
      'enable_long_queue_ids is not yes: short queue ids are reused, so blackpony cannot name messages with them and a retry after a lost reply is delivered twice; set it to yes',
    );
  }
  if (protocol === 'smtp') {
    const limit = postfix.main(`${service.name}_destination_recipient_limit`) || postfix.main('default_destination_recipient_limit');
    if (limit !== '1') {
      report(
        'problem',
        'transport',
        `${service.name}_destination_recipient_limit is ${limit}, not 1: over SMTP one reply covers every recipient of a transaction; set it to 1 (deploy/postfix/outbound-smtp.cf)`,
      );
    }
  }
}
