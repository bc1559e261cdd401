import { readFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROJECT_ROOT } from './cli.js';
import { runCommand, shellCommand, type CommandResult } from './command.js';
import { CommandFailedError } from './errors.js';
import { LEGACY_MTAS_ROOT, LegacyMtaInstance, unpacked, type LegacyMtaOptions } from './legacy-mta.js';
import { readTextIfPresent } from './log-tail.js';
import { freePort } from './ports.js';
import { executable } from './requirements.js';
import { makeTempDir } from './temp-dir.js';

const SENDMAIL = join(LEGACY_MTAS_ROOT, 'usr/libexec/sendmail/sendmail');
const CF_DIR = join(LEGACY_MTAS_ROOT, 'usr/share/sendmail/cf');

export const SENDMAIL_REQUIREMENT = unpacked('sendmail', SENDMAIL);
/** m4 builds sendmail.cf (.ci/legacy-mtas installs it). */
export const M4_REQUIREMENT = executable('m4', '/usr/bin/m4', 'run .ci/legacy-mtas');

/** The deploy guide's sendmail.mc lines for blackpony as smart host (deploy/README.md, "Beside sendmail"), as printed there. */
export function guideSmartHostLines(): string[] {
  const guide = readFileSync(join(PROJECT_ROOT, 'deploy/README.md'), 'utf8');
  const section = guide.slice(guide.indexOf('## Beside sendmail'));
  const block = /```m4\n([\s\S]*?)```/.exec(section);
  if (block === null) throw new Error('deploy/README.md: no ```m4 block in "Beside sendmail"');
  return block[1]!.trimEnd().split('\n');
}

/** The guide's port for blackpony's outbound listener, replaced by the test's. */
const GUIDE_OUTBOUND = { host: '127.0.0.1', port: '10587' };

export interface SendmailOptions extends LegacyMtaOptions {
  /** Other names for /etc/hosts, by address (sendmail names its clients from it: a client without one is refused relaying with a 450). */
  hosts?: Record<string, string>;
}

/**
 * Debian's sendmail 8.17 on a loopback address: sendmail.cf built with m4 from an .mc (as an
 * administrator would), queue and trace in a temp directory, the daemon in the foreground
 * (`-bD`, no queue runner: the first delivery attempt is the only one) as our child.
 * It runs in mount and UTS namespaces of its own (`unshare -m -u`): its host name is hostName,
 * and its own /etc/hosts and an /etc/resolv.conf naming a loopback server nobody runs are bound
 * over the system's, so it resolves nothing beyond them and nothing leaves the machine.
 * sendmail logs only to syslog: readLog() gives its SMTP trace (`-X`) instead.
 * As a sender it uses the deploy guide's smart-host lines (guideSmartHostLines), pointed at
 * relayTo; as a receiver it stores mail for its mailboxes, through a program mailer, in one
 * Maildir, and refuses other users of those domains.
 */
export class SendmailInstance extends LegacyMtaInstance {
  static async start(options: SendmailOptions): Promise<SendmailInstance> {
    const instance = new SendmailInstance(await makeTempDir('sendmail'), options.port ?? (await freePort()), options);
    await instance.launch('sendmail', 'unshare', instance.namespaced(['-bD']));
    return instance;
  }

  private constructor(
    dir: string,
    port: number,
    private readonly sendmailOptions: SendmailOptions,
  ) {
    super(dir, port, sendmailOptions, 'sendmail.cf');
  }

  private get hostName(): string {
    return this.options.hostName ?? 'sendmail.test';
  }

  /** Submits a message on the command line (`-i`: a lone "." line is text) and delivers it at once, in this process (`-odi`). */
  submit(message: string | Buffer, from: string, to: readonly string[]): Promise<CommandResult> {
    return runCommand('unshare', this.namespaced(['-i', '-odi', '-f', from, '--', ...to]), { input: message });
  }

  /** The SMTP traffic in and out of the daemon and of each submission. */
  async readLog(): Promise<string> {
    return readTextIfPresent(join(this.dir, 'trace'));
  }

  /** `unshare` arguments that run sendmail with these arguments in its namespaces. */
  private namespaced(args: readonly string[]): string[] {
    const steps = [
      'mount --make-rprivate /',
      `mount --bind ${join(this.dir, 'hosts')} /etc/hosts`,
      `mount --bind ${join(this.dir, 'resolv.conf')} /etc/resolv.conf`,
      `hostname ${this.hostName}`,
      `exec ${shellCommand(SENDMAIL, ['-C', this.configFile, '-X', join(this.dir, 'trace'), ...args])}`,
    ];
    return ['-m', '-u', 'sh', '-c', steps.join(' && ')];
  }

