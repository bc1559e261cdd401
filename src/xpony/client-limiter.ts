/**
 * Counts per client (an IPv4 address, or an IPv6 network: clientKey), as Postfix's anvil does: simultaneous connections, connections per
 * time unit (a fixed window from the first one, refused connections included, so a client that
 * keeps hammering stays refused) and pending XPONY handshakes. Exempt addresses are not counted.
 *
 * Memory is bounded: an address is remembered while it has a connection open or its rate window
 * runs, and at most MAX_TRACKED_CLIENTS of them; past that, the oldest idle ones are forgotten
 * (their rate starts again from zero: open rather than refuse).
 */
import { BlockList, isIP } from 'node:net';
import { CONNECTION_RATE_WINDOW_MS, MAX_TRACKED_CLIENTS, type ClientLimits, type LimitName } from './limits.js';

/** An address range as written in a setting: an IP address, or CIDR like 192.0.2.0/24 or 2001:db8::/32. */
export interface AddressRange {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parses an address range; a string says what is wrong. */
export function parseAddressRange(text: string): AddressRange | string {
  const [address = '', prefixText, ...rest] = text.split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return 'not an IP address or CIDR range';
  const bits = version === 4 ? 32 : 128;
  if (prefixText === undefined) return { address, prefix: bits, family: version === 4 ? 'ipv4' : 'ipv6' };
  const prefix = /^[0-9]{1,3}$/.test(prefixText) ? Number(prefixText) : -1;
  if (prefix < 0 || prefix > bits) return `prefix length not in 0-${bits}`;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** The 16-bit groups of an IPv6 address (already known to be one): `::` expanded, a dotted IPv4 tail as two groups. */
function ipv6Groups(address: string): number[] {
  const text = address.split('%')[0]!.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a: string, b: string, c: string, d: string) => {
    const group = (high: string, low: string): string => ((Number(high) << 8) | Number(low)).toString(16);
    return `${group(a, b)}:${group(c, d)}`;
  });
  const [head = '', tail] = text.split('::');
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  return [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
}

/** What a client address is counted under: an IPv4 address itself; an IPv6 address's network of `ipv6PrefixLength` bits. */
export function clientKey(address: string, ipv6PrefixLength: number): string {
  if (isIP(address) !== 6 || ipv6PrefixLength >= 128) return address;
  const network = ipv6Groups(address).map((group, index) => {
    const bits = Math.min(16, Math.max(0, ipv6PrefixLength - 16 * index));
    return group & (0xffff << (16 - bits)) & 0xffff;
  });
  return `${network.map((group) => group.toString(16)).join(':')}/${ipv6PrefixLength}`;
}

/** One admitted connection's share of its client's counts; every method may be called any number of times. */
export interface ClientLease {
  /** Counts a pending handshake if the client has one to spare; false when it has not (a shared count answers later). */
  beginHandshake(): boolean | Promise<boolean>;
  endHandshake(): void;
  /** The connection closed: its counts go. */
  release(): void;
}

/**
 * What a server admits its connections through: a ClientLimiter of its own, or one that processes
 * serving the same listeners share (src/daemon/shared-client-limits.ts), which answers later.
 */
export interface ClientAdmission {
  readonly settings: ClientLimits;
  /** New limits (a reload): counts stay. */
  configure(limits: ClientLimits): void;
  /** Admits a new connection from `address`, or names the limit it is over. */
  connect(address: string): ClientLease | LimitName | Promise<ClientLease | LimitName>;
}

interface ClientCounts {
  connections: number;
  pendingHandshakes: number;
  windowStart: number;
  windowConnections: number;
}

/** What exempt clients get: nothing counted, nothing refused. */
const UNCOUNTED: ClientLease = { beginHandshake: () => true, endHandshake: () => undefined, release: () => undefined };

export class ClientLimiter implements ClientAdmission {
  private limits!: ClientLimits;
  private exempt!: BlockList;
  private readonly clients = new Map<string, ClientCounts>();
  private lastSweep: number;

