/**
 * The pin store: the Noise keys each destination domain has proven, remembered across restarts
 * (trust on first use). One JSON file per domain under <state_dir>/pins/, named after the domain's
 * A-label, e.g. pins/example.org.json (the format: pin-file.ts).
 *
 * - Crash safety: each write is atomic (state-file.ts); a reader sees the old file or the new one.
 * - Several blackpony processes: each update reads, merges and writes under the domain's lock file
 *   (file-lock.ts), so a refresh never drops a key another process just added.
 * - Bounded: each key expires max-age after it was last seen; get() ignores expired keys and
 *   prune() deletes them, and the file once none is left.
 * - A pin file that cannot be read or parsed is a PinFileCorruptError, never "no pin": treating it
 *   as absent would silently downgrade the domain. `blackpony pins forget <domain>` clears it.
 */
import { base64 } from '@scure/base';
import { statSync, type Stats } from 'node:fs';
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { normalizeDomain } from '../crypto/domain-name.js';
import { X25519_KEY_LENGTH } from '../crypto/primitives.js';
import { errorMessage, isErrorCode } from '../error-message.js';
import { FileLockError, LOCK_STALE_MS, withFileLock } from './file-lock.js';
import { encodePinFile, parsePinFile, PinFileFormatError, type Pin, type PinnedKey } from './pin-file.js';
import { removeStaleTemporaryFiles, syncDirectory, writeStateFile } from './state-file.js';

/** What a pin is (pin-file.ts): part of the store's API. */
export type { Pin, PinnedKey } from './pin-file.js';

const DAY_MS = 86_400_000;

/**
 * A key refreshed less than this long ago, with an expiry at most this much short of the new one,
 * is not written again: a busy peer would otherwise cost a locked, fsynced write per message.
 */
export const PIN_REFRESH_MS = 3_600_000;

/** A stored pin, or why its file is unusable (list() reports both). */
export type PinListing = { domain: string; pin: Pin } | { domain: string; error: PinFileCorruptError };

export class PinStoreError extends Error {
  override readonly name: string = 'PinStoreError';
}

/** The domain name cannot name a pin file. */
export class PinDomainError extends PinStoreError {
  override readonly name = 'PinDomainError';
  constructor(
    readonly domain: string,
    reason: string,
  ) {
    super(`pin store: domain ${JSON.stringify(domain)}: ${reason}`);
  }
}

/** A pin file exists but cannot be used; the domain must be deferred until it is forgotten. */
export class PinFileCorruptError extends PinStoreError {
  override readonly name = 'PinFileCorruptError';
  constructor(
    readonly domain: string,
    readonly path: string,
    readonly reason: string,
  ) {
    super(`pin file ${path}: ${reason} (clear it with: blackpony pins forget ${domain})`);
  }
}

export interface PinStore {
  readonly directory: string;
  /** The domain's unexpired keys, or null when it has none. Throws PinFileCorruptError. */
  get(domain: string, now?: Date): Promise<Pin | null>;
  /**
   * Records a successful delivery that proved `key`: adds it (first seen now) or refreshes it, and
   * sets its expiry to now + maxAgeDays (at most PIN_REFRESH_MS short of it: a fresh enough key is
   * left as stored). Other keys stay until they expire. `sealedRelayTo`: the recipient the server
   * announced the sealed relay for in this handshake, stored with the key; absent: none (any
   * earlier one is dropped). Returns the new pin.
   */
  pin(domain: string, key: Uint8Array, maxAgeDays: number, now?: Date, sealedRelayTo?: string): Promise<Pin>;
  /** Deletes the domain's pin file, corrupt or not; false when there was none. */
  forget(domain: string): Promise<boolean>;
  /** Every stored pin, expired keys included, sorted by domain. */
  list(): Promise<PinListing[]>;
  /**
   * Deletes expired keys, files left without keys, and stale temporary files of crashed writers;
   * returns the domains whose file was deleted.
   */
  prune(now?: Date): Promise<string[]>;
}