  protected async install(): Promise<void> {
    await mkdir(join(this.dir, 'queue'), { mode: 0o700 });
    for (const sub of ['tmp', 'new', 'cur']) await mkdir(join(this.maildir, sub), { recursive: true });
    const hosts = { '127.0.0.1': 'localhost', ...this.sendmailOptions.hosts, [this.address]: this.hostName };
    await writeFile(
      join(this.dir, 'hosts'),
      Object.entries(hosts)
        .map(([address, name]) => `${address}\t${name}\n`)
        .join(''),
    );
    // Port 53 on loopback: nobody listens, so any lookup fails at once and goes nowhere.
    await writeFile(join(this.dir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions attempts:1 timeout:1\n');
    await writeFile(join(this.dir, 'service.switch'), 'hosts\tfiles\naliases\tfiles\n');
    await writeFile(join(this.dir, 'deliver'), `#!/bin/sh\nfile=$(mktemp ${this.maildir}/tmp/XXXXXX) && cat >"$file" && mv "$file" ${this.maildir}/new/\n`);
    await chmod(join(this.dir, 'deliver'), 0o755);
    await writeFile(join(this.dir, 'sendmail.mc'), this.mc());
    const built = await runCommand('m4', [`-D_CF_DIR_=${CF_DIR}/`, join(CF_DIR, 'm4/cf.m4'), join(this.dir, 'sendmail.mc')]);
    if (built.exitCode !== 0 || built.stderr !== '') throw new CommandFailedError('m4 sendmail.mc', built.exitCode, built.stderr);
    await writeFile(this.configFile, built.stdout);
  }

  private mc(): string {
    const { address, role } = this.options;
    const dir = this.dir;
    const lines = [
      'divert(0)dnl',
      "OSTYPE(`linux')dnl",
      `define(\`confDOMAIN_NAME', \`${this.hostName}')dnl`,
      "define(`confDONT_PROBE_INTERFACES', `True')dnl",
      `define(\`QUEUE_DIR', \`${join(dir, 'queue')}')dnl`,
      `define(\`confPID_FILE', \`${join(dir, 'sendmail.pid')}')dnl`,
      `define(\`STATUS_FILE', \`${join(dir, 'statistics')}')dnl`,
      "define(`ALIAS_FILE', `')dnl",
      `define(\`confSERVICE_SWITCH_FILE', \`${join(dir, 'service.switch')}')dnl`,
      // No ident queries back to the client, no DNS for the test's made-up domains.
      "define(`confTO_IDENT', `0s')dnl",
      "FEATURE(`nocanonify')dnl",
      "FEATURE(`accept_unresolvable_domains')dnl",
      "FEATURE(`no_default_msa')dnl",
      // sendmail stops listening (RefuseLA), queues instead of delivering (QueueLA) and slows down
      // (DelayLA) above load averages that a test machine running everything at once reaches.
      "define(`confREFUSE_LA', `10000')dnl",
      "define(`confQUEUE_LA', `10000')dnl",
      "define(`confDELAY_LA', `0')dnl",
      `DAEMON_OPTIONS(\`Port=${this.port}, Addr=${address}, Name=MTA')dnl`,
      `CLIENT_OPTIONS(\`Family=inet, Addr=${address}')dnl`,
    ];
    if (role.kind === 'sender') {
      const guide = guideSmartHostLines().map((line) =>
        line.replace(`[${GUIDE_OUTBOUND.host}]`, `[${role.relayTo.host}]`).replace(` ${GUIDE_OUTBOUND.port}'`, ` ${role.relayTo.port}'`),
      );
      return [...lines, ...guide, "MAILER(`smtp')dnl", ''].join('\n');
    }
    const domains = [...new Set(role.mailboxes.map((mailbox) => mailbox.replace(/^.*@/, '')))];
    return [
      ...lines,
      ...domains.map((domain) => `RELAY_DOMAIN(\`${domain}')dnl`),
      "MAILER(`smtp')dnl",
      'MAILER_DEFINITIONS',
      // A program mailer as root (S) without a Unix From line (n): the message as received, LF line ends.
      `Mmaildir, P=${join(dir, 'deliver')}, F=lsSn, S=EnvFromL/HdrFromL, R=EnvToL/HdrToL, T=DNS/RFC822/X-Unix, A=deliver $u`,
      'LOCAL_RULE_0',
      ...role.mailboxes.map((mailbox) => {
        const [local, domain] = [mailbox.replace(/@.*$/, ''), mailbox.replace(/^.*@/, '')];
        return `R${local} < @ ${domain} . >\t$#maildir $: ${local}`;
      }),
      ...domains.map((domain) => `R$* < @ ${domain} . >\t$#error $@ 5.1.1 $: "550 User unknown"`),
      '',
    ].join('\n');
  }
}

export function startSendmail(options: SendmailOptions): Promise<SendmailInstance> {
  return SendmailInstance.start(options);
}
