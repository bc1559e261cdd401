/**
 * Messages that came through a tunnel with an XPONY-ID and that Postfix accepted, remembered so
 * that a retry (the peer never heard our 250) is answered without a second copy
 * (docs/PROTOCOL.md section 5, "A retry answered once").
 *
 * A message is remembered by a hash of its identity: the peer's key fingerprint, its XPONY-ID,
 * the envelope sender and the recipients Postfix accepted. So one peer can never suppress
 * another's mail, and a retry to other recipients is another message.
 *
 * On disk: one append-only file per UTC day in the store's folder, one line per message
 * (`<ms since epoch> <hash> <Postfix's reply>`), each written and fsynced before the client hears
 * the 250. Messages accepted while a write is under way wait for it together and then go down in
 * one write and one fsync (a group commit): an fsync takes milliseconds, and one per message in a
 * row held every session of a busy inbound back behind the others'. A line torn by a crash is skipped when read. Files older than the window are deleted;
 * in memory at most `maxEntries` are kept, the oldest forgotten first.
 *
 * Several processes may share the folder (the daemon's workers, src/daemon/workers.ts): each
 * appends whole lines, and before a lookup reads what the others appended since it last looked,
 * so a retry that reaches another worker than the first copy is still answered without a second.
 */
import { createHash } from 'node:crypto';
import { fstatSync, statSync } from 'node:fs';
import { mkdir, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalVerdictTurns, type VerdictTurns } from './verdict-turns.js';

const DAY_MS = 86_400_000;
const DAY_FILE = /^(\d{4}-\d{2}-\d{2})\.log$/;
const LINE = /^(\d{1,15}) ([A-Za-z0-9_-]{43}) (.*)$/;
/** Postfix's reply text is kept to this length ("2.0.0 Ok: queued as <id>" is about 40). */
const MAX_REPLY_TEXT = 200;
/** A day's file is read this much at a time (a line is at most about 1 KiB). */
const READ_PIECE = 1024 * 1024;

export interface MessageIdentity {
  /** The fingerprint of the peer's static key, proven in the tunnel's handshake. */
  peer: string;
  /** Its XPONY-ID for the message. */
  id: string;
  sender: string;
  /** The recipients Postfix accepted, in any order. */
  recipients: readonly string[];
}

export interface Acceptance {
  /** When Postfix accepted it (ms since epoch). */
  at: number;
  /** The text of Postfix's 250 (enhanced code included). */
  reply: string;
}

export interface AcceptedMessagesOptions {
  /** The store's own folder (created if missing). */
  dir: string;
  /** How long a message is remembered after its acceptance. */
  windowMs: number;
  /** Most messages remembered at once. */
  maxEntries: number;
  /**
   * A message that could not be written down: Postfix has it, so the client still hears 250 (a
   * 4xx would bring the second copy this store is for); only its retry would not be recognised.
   */
  onError: (error: Error) => void;
  /** Whose turn it is to pass a message's end to Postfix; with workers, the primary's (default: this process's). */
  turns?: VerdictTurns;
  now?: () => number;
}

/** A message's turn to pass its end to Postfix, or the acceptance of its first copy (accepted meanwhile). */
export type BeforeVerdict = { release: () => void } | { earlier: Acceptance };

/** A line to write: a message's hash and its acceptance. */
interface Remembered {
  key: string;
  acceptance: Acceptance;
}

export class AcceptedMessages {
  private readonly entries = new Map<string, Acceptance>();
  private readonly now: () => number;
  /** The current day's file, open for appending. */
  private file: { day: string; handle: FileHandle } | undefined;
  /** Appends run one after another. */
  private appending: Promise<void> = Promise.resolve();
  /** The lines for the append after the one under way, filled until it starts. */
  private waiting: Remembered[] | undefined;
  /** How far each day's file has been read (bytes, whole lines): the rest is other processes' news. */
  private readonly readUpTo = new Map<string, number>();
  /**
   * This process's append under way: its day, where the file's read part ended when it started,
   * its length, and its write, settled once the read mark was moved past it (or left, when
   * another process's lines came too).
   */
  private ownWrite: { day: string; from: number; length: number; written: Promise<void> } | undefined;
  private readonly turns: VerdictTurns;
  /** The first day this store read: earlier files were read whole at open. */
  private firstDay = '';

  private constructor(private readonly options: AcceptedMessagesOptions) {
    this.now = options.now ?? Date.now;
    this.turns = options.turns ?? new LocalVerdictTurns();
  }

