/**
 * XPONY seen at a domain's MX hosts: how a domain without a `_pony` record that runs blackpony is
 * still found, so that its mail goes through the tunnel from then on (opportunistic upgrade).
 *
 * A sighting is learned from the EHLO reply of a domain's MX host, in any session blackpony
 * makes to it or in a background probe (connect, EHLO, QUIT; no mail) of a domain that the
 * transport lookup routed to Postfix. It expires after a while, so a domain that stops running
 * blackpony goes back to Postfix; an MX seen without XPONY ends the sighting at once.
 *
 * Sightings are a hint for routing, not evidence for a key: the tunnel's key is then judged by the
 * delivery policy as for any opportunistic domain. Stored in the state directory
 * (`xpony-sightings.json`), so a restart keeps them.
 */
import { readFile } from 'node:fs/promises';
import { offeredVersions } from '../xpony/index.js';
import { SmtpClient } from '../smtp/index.js';
import { resolveNextHops, type RoutingOptions } from './routing.js';
import { writeStateFile } from './state-file.js';

export const SIGHTINGS_FILE = 'xpony-sightings.json';
const FILE_VERSION = 1;

export interface SightingsOptions {
  stateDir: string;
  /** How long a sighting lasts, in ms. */
  lifetimeMs: number;
  /** A domain probed without finding XPONY is not probed again before this, in ms. */
  reprobeMs: number;
  /** For background probes: how to find a domain's MX hosts, and the name we EHLO with. */
  routing: RoutingOptions;
  hostName: string;
  probeTimeoutMs: number;
  /** Probes running at once, and waiting at most; more are dropped (the next lookup asks again). */
  concurrency?: number;
  maxQueued?: number;
  /** Domains remembered at most (sightings and recent probes each). */
  maxEntries?: number;
  /** Told of each change: a domain seen, or seen no more. */
  onChange?: (domain: string, seen: boolean) => void;
  /** Told when the file cannot be written (the sightings stay in memory). */
  onError?: (error: Error) => void;
  now?: () => number;
}

const DEFAULTS = { concurrency: 4, maxQueued: 1000, maxEntries: 100_000 };

export class Sightings {
  /** domain -> when its sighting expires (ms since the epoch). */
  private readonly seenUntil = new Map<string, number>();
  /** domain -> when it was last probed (or queued for a probe). */
  private readonly probed = new Map<string, number>();
  private readonly queue: string[] = [];
  private running = 0;
  private saving: Promise<void> = Promise.resolve();
  private dirty = false;
  /** Callers of idle() waiting for the probes to end. */
  private waiting: (() => void)[] = [];

  private constructor(private readonly options: SightingsOptions) {}

  /** Opens the store; a missing or unreadable file starts it empty (sightings are only hints). */
  static async open(options: SightingsOptions): Promise<Sightings> {
    const sightings = new Sightings(options);
    try {
      const stored = JSON.parse(await readFile(`${options.stateDir}/${SIGHTINGS_FILE}`, 'utf8')) as { version?: unknown; seen?: unknown };
      if (stored.version === FILE_VERSION && typeof stored.seen === 'object' && stored.seen !== null) {
        for (const [domain, until] of Object.entries(stored.seen as Record<string, unknown>)) {
          if (typeof until === 'number' && until > sightings.now()) sightings.seenUntil.set(domain, until);
        }
      }
    } catch {
      // Nothing stored yet, or a damaged file: it is rewritten at the next change.
    }
    return sightings;
  }

  has(domain: string): boolean {
    const until = this.seenUntil.get(domain);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.seenUntil.delete(domain);
    return false;
  }

  /** What an EHLO reply of one of `domain`'s MX hosts said (its keyword lines, after the first line). */
  learn(domain: string, ehloKeywords: readonly string[]): void {
    const offered = offeredVersions(ehloKeywords).length > 0;
    const was = this.has(domain);
    if (offered) {
      this.seenUntil.delete(domain); // re-inserted last: the oldest go first when the table is full
      this.seenUntil.set(domain, this.now() + this.options.lifetimeMs);
      trim(this.seenUntil, this.options.maxEntries ?? DEFAULTS.maxEntries);
    } else {
      this.seenUntil.delete(domain);
    }
    if (offered !== was) this.options.onChange?.(domain, offered);
    this.save();
  }

  /** Probes `domain` in the background unless it was probed lately or the queue is full. */
  consider(domain: string): void {
    const now = this.now();
    const last = this.probed.get(domain);
    if (last !== undefined && now - last < this.options.reprobeMs) return;
    if (this.queue.length >= (this.options.maxQueued ?? DEFAULTS.maxQueued)) return;
    this.probed.delete(domain);
    this.probed.set(domain, now);
    trim(this.probed, this.options.maxEntries ?? DEFAULTS.maxEntries);
    this.queue.push(domain);
    this.pump();
  }

  /** Resolves once every probe queued so far has finished and the file is written (tests, stop). */
  async idle(): Promise<void> {
    if (this.running > 0 || this.queue.length > 0) await new Promise<void>((resolve) => this.waiting.push(resolve));
    await this.saving;
  }

  private pump(): void {
    while (this.running < (this.options.concurrency ?? DEFAULTS.concurrency) && this.queue.length > 0) {
      const domain = this.queue.shift()!;
      this.running++;
      void this.probe(domain).finally(() => {
        this.running--;
        this.pump();
      });
    }
    if (this.running === 0 && this.queue.length === 0) for (const resolve of this.waiting.splice(0)) resolve();
  }

  /** EHLO at the domain's first reachable MX host; what it offers is learned. Failures teach nothing. */
  private async probe(domain: string): Promise<void> {
    const routing = await resolveNextHops(domain, this.options.routing).catch(() => undefined);
    if (routing?.kind !== 'hops') return;
    for (const hop of routing.hops) {
      for (const address of hop.addresses) {
        let client: SmtpClient | undefined;
        try {
          client = await SmtpClient.open({ host: address, port: hop.port, timeoutMs: this.options.probeTimeoutMs, label: hop.host });
          // Our own MX: the domain is received here, and is no destination for blackpony's outbound.
          if (greetingName(client.greeting.lines[0]) === this.options.hostName.toLowerCase()) return;
          if (client.greeting.code !== 220) continue;
          const ehlo = await client.command(`EHLO ${this.options.hostName}`);
          if (ehlo.code !== 250) continue;
          this.learn(domain, ehlo.lines.slice(1));
          return;
        } catch {
          // The next address.
        } finally {
          client?.quit();
        }
      }
    }
  }

  /** Writes the file; writes requested while one runs are folded into one more. */
  private save(): void {
    if (this.dirty) return;
    this.dirty = true;
    this.saving = this.saving.then(async () => {
      this.dirty = false;
      const seen: Record<string, number> = {};
      for (const [domain, until] of this.seenUntil) if (until > this.now()) seen[domain] = until;
      await writeStateFile(this.options.stateDir, SIGHTINGS_FILE, `${JSON.stringify({ version: FILE_VERSION, seen })}\n`).catch((error: unknown) =>
        this.options.onError?.(error instanceof Error ? error : new Error(String(error))),
      );
    });
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}

/** The host name a 220 greeting starts with, lower-case. */
function greetingName(line: string | undefined): string {
  return (line ?? '').split(' ')[0]!.toLowerCase();
}

function trim(map: Map<string, number>, max: number): void {
  for (const oldest of map.keys()) {
    if (map.size <= max) return;
    map.delete(oldest);
  }
}
