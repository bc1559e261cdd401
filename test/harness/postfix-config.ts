import { join } from 'node:path';
import { HarnessUsageError } from './errors.js';
import { systemUser } from './system-users.js';

/** Options of one test Postfix instance (see startPostfix). */
export interface PostfixOptions {
  /** myhostname; default `postfix-PORT.test`. */
  hostname?: string;
  /** relayhost, e.g. `[127.0.0.1]:10025`. */
  relayhost?: string;
  /** Virtual mailboxes (user@domain) delivered to Maildirs under the instance's directory. */
  mailboxes?: readonly string[];
  /** Default 127.0.0.0/8. */
  mynetworks?: string;
  /** Extra main.cf parameters; they override the harness defaults. */
  mainCf?: Readonly<Record<string, string>>;
  /** Extra master.cf entries, one per string (e.g. a second smtpd listener with -o overrides). */
  masterCf?: readonly string[];
}

/** Where one instance keeps everything; all under `dir`. */
export interface PostfixLayout {
  port: number;
  dir: string;
  configDir: string;
  queueDir: string;
  dataDir: string;
  mailboxBase: string;
  maillog: string;
}

/** The owner of delivered Maildirs: nobody, a user that exists everywhere. */
export const MAILBOX_USER = 'nobody';

export function postfixLayout(dir: string, port: number): PostfixLayout {
  return {
    port,
    dir,
    configDir: join(dir, 'etc'),
    queueDir: join(dir, 'spool'),
    dataDir: join(dir, 'data'),
    mailboxBase: join(dir, 'mail'),
    maillog: join(dir, 'maillog'),
  };
}

export function mainCf(layout: PostfixLayout, options: PostfixOptions): string {
  const mailboxes = options.mailboxes ?? [];
  const parameters: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: layout.queueDir,
    data_directory: layout.dataDir,
    myhostname: options.hostname ?? `postfix-${layout.port}.test`,
    mydestination: '',
    mynetworks: options.mynetworks ?? '127.0.0.0/8',
    inet_interfaces: 'loopback-only',
    inet_protocols: 'ipv4',
    relayhost: options.relayhost ?? '',
    alias_maps: '',
    alias_database: '',
    biff: 'no',
    // Distinct log identity and file per instance; Postfix writes nowhere else.
    syslog_name: `postfix-${layout.port}`,
    maillog_file: layout.maillog,
    maillog_file_prefixes: layout.dir,
    master_service_disable: '',
    // No DNS: next hops are loopback addresses given literally.
    smtp_dns_support_level: 'disabled',
    smtp_host_lookup: 'native',
    // Tests that defer and then flush must not wait minutes.
    smtp_connect_timeout: '2s',
    lmtp_connect_timeout: '2s',
    minimal_backoff_time: '1s',
    maximal_backoff_time: '2s',
    queue_run_delay: '1s',
    virtual_mailbox_domains: [...new Set(mailboxes.map((address) => splitAddress(address).domain))].join(' '),
    virtual_mailbox_base: layout.mailboxBase,
    virtual_mailbox_maps: mailboxes.length === 0 ? '' : `inline:{ ${mailboxes.map((address) => `{${address}=${mailboxPath(address)}}`).join(', ')} }`,
    virtual_uid_maps: `static:${systemUser(MAILBOX_USER).uid}`,
    virtual_gid_maps: `static:${systemUser(MAILBOX_USER).gid}`,
    ...options.mainCf,
  };
  return Object.entries(parameters)
    .map(([name, value]) => `${name} = ${value}\n`)
    .join('');
}

/** Postfix's stock services without chroot, and no public smtpd on port 25: only PORT on 127.0.0.1. */
export function masterCf(layout: PostfixLayout, options: PostfixOptions): string {
  const services = [
    `127.0.0.1:${layout.port} inet n - n - - smtpd`,
    'pickup    unix  n - n 60    1 pickup',
    'cleanup   unix  n - n -     0 cleanup',
    'qmgr      unix  n - n 300   1 qmgr',
    'tlsmgr    unix  - - n 1000? 1 tlsmgr',
    'rewrite   unix  - - n -     - trivial-rewrite',
    'bounce    unix  - - n -     0 bounce',
    'defer     unix  - - n -     0 bounce',
    'trace     unix  - - n -     0 bounce',
    'verify    unix  - - n -     1 verify',
    'flush     unix  n - n 1000? 0 flush',
    'proxymap  unix  - - n -     - proxymap',
    'proxywrite unix - - n -     1 proxymap',
    'smtp      unix  - - n -     - smtp',
    'relay     unix  - - n -     - smtp',
    'showq     unix  n - n -     - showq',
    'error     unix  - - n -     - error',
    'retry     unix  - - n -     - error',
    'discard   unix  - - n -     - discard',
    'local     unix  - n n -     - local',
    'virtual   unix  - n n -     - virtual',
    'lmtp      unix  - - n -     - lmtp',
    'anvil     unix  - - n -     1 anvil',
    'scache    unix  - - n -     1 scache',
    'postlog   unix-dgram n - n - 1 postlogd',
    // What postscreen (added by a test with its `smtpd pass` entry) asks for DNSBL lookups and STARTTLS.
    'dnsblog   unix  - - n -     0 dnsblog',
    'tlsproxy  unix  - - n -     0 tlsproxy',
    ...(options.masterCf ?? []),
  ];
  return services.map((line) => `${line}\n`).join('');
}

/** The Maildir of a virtual mailbox, relative to virtual_mailbox_base (trailing slash: Maildir). */
export function mailboxPath(address: string): string {
  const { local, domain } = splitAddress(address);
  return `${domain}/${local}/`;
}

function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (at <= 0 || domain === '' || !/^[A-Za-z0-9._+-]+$/.test(local) || !/^[a-z0-9.-]+$/.test(domain)) {
    throw new HarnessUsageError(`postfix mailbox "${address}": expected user@domain (letters, digits, "._+-"; lower-case domain)`);
  }
  return { local, domain };
}