  constructor(
    limits: ClientLimits,
    /** Milliseconds on a monotonic clock; tests pass their own. */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.configure(limits);
    this.lastSweep = now();
  }

  /** New limits (a reload): counts stay; connections already admitted keep their lease. */
  configure(limits: ClientLimits): void {
    const exempt = new BlockList();
    for (const text of limits.exemptions) {
      const range = parseAddressRange(text);
      if (typeof range === 'string') throw new Error(`client limits: exemption ${JSON.stringify(text)}: ${range}`);
      exempt.addSubnet(range.address, range.prefix, range.family);
    }
    this.limits = limits;
    this.exempt = exempt;
  }

  get settings(): ClientLimits {
    return this.limits;
  }

  /** Addresses remembered now. */
  get tracked(): number {
    return this.clients.size;
  }

  /** Admits a new connection from `address`, or names the limit it is over (it is then not held, but counts toward the rate). */
  connect(address: string): ClientLease | LimitName {
    const family = isIP(address);
    if (family !== 0 && this.exempt.check(address, family === 4 ? 'ipv4' : 'ipv6')) return UNCOUNTED;
    const now = this.now();
    this.sweep(now);
    const key = clientKey(address, this.limits.ipv6PrefixLength);
    const counts = this.countsOf(key, now);
    if (now - counts.windowStart >= CONNECTION_RATE_WINDOW_MS) {
      counts.windowStart = now;
      counts.windowConnections = 0;
    }
    counts.windowConnections++;
    const { connectionsPerClient, connectionRatePerClient } = this.limits;
    if (connectionsPerClient > 0 && counts.connections >= connectionsPerClient) return 'connections_per_client';
    if (connectionRatePerClient > 0 && counts.windowConnections > connectionRatePerClient) return 'connection_rate_per_client';
    counts.connections++;
    return this.lease(key, counts);
  }

  private lease(key: string, counts: ClientCounts): ClientLease {
    let open = true;
    let pending = false;
    const endHandshake = (): void => {
      if (!pending) return;
      pending = false;
      counts.pendingHandshakes--;
    };
    return {
      beginHandshake: (): boolean => {
        if (pending) return true;
        if (!open || counts.pendingHandshakes >= this.limits.pendingHandshakesPerClient) return false;
        pending = true;
        counts.pendingHandshakes++;
        return true;
      },
      endHandshake,
      release: () => {
        if (!open) return;
        endHandshake();
        open = false;
        counts.connections--;
        // Without a rate to remember, an idle address is forgotten at once.
        if (counts.connections === 0 && this.limits.connectionRatePerClient === 0) this.clients.delete(key);
      },
    };
  }

  private countsOf(key: string, now: number): ClientCounts {
    let counts = this.clients.get(key);
    if (counts === undefined) {
      counts = { connections: 0, pendingHandshakes: 0, windowStart: now, windowConnections: 0 };
      this.clients.set(key, counts);
    }
    return counts;
  }

  /** Forgets idle addresses whose window is over: once per window, or when the table is full (then the oldest idle ones too). */
  private sweep(now: number): void {
    const full = this.clients.size >= MAX_TRACKED_CLIENTS;
    if (!full && now - this.lastSweep < CONNECTION_RATE_WINDOW_MS) return;
    this.lastSweep = now;
    for (const [address, counts] of this.clients) {
      if (counts.connections === 0 && now - counts.windowStart >= CONNECTION_RATE_WINDOW_MS) this.clients.delete(address);
    }
    // Map order is first-seen order. Addresses with connections open stay: max_clients bounds them.
    // A tenth of room at once, so that a full table is not swept on every connection.
    for (const [address, counts] of this.clients) {
      if (this.clients.size < MAX_TRACKED_CLIENTS * 0.9) break;
      if (counts.connections === 0) this.clients.delete(address);
    }
  }
}
