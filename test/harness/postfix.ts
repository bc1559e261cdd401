import { chown, mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand, shellCommand, type CommandResult } from './command.js';
import { CommandFailedError, ComponentStartError, HarnessTimeoutError, HarnessUsageError } from './errors.js';
import { readTail, readTextIfPresent } from './log-tail.js';
import { maildirMessages, type MaildirMessage } from './maildir.js';
import { MAILBOX_USER, mailboxPath, mainCf, masterCf, postfixLayout, type PostfixLayout, type PostfixOptions } from './postfix-config.js';
import { freePort, tcpPortFree } from './ports.js';
import { startProcess, type ManagedProcess } from './processes.js';
import { readSmtpGreeting } from './smtp-greeting.js';
import { systemUser } from './system-users.js';
import { makeTempDir, removeTempDir } from './temp-dir.js';
import { waitFor } from './wait.js';

export type { PostfixOptions } from './postfix-config.js';

const MASTER = '/usr/lib/postfix/sbin/master';
const POSTFIX = '/usr/sbin/postfix';
const POSTCONF = '/usr/sbin/postconf';
const POSTQUEUE = '/usr/sbin/postqueue';

/** One message in the queue, as `postqueue -j` reports it. */
export interface QueuedMessage {
  queueName: string;
  queueId: string;
  arrivalTime: number;
  messageSize: number;
  sender: string;
  recipients: { address: string; delayReason?: string }[];
}

/**
 * Starts a private Postfix instance: its own config, queue and data directories and maillog
 * under a temp directory, master(8) in the foreground as our child, smtpd on a free 127.0.0.1
 * port. Resolves once that port sends its SMTP greeting; rejects with Postfix's own error text.
 */
export async function startPostfix(options: PostfixOptions = {}): Promise<PostfixInstance> {
  return PostfixInstance.start(options);
}

export class PostfixInstance implements PostfixLayout {
  readonly port: number;
  readonly dir: string;
  readonly configDir: string;
  readonly queueDir: string;
  readonly dataDir: string;
  readonly mailboxBase: string;
  readonly maillog: string;
  #master: ManagedProcess | undefined;

  static async start(options: PostfixOptions): Promise<PostfixInstance> {
    const instance = new PostfixInstance(postfixLayout(await makeTempDir('postfix'), await freePort()), options);
    try {
      await instance.install();
      await instance.startMaster();
    } catch (error) {
      await instance.stop();
      throw error;
    }
    return instance;
  }

  private constructor(
    layout: PostfixLayout,
    readonly options: PostfixOptions,
  ) {
    ({
      port: this.port,
      dir: this.dir,
      configDir: this.configDir,
      queueDir: this.queueDir,
      dataDir: this.dataDir,
      mailboxBase: this.mailboxBase,
      maillog: this.maillog,
    } = layout);
  }

  /** PID of the running master(8), or undefined when stopped. */
  get masterPid(): number | undefined {
    return this.#master?.status === null ? this.#master.pid : undefined;
  }

  /**
   * Writes main.cf and master.cf, the queue directory (`postfix check` fills it with its
   * subdirectories and data_directory) and the mailbox base, owned by the mailbox user because
   * virtual(8) creates the Maildirs as that user.
   */
  private async install(): Promise<void> {
    await mkdir(this.configDir);
    await writeFile(join(this.configDir, 'main.cf'), mainCf(this, this.options));
    await writeFile(join(this.configDir, 'master.cf'), masterCf(this, this.options));
    await mkdir(this.queueDir);
    await mkdir(this.mailboxBase);
    const { uid, gid } = systemUser(MAILBOX_USER);
    await chown(this.mailboxBase, uid, gid);
  }

