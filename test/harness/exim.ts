import { chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand, type CommandResult } from './command.js';
import { LegacyMtaInstance, unpacked, type LegacyMtaOptions } from './legacy-mta.js';
import { readTextIfPresent } from './log-tail.js';
import { freePort } from './ports.js';
import { systemUser } from './system-users.js';
import { makeTempDir } from './temp-dir.js';

/** Exim re-executes itself by this path (.ci/legacy-mtas links it to the unpacked binary). */
const EXIM = '/usr/sbin/exim4';
const EXIM_USER = 'Debian-exim';

/** The link, which reaches the unpacked binary only when both are there. */
export const EXIM_REQUIREMENT = unpacked('exim', EXIM);

/**
 * Debian's Exim 4.96 (exim4-daemon-light) on a loopback address: its own configuration, spool and
 * logs in a temp directory, the daemon in the foreground (`-bdf`, no queue runner: the first
 * delivery attempt is the only one) as our child, stopped by its PID.
 * As a sender it relays everything through a manualroute router and an smtp transport bound to
 * its address; as a receiver it stores mail for its mailboxes in one Maildir. It offers CHUNKING
 * and PIPECONNECT as a server, and uses CHUNKING as a client when offered.
 */
export class EximInstance extends LegacyMtaInstance {
  static async start(options: LegacyMtaOptions): Promise<EximInstance> {
    const instance = new EximInstance(await makeTempDir('exim'), options.port ?? (await freePort()), options);
    await instance.launch('exim', EXIM, ['-C', instance.configFile, '-bdf']);
    return instance;
  }

  private constructor(dir: string, port: number, options: LegacyMtaOptions) {
    super(dir, port, options, 'exim.conf');
  }

  /** Submits a message on the command line and delivers it at once, in this process (`-odi`). */
  submit(message: string | Buffer, from: string, to: readonly string[]): Promise<CommandResult> {
    return runCommand(EXIM, ['-C', this.configFile, '-odi', '-oi', '-f', from, '--', ...to], { input: message });
  }

  /** mainlog, rejectlog and paniclog. */
  async readLog(): Promise<string> {
    const logs = await Promise.all(['main', 'reject', 'panic'].map(async (name) => [name, await readTextIfPresent(join(this.dir, 'log', `${name}log`))]));
    return logs.map(([name, text]) => (text === '' ? '' : `[${name}log]\n${text}`)).join('');
  }

  /** The configuration, and the folders the daemon writes as its unprivileged user. */
  protected async install(): Promise<void> {
    const { uid, gid } = systemUser(EXIM_USER);
    for (const sub of ['spool', 'log', 'Maildir']) {
      await mkdir(join(this.dir, sub));
      await chown(join(this.dir, sub), uid, gid);
    }
    await writeFile(this.configFile, this.config());
  }

  private config(): string {
    const { address, hostName = 'exim.test', role } = this.options;
    const common = [
      `primary_hostname = ${hostName}`,
      `qualify_domain = ${hostName}`,
      `daemon_smtp_ports = ${this.port}`,
      `local_interfaces = ${address}`,
      `spool_directory = ${join(this.dir, 'spool')}`,
      `log_file_path = ${join(this.dir, 'log', '%slog')}`,
      `pid_file_path = ${join(this.dir, 'exim.pid')}`,
      `exim_user = ${EXIM_USER}`,
      `exim_group = ${EXIM_USER}`,
      'trusted_users = root',
      // Nothing leaves loopback: no reverse lookups, no ident, no TLS without a certificate.
      'host_lookup =',
      'rfc1413_hosts =',
      'tls_advertise_hosts =',
      'keep_environment =',
      'chunking_advertise_hosts = *',
      'pipelining_connect_advertise_hosts = *',
      'acl_smtp_rcpt = acl_rcpt',
    ];
    if (role.kind === 'sender') {
      return [
        ...common,
        'begin acl',
        'acl_rcpt:',
        '  accept',
        'begin routers',
        'relay:',
        '  driver = manualroute',
        `  route_list = * ${role.relayTo.host}`,
        '  transport = relay_smtp',
        // The next hop is on this host: send to it anyway.
        '  self = send',
        '  no_more',
        'begin transports',
        'relay_smtp:',
        '  driver = smtp',
        `  port = ${role.relayTo.port}`,
        `  interface = ${address}`,
        '  allow_localhost',
        '  hosts_avoid_tls = *',
        'begin retry',
        '* * F,1h,1h',
        '',
      ].join('\n');
    }
    return [
      ...common,
      'begin acl',
      'acl_rcpt:',
      `  accept recipients = ${role.mailboxes.join(' : ')}`,
      '  deny message = unknown user',
      'begin routers',
      'mailbox:',
      '  driver = accept',
      '  transport = maildir',
      'begin transports',
      'maildir:',
      '  driver = appendfile',
      `  directory = ${this.maildir}`,
      '  maildir_format',
      '  create_directory',
      `  user = ${EXIM_USER}`,
      '  delivery_date_add = false',
      '  envelope_to_add = false',
      '  return_path_add = false',
      'begin retry',
      '* * F,1h,1h',
      '',
    ].join('\n');
  }
}

export function startExim(options: LegacyMtaOptions): Promise<EximInstance> {
  return EximInstance.start(options);
}