  /** Reads what is remembered from the folder (deleting days past the window). */
  static async open(options: AcceptedMessagesOptions): Promise<AcceptedMessages> {
    const store = new AcceptedMessages(options);
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    const oldest = store.now() - options.windowMs;
    const days = (await readdir(options.dir))
      .map((name) => DAY_FILE.exec(name)?.[1])
      .filter((day) => day !== undefined)
      .sort();
    for (const day of days) {
      if (Date.parse(`${day}T00:00:00Z`) + DAY_MS <= oldest) {
        await unlink(join(options.dir, `${day}.log`));
        continue;
      }
      await store.readNews(day);
    }
    store.firstDay = dayOf(store.now());
    return store;
  }

  /** The hash a message is remembered by. */
  static key(identity: MessageIdentity): string {
    const fields = [identity.peer, identity.id, identity.sender, ...[...identity.recipients].sort()];
    return createHash('sha256').update(fields.join('\0'), 'utf8').digest('base64url');
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The first acceptance of this message, if it is remembered and within the window, by this
   * process or another sharing the folder. Reading the others' lines costs a stat() per day of the
   * window since this store opened (earlier days hold only lines past the window); when that fails
   * (onError), what this process knows answers.
   */
  async lookup(identity: MessageIdentity): Promise<Acceptance | undefined> {
    const key = AcceptedMessages.key(identity);
    if (!this.entries.has(key)) {
      const windowStart = dayOf(this.now() - this.options.windowMs);
      const first = this.firstDay > windowStart ? this.firstDay : windowStart;
      try {
        for (let day = first; day <= dayOf(this.now()); day = dayOf(Date.parse(`${day}T00:00:00Z`) + DAY_MS)) await this.readNews(day);
      } catch (error) {
        this.options.onError(error instanceof Error ? error : new Error(String(error)));
      }
    }
    const acceptance = this.entries.get(key);
    return acceptance !== undefined && acceptance.at > this.now() - this.options.windowMs ? acceptance : undefined;
  }

  /**
   * Just before a message's end goes to Postfix, where a second copy would be queued: the first
   * acceptance if the same message was accepted meanwhile (its end must then not be sent), else a
   * release, to call once its verdict is read and, if accepted, remembered. A same message whose
   * verdict another transaction awaits is waited for first (verdict-turns.ts): a retry that comes
   * while the first copy is being judged (its client lost the tunnel after the end) would
   * otherwise find nothing remembered yet, and both would be queued.
   */
  async beforeVerdict(identity: MessageIdentity): Promise<BeforeVerdict> {
    const release = await this.turns.take(AcceptedMessages.key(identity));
    // The turn before this one ended after its remember() was on disk: lookup() reads it.
    const earlier = await this.lookup(identity);
    if (earlier === undefined) return { release };
    release();
    return { earlier };
  }

  /**
   * Reads the whole lines of a day's file past what was read of it (none if there is no such
   * file), READ_PIECE octets at a time: a busy day's file is read at open, and held whole, with its
   * text and its lines, it took several times its size at once.
   */
  private async readNews(day: string): Promise<void> {
    const path = join(this.options.dir, `${day}.log`);
    let size = fileSize(path);
    let from = this.readUpTo.get(day) ?? 0;
    const own = this.ownWrite;
    if (own !== undefined && own.day === day && own.from === from && size === from + own.length) {
      // Grown by exactly the lines this process is appending: most likely they landed and the
      // append has not yet moved the read mark past them. Its write's end tells (append()).
      await own.written;
      size = fileSize(path);
      from = this.readUpTo.get(day) ?? 0;
    }
    if (size <= from) return;
    const handle = await open(path, 'r');
    try {
      const piece = Buffer.allocUnsafe(Math.min(READ_PIECE, size - from));
      while (from < size) {
        const { bytesRead } = await handle.read(piece, 0, Math.min(piece.length, size - from), from);
        if (bytesRead === 0) break;
        // A line still being written is read once it is whole; a whole piece without a line end
        // is no line of ours (they are far shorter), and is passed over.
        const whole = piece.subarray(0, bytesRead).lastIndexOf(0x0a) + 1;
        if (whole === 0 && bytesRead < READ_PIECE) break;
        this.takeLines(piece.subarray(0, whole));
        from += whole === 0 ? bytesRead : whole;
        this.advanceReadMark(day, from);
      }
    } finally {
      await handle.close();
    }
  }

  /** Keeps the acceptances that whole `lines` of a day's file hold, within the window and maxEntries. */
  private takeLines(lines: Buffer): void {
    const oldest = this.now() - this.options.windowMs;
    for (const line of lines.toString('utf8').split('\n').slice(0, -1)) {
      const match = LINE.exec(line);
      if (match === null || Number(match[1]) <= oldest || this.entries.has(match[2]!)) continue;
      const acceptance = { at: Number(match[1]), reply: match[3]! };
      // Full, one older than every kept entry is the one to forget (this process's own, read again).
      const first = this.entries.values().next().value;
      if (this.entries.size >= this.options.maxEntries && first !== undefined && acceptance.at < first.at) continue;
      this.add(match[2]!, acceptance);
    }
  }

  /**
   * Remembers Postfix's acceptance; resolves once it is on disk (written and fsynced), or failed to
   * be (onError). This process's lookups know it at once: Postfix's 250 is a fact before the disk
   * has it, and a retry may come while the append waits behind an earlier one's fsync (the client
   * lost our reply: a second copy if the retry were relayed).
   */
  remember(identity: MessageIdentity, reply: string): Promise<void> {
    const key = AcceptedMessages.key(identity);
    const acceptance = { at: this.now(), reply: reply.replace(/[\r\n]/g, ' ').slice(0, MAX_REPLY_TEXT) };
    this.add(key, acceptance);
    if (this.waiting === undefined) {
      const batch: Remembered[] = [];
      this.waiting = batch;
      this.appending = this.appending
        .then(() => {
          this.waiting = undefined; // from here on, the next append's
          return this.append(batch);
        })
        .catch((error: unknown) => {
          void this.file?.handle.close().catch(() => undefined);
          this.file = undefined; // reopened for the next one
          this.options.onError(error instanceof Error ? error : new Error(String(error)));
        });
    }
    this.waiting.push({ key, acceptance });
    // The promise of the append this line waits for.
    return this.appending;
  }

  async close(): Promise<void> {
    await this.appending;
    await this.file?.handle.close();
    this.file = undefined;
  }

  private add(key: string, acceptance: Acceptance): void {
    this.entries.delete(key);
    this.entries.set(key, acceptance);
    while (this.entries.size > this.options.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  /**
   * Writes the lines in one append to the day of the last one (a line a little early in the next
   * day's file is kept a little longer, never shorter). They are remembered once in the file, where
   * other workers' lookups find them, and need no reading back: when the file grew by exactly them
   * since it was last read, the next lookup reads on from their end. Had another process appended
   * in between, the mark stays, and both are read. A lookup that finds the file grown by exactly
   * their length while the write is under way waits for it (readNews()) rather than read them: the
   * growth may also be another process's line of that length, with ours still to land.
   */
  private async append(batch: readonly Remembered[]): Promise<void> {
    const day = dayOf(batch.at(-1)!.acceptance.at);
    if (this.file?.day !== day) await this.startDay(day);
    const { handle } = this.file!;
    const lines = Buffer.from(batch.map(({ key, acceptance }) => `${acceptance.at} ${key} ${acceptance.reply}\n`).join(''), 'utf8');
    const mark = this.readUpTo.get(day) ?? 0;
    let written!: () => void;
    this.ownWrite = { day, from: mark, length: lines.length, written: new Promise((resolve) => (written = resolve)) };
    try {
      await handle.appendFile(lines);
      // Synchronous, as in fileSize().
      let size: number | undefined;
      try {
        size = fstatSync(handle.fd).size;
      } catch {
        // Left undefined: the lines are read back.
      }
      if (size === mark + lines.length) this.advanceReadMark(day, size);
    } finally {
      this.ownWrite = undefined;
      written();
    }
    await handle.datasync();
  }

  /** Moves a day's read mark forward to `offset` (never back: two reads may end in either order). */
  private advanceReadMark(day: string, offset: number): void {
    if (offset > (this.readUpTo.get(day) ?? 0)) this.readUpTo.set(day, offset);
  }

  /** A new day's file (its folder entry fsynced too), and the days past the window deleted. */
  private async startDay(day: string): Promise<void> {
    await this.file?.handle.close();
    this.file = undefined;
    const path = join(this.options.dir, `${day}.log`);
    const handle = await open(path, 'a', 0o600);
    this.file = { day, handle };
    // A line torn by a crash is ended, so that it does not swallow the next one.
    if (!(await endsLine(path))) await handle.appendFile('\n');
    const dir = await open(this.options.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    const oldest = this.now() - this.options.windowMs;
    for (const name of await readdir(this.options.dir)) {
      const old = DAY_FILE.exec(name)?.[1];
      if (old !== undefined && Date.parse(`${old}T00:00:00Z`) + DAY_MS <= oldest) await unlink(join(this.options.dir, name));
    }
  }
}

/**
 * A file's size, 0 when it does not exist. Synchronous: a local stat() takes microseconds, its
 * promise and thread-pool trip (two thread switches) far longer, on every lookup.
 */
function fileSize(path: string): number {
  return statSync(path, { throwIfNoEntry: false })?.size ?? 0;
}

/** The UTC day of a time, as its file is named. */
function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Whether a file is empty or ends with a line end. */
async function endsLine(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size === 0) return true;
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    await handle.close();
  }
}