  /** `postfix check` (creates the queue directories), then master(8) until the port greets. */
  private async startMaster(): Promise<void> {
    await this.backdateConfig();
    const check = await runCommand(POSTFIX, ['-c', this.configDir, 'check'], { terminal: true });
    if (check.exitCode !== 0) {
      throw new ComponentStartError(
        'postfix',
        `${shellCommand(POSTFIX, ['-c', this.configDir, 'check'])} failed with exit status ${check.exitCode}`,
        check.stdout + (await this.logSection()),
      );
    }
    const master = await startProcess(`postfix master (${this.port})`, MASTER, ['-c', this.configDir, '-d']);
    this.#master = master;
    try {
      await waitFor(
        `postfix: SMTP greeting on 127.0.0.1:${this.port}`,
        async () => {
          if (master.status !== null) {
            throw new ComponentStartError(
              'postfix',
              `master exited (${JSON.stringify(master.status)}) before 127.0.0.1:${this.port} greeted` +
                `${await this.busyListeners()}; master reports early failures such as a busy port only to syslog`,
              master.output() + (await this.logSection()),
            );
          }
          return readSmtpGreeting(this.port).catch(() => undefined);
        },
        { intervalMs: 25 },
      );
    } catch (error) {
      if (!(error instanceof HarnessTimeoutError)) throw error;
      throw new ComponentStartError(
        'postfix',
        `no SMTP greeting on 127.0.0.1:${this.port} within ${error.timeoutMs} ms`,
        master.output() + (await this.logSection()),
      );
    }
  }

  /** Runs postconf(1) on this instance's configuration (edits apply at restart()); resolves with its stdout. */
  async postconf(args: readonly string[]): Promise<string> {
    const result = await runCommand(POSTCONF, ['-c', this.configDir, ...args]);
    await this.backdateConfig();
    return succeeded(result, POSTCONF, args).stdout;
  }

  async readLog(): Promise<string> {
    return readTextIfPresent(this.maillog);
  }

  /**
   * Resolves with the log once it matches `pattern`; fails with the log's tail when it does not
   * in time. Postfix's daemons log through postlogd, so a line may land after the reply it goes with.
   */
  async waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string> {
    return waitFor(
      `postfix ${this.port}: a log line matching ${pattern}`,
      async () => {
        const log = await this.readLog();
        return pattern.test(log) ? log : undefined;
      },
      { ...(timeoutMs === undefined ? {} : { timeoutMs }), diagnostics: () => this.logSection() },
    );
  }

  /** Messages delivered to a mailbox given in options.mailboxes. */
  async maildirMessages(address: string): Promise<MaildirMessage[]> {
    if (!(this.options.mailboxes ?? []).includes(address)) {
      throw new HarnessUsageError(`postfix ${this.port}: "${address}" is not one of its mailboxes (${(this.options.mailboxes ?? []).join(', ')})`);
    }
    return maildirMessages(join(this.mailboxBase, mailboxPath(address)));
  }

  /** Resolves with the mailbox's messages once it holds at least `count`. */
  async waitForDelivery(address: string, count: number, timeoutMs?: number): Promise<MaildirMessage[]> {
    return waitFor(
      `postfix ${this.port}: ${count} message(s) delivered to ${address}`,
      async () => {
        const messages = await this.maildirMessages(address);
        return messages.length >= count ? messages : undefined;
      },
      {
        timeoutMs,
        intervalMs: 50,
        diagnostics: async () => `delivered: ${(await this.maildirMessages(address)).length}\nqueue: ${await this.queueSummary()}${await this.logSection()}`,
      },
    );
  }

  /**
   * Resolves once every smtpd session of the running master has ended (as many "disconnect from"
   * lines as "connect from" since its "daemon started"; a stopped master's sessions log no
   * disconnect): whatever those sessions got Postfix to accept is then in the queue or a mailbox,
   * so a test can assert that nothing was.
   */
  async waitForSessionsEnded(): Promise<void> {
    const count = (lines: string[], event: string): number => lines.filter((line) => new RegExp(`smtpd\\[\\d+\\]: ${event} from `).test(line)).length;
    await waitFor(
      `postfix ${this.port}: every smtpd session ended`,
      async () => {
        const lines = (await this.readLog()).split('\n');
        const running = lines.slice(lines.findLastIndex((line) => /master\[\d+\]: daemon started/.test(line)) + 1);
        return count(running, 'connect') === count(running, 'disconnect') ? true : undefined;
      },
      { intervalMs: 50, diagnostics: async () => this.logSection() },
    );
  }