/** The domain in lower-case ASCII (A-labels), checked to be a plain host name: safe as a file name. */
export function pinDomain(domain: string): string {
  const ascii = normalizeDomain(domain);
  if (ascii === null) throw new PinDomainError(domain, 'not a valid domain name');
  return ascii;
}

export function openPinStore(stateDir: string): Promise<PinStore> {
  // The directory is made on the first write, so that reading (e.g. `pins list`) changes nothing.
  return Promise.resolve(new FilePinStore(join(stateDir, 'pins')));
}

/** Parsed pin files kept in memory; beyond this many domains the memo starts over. */
const MEMO_LIMIT = 10_000;

/** A parsed pin file and the identity of the file it came from. */
interface Memo {
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  pin: Pin;
}

class FilePinStore implements PinStore {
  /**
   * Every delivery reads its domain's pin (policy, then the refresh); a stat() that finds the same
   * file (writes rename a new one into place, so any change gives a new inode or times) saves
   * reading and parsing it again. Other processes' writes are seen at the next read, as before.
   */
  private readonly memo = new Map<string, Memo>();

  constructor(readonly directory: string) {}

  private path(domain: string): string {
    return join(this.directory, `${domain}.json`);
  }

  async get(domain: string, now: Date = new Date()): Promise<Pin | null> {
    const name = pinDomain(domain);
    const pin = await this.read(name);
    if (pin === null) return null;
    const keys = unexpired(pin.keys, now);
    return keys.length === 0 ? null : { domain: name, keys };
  }

  async pin(domain: string, key: Uint8Array, maxAgeDays: number, now: Date = new Date(), sealedRelayTo?: string): Promise<Pin> {
    const name = pinDomain(domain);
    if (key.length !== X25519_KEY_LENGTH) throw new PinStoreError(`pin store: ${name}: expected a ${X25519_KEY_LENGTH}-byte key, got ${key.length} bytes`);
    if (!(maxAgeDays > 0) || !Number.isFinite(maxAgeDays))
      throw new PinStoreError(`pin store: ${name}: max-age must be a positive number of days, got ${maxAgeDays}`);
    const stored = await this.read(name);
    if (stored !== null && refreshedLately(stored, key, now.getTime() + maxAgeDays * DAY_MS, now, sealedRelayTo))
      return { domain: name, keys: unexpired(stored.keys, now) };
    return this.locked(name, async () => {
      const current = await this.read(name);
      const expiresAt = new Date(now.getTime() + maxAgeDays * DAY_MS);
      const encoded = base64.encode(key);
      const live = unexpired(current?.keys ?? [], now);
      const previous = live.find((k) => base64.encode(k.key) === encoded);
      const keys = live.filter((k) => k !== previous);
      keys.push({
        key: Uint8Array.from(key),
        firstSeen: previous?.firstSeen ?? now,
        lastSeen: now,
        expiresAt,
        ...(sealedRelayTo === undefined ? {} : { sealedRelayTo }),
      });
      const pin = { domain: name, keys };
      await this.write(pin);
      return pin;
    });
  }

  async forget(domain: string): Promise<boolean> {
    const name = pinDomain(domain);
    return this.locked(name, async () => {
      try {
        await unlink(this.path(name));
      } catch (error) {
        if (isErrorCode(error, 'ENOENT')) return false;
        throw error;
      }
      await syncDirectory(this.directory);
      return true;
    });
  }

  async list(): Promise<PinListing[]> {
    let files: string[];
    try {
      files = await readdir(this.directory);
    } catch (error) {
      if (isErrorCode(error, 'ENOENT')) return [];
      throw error;
    }
    const names = files
      .filter((file) => file.endsWith('.json') && !file.startsWith('.'))
      .map((file) => file.slice(0, -'.json'.length))
      .sort();
    const listings: PinListing[] = [];
    for (const domain of names) {
      try {
        const pin = await this.read(domain);
        if (pin !== null) listings.push({ domain, pin });
      } catch (error) {
        if (!(error instanceof PinFileCorruptError)) throw error;
        listings.push({ domain, error });
      }
    }
    return listings;
  }

