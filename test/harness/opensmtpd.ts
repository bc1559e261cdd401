import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LEGACY_MTAS_ROOT, LegacyMtaInstance, unpacked, type LegacyMtaOptions } from './legacy-mta.js';
import { freePort } from './ports.js';
import { systemUser } from './system-users.js';
import { makeTempDir } from './temp-dir.js';

const SMTPD = join(LEGACY_MTAS_ROOT, 'usr/sbin/smtpd');
/** The receiver delivers as this user (OpenSMTPD never delivers as root). */
const MAILBOX_USER = 'nobody';

export const OPENSMTPD_REQUIREMENT = unpacked('opensmtpd', SMTPD);

/**
 * Debian's OpenSMTPD 6.8 on a loopback address, in the foreground (`smtpd -d`, logging to its
 * stderr) in a mount namespace of its own (`unshare -m`) where a private spool is bound over
 * /var/spool/smtpd and a private folder over /run: several instances never share a queue or a
 * control socket. Stopped by the PID of the process we started.
 * As a sender it relays everything to one host and port from its address; as a receiver it
 * stores mail for its mailboxes in one Maildir.
 */
export class OpensmtpdInstance extends LegacyMtaInstance {
  static async start(options: LegacyMtaOptions): Promise<OpensmtpdInstance> {
    const instance = new OpensmtpdInstance(await makeTempDir('opensmtpd'), options.port ?? (await freePort()), options);
    const mounts = [
      'mount --make-rprivate /',
      `mount --bind ${join(instance.dir, 'spool')} /var/spool/smtpd`,
      `mount --bind ${join(instance.dir, 'run')} /run`,
      `exec ${SMTPD} -d -f ${instance.configFile}`,
    ].join(' && ');
    await instance.launch('opensmtpd', 'unshare', ['-m', 'sh', '-c', mounts]);
    return instance;
  }

  private constructor(dir: string, port: number, options: LegacyMtaOptions) {
    super(dir, port, options, 'smtpd.conf');
  }

  /** Its log: what `smtpd -d` wrote to stdout and stderr. */
  async readLog(): Promise<string> {
    return this.daemon?.output() ?? '';
  }

  protected async install(): Promise<void> {
    // smtpd refuses a spool that is not root's with mode 0711.
    await mkdir(join(this.dir, 'spool'));
    await chmod(join(this.dir, 'spool'), 0o711);
    await mkdir(join(this.dir, 'run'));
    await mkdir(this.maildir);
    const { uid, gid } = systemUser(MAILBOX_USER);
    await chown(this.maildir, uid, gid);
    await writeFile(this.configFile, this.config());
  }

  private config(): string {
    const { address, hostName = 'opensmtpd.test', role } = this.options;
    const listen = `listen on ${address} port ${this.port} hostname ${hostName}`;
    if (role.kind === 'sender') {
      return [
        listen,
        `action "relay" relay host smtp+notls://${role.relayTo.host}:${role.relayTo.port} src ${address} helo ${hostName}`,
        'match from any for any action "relay"',
        '',
      ].join('\n');
    }
    return [
      `table mailboxes { ${role.mailboxes.map((mailbox) => `"${mailbox}" = "${MAILBOX_USER}"`).join(', ')} }`,
      listen,
      `action "maildir" maildir "${this.maildir}" virtual <mailboxes>`,
      `match from any for domain { ${[...new Set(role.mailboxes.map((mailbox) => `"${mailbox.replace(/^.*@/, '')}"`))].join(', ')} } action "maildir"`,
      '',
    ].join('\n');
  }
}

export function startOpensmtpd(options: LegacyMtaOptions): Promise<OpensmtpdInstance> {
  return OpensmtpdInstance.start(options);
}