  /** The queue, via `postqueue -j`. */
  async queue(): Promise<QueuedMessage[]> {
    const { stdout } = succeeded(await runCommand(POSTQUEUE, ['-c', this.configDir, '-j']), POSTQUEUE, ['-j']);
    return stdout
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map(parseQueueLine);
  }

  /** Resolves with the queue once `done(queue)` holds, e.g. a message reached the deferred queue. */
  async waitForQueue(what: string, done: (queue: QueuedMessage[]) => boolean, timeoutMs?: number): Promise<QueuedMessage[]> {
    return waitFor(
      `postfix ${this.port}: queue ${what}`,
      async () => {
        const queue = await this.queue();
        return done(queue) ? queue : undefined;
      },
      { timeoutMs, intervalMs: 50, diagnostics: async () => `queue: ${await this.queueSummary()}${await this.logSection()}` },
    );
  }

  /** Asks the queue manager to retry deferred mail now (`postqueue -f`). */
  async flush(): Promise<void> {
    succeeded(await runCommand(POSTQUEUE, ['-c', this.configDir, '-f']), POSTQUEUE, ['-f']);
  }

  /** Stops master(8) and its daemons, and removes the instance's directory. */
  async stop(): Promise<void> {
    await this.#master?.stop();
    await removeTempDir(this.dir);
  }

  /** Stops master(8) and starts it again with the (possibly changed) configuration. */
  async restart(): Promise<void> {
    await this.#master?.stop();
    await this.startMaster();
  }

  /**
   * Postfix re-reads a config file until it is a second old, which costs ~1.5 s per command
   * after an edit; dating the files back lets check, master and postconf read them at once.
   */
  private async backdateConfig(): Promise<void> {
    const aMinuteAgo = new Date(Date.now() - 60_000);
    for (const file of ['main.cf', 'master.cf']) await utimes(join(this.configDir, file), aMinuteAgo, aMinuteAgo);
  }

  private async queueSummary(): Promise<string> {
    return this.queue().then(
      (queue) => JSON.stringify(queue),
      (error: unknown) => `unavailable (${String(error)})`,
    );
  }

  /** The master.cf inet listeners another process holds (master's own are closed once it exited). */
  private async busyListeners(): Promise<string> {
    const busy = [];
    for (const [, host, port] of masterCf(this, this.options).matchAll(/^([\d.]+):(\d+)\s+inet\s/gm)) {
      if (!(await tcpPortFree(host!, Number(port)))) busy.push(`${host}:${port}`);
    }
    return busy.length === 0 ? '' : ` (in use by another process: ${busy.join(', ')})`;
  }

  private async logSection(): Promise<string> {
    return `\n[postfix maillog ${this.maillog}]\n${await readTail(this.maillog)}`;
  }
}

function succeeded(result: CommandResult, command: string, args: readonly string[]): CommandResult {
  if (result.exitCode !== 0) throw new CommandFailedError(shellCommand(command, args), result.exitCode, result.stderr + result.stdout);
  return result;
}

interface PostqueueJson {
  queue_name: string;
  queue_id: string;
  arrival_time: number;
  message_size: number;
  sender: string;
  recipients: { address: string; delay_reason?: string }[];
}

function parseQueueLine(line: string): QueuedMessage {
  const entry = JSON.parse(line) as PostqueueJson;
  return {
    queueName: entry.queue_name,
    queueId: entry.queue_id,
    arrivalTime: entry.arrival_time,
    messageSize: entry.message_size,
    sender: entry.sender,
    recipients: entry.recipients.map((recipient) => ({
      address: recipient.address,
      ...(recipient.delay_reason === undefined ? {} : { delayReason: recipient.delay_reason }),
    })),
  };
}