  async prune(now: Date = new Date()): Promise<string[]> {
    const removed: string[] = [];
    for (const listing of await this.list()) {
      if (!('pin' in listing)) continue; // corrupt files wait for the operator
      if (unexpired(listing.pin.keys, now).length === listing.pin.keys.length) continue;
      const domain = listing.domain;
      const deleted = await this.locked(domain, async () => {
        const current = await this.read(domain);
        if (current === null) return false;
        const keys = unexpired(current.keys, now);
        if (keys.length > 0) {
          await this.write({ domain, keys });
          return false;
        }
        await unlink(this.path(domain));
        await syncDirectory(this.directory);
        return true;
      });
      if (deleted) removed.push(domain);
    }
    await removeStaleTemporaryFiles(this.directory, LOCK_STALE_MS);
    return removed;
  }

  /** The stored pin (expired keys included), null when there is no file. */
  private async read(domain: string): Promise<Pin | null> {
    const path = this.path(domain);
    const unreadable = (error: unknown): PinFileCorruptError => new PinFileCorruptError(domain, path, `cannot be read: ${errorMessage(error)}`);
    let text: string;
    let info: Stats;
    try {
      // Synchronous: a local stat() takes microseconds, its promise and thread-pool trip about a
      // hundred times longer, twice per delivery.
      info = statSync(path);
      const memo = this.memo.get(domain);
      if (memo !== undefined && memo.ino === info.ino && memo.size === info.size && memo.mtimeMs === info.mtimeMs && memo.ctimeMs === info.ctimeMs)
        return memo.pin;
      text = await readFile(path, 'utf8');
    } catch (error) {
      this.memo.delete(domain);
      if (isErrorCode(error, 'ENOENT')) return null;
      throw unreadable(error);
    }
    this.memo.delete(domain);
    // Parsed from what was read after the stat: a file replaced in between has another inode,
    // so the next read reads again.
    let pin: Pin;
    try {
      pin = parsePinFile(domain, text);
    } catch (error) {
      if (error instanceof PinFileFormatError) throw new PinFileCorruptError(domain, path, error.message);
      throw error;
    }
    if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
    this.memo.set(domain, { ino: info.ino, size: info.size, mtimeMs: info.mtimeMs, ctimeMs: info.ctimeMs, pin });
    return pin;
  }

  private async write(pin: Pin): Promise<void> {
    await writeStateFile(this.directory, `${pin.domain}.json`, encodePinFile(pin));
  }

  /** Runs `update` holding the domain's lock file. */
  private async locked<T>(domain: string, update: () => Promise<T>): Promise<T> {
    try {
      return await withFileLock(this.directory, domain, update);
    } catch (error) {
      if (error instanceof FileLockError) throw new PinStoreError(`pin store: ${domain}: ${error.message}`);
      throw error;
    }
  }
}

function unexpired(keys: PinnedKey[], now: Date): PinnedKey[] {
  return keys.filter((k) => k.expiresAt.getTime() > now.getTime());
}

/**
 * Whether `key` is pinned, was last seen within PIN_REFRESH_MS and expires within that of
 * `expiresAt`, either way: a shorter max-age (a domain preparing to leave) is written at once, and
 * so is a change of the sealed relay the server announced.
 */
function refreshedLately(pin: Pin, key: Uint8Array, expiresAt: number, now: Date, sealedRelayTo: string | undefined): boolean {
  const encoded = base64.encode(key);
  const stored = unexpired(pin.keys, now).find((k) => base64.encode(k.key) === encoded);
  if (stored === undefined || stored.sealedRelayTo !== sealedRelayTo) return false;
  const age = now.getTime() - stored.lastSeen.getTime();
  return age >= 0 && age < PIN_REFRESH_MS && Math.abs(stored.expiresAt.getTime() - expiresAt) < PIN_REFRESH_MS;
}
