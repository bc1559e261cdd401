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
 * delivery policy as for any opportunistic domain. Kept in a table (sightings-table.ts) and its
 * file in the state directory, so a restart keeps them. With workers, a sighting learned in one
 * is passed to all (shared-table.ts), so that every worker routes a domain the same way and
 * probes it once.
 */
import { offeredVersions } from '../xpony/index.js';
import { SmtpClient } from '../smtp/index.js';
import { resolveNextHops, type RoutingOptions } from './routing.js';
import { joinSharedTable, type SharedTable } from './shared-table.js';
import { SightingsTable, type SightingChange } from './sightings-table.js';

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
  /** With workers: the table all of them learn into; the primary then writes the file, not this process. */
  shared?: SharedTable<SightingChange>;
  /** Told of each change: a domain seen, or seen no more; `here`: learned by this process. */
  onChange?: (domain: string, seen: boolean, here: boolean) => void;
  /** Told when the file cannot be written (the sightings stay in memory). */
  onError?: (error: Error) => void;
  now?: () => number;
}

const DEFAULTS = { concurrency: 4, maxQueued: 1000 };

export class Sightings {
  private readonly queue: string[] = [];
  private running = 0;
  /** Callers of idle() waiting for the probes to end. */
  private waiting: (() => void)[] = [];

  private constructor(
    private readonly options: SightingsOptions,
    private readonly table: SightingsTable,
  ) {}

  /** Opens the table: with workers what the others share, else the file. */
  static async open(options: SightingsOptions): Promise<Sightings> {
    const { shared, stateDir, maxEntries, onError, now } = options;
    const table = SightingsTable.empty({ stateDir, persist: shared === undefined, maxEntries, onError, now });
    const sightings = new Sightings(options, table);
    const joined =
      shared !== undefined &&
      (await joinSharedTable(
        shared,
        (change) => sightings.applied(change, false),
        (changes) => table.restore(changes),
      ));
    // One process, or a worker whose primary did not answer: the file.
    if (!joined) await table.load();
    return sightings;
  }

  has(domain: string): boolean {
    return this.table.has(domain);
  }

  /** What an EHLO reply of one of `domain`'s MX hosts said (its keyword lines, after the first line). */
  learn(domain: string, ehloKeywords: readonly string[]): void {
    const offered = offeredVersions(ehloKeywords).length > 0;
    this.change({ domain, seenUntil: offered ? this.now() + this.options.lifetimeMs : null });
  }

  /** Probes `domain` in the background unless it was probed lately or the queue is full. */
  consider(domain: string): void {
    const now = this.now();
    const last = this.table.lastProbed(domain);
    if (last !== undefined && now - last < this.options.reprobeMs) return;
    if (this.queue.length >= (this.options.maxQueued ?? DEFAULTS.maxQueued)) return;
    this.change({ domain, probedAt: now });
    this.queue.push(domain);
    this.pump();
  }

  /** Resolves once every probe queued so far has finished and the file is written (tests, stop). */
  async idle(): Promise<void> {
    if (this.running > 0 || this.queue.length > 0) await new Promise<void>((resolve) => this.waiting.push(resolve));
    await this.table.saved();
  }

  /** A change learned here: applied at once (this process's next lookup follows it) and shared. */
  private change(change: SightingChange): void {
    this.applied(change, true);
    this.options.shared?.publish(change);
  }

  private applied(change: SightingChange, here: boolean): void {
    if (this.table.apply(change) && 'seenUntil' in change) this.options.onChange?.(change.domain, change.seenUntil !== null, here);
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

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}

/** The host name a 220 greeting starts with, lower-case. */
function greetingName(line: string | undefined): string {
  return (line ?? '').split(' ')[0]!.toLowerCase();
}
