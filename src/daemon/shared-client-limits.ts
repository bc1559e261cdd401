/**
 * The per-client limits (inbound.limits) counted once for all workers, as Postfix's anvil counts
 * for all its smtpd processes, and inbound.max_clients once for all connections, as Postfix's
 * process limit does. The primary (workers.ts) holds the one ClientLimiter and the count; each
 * worker asks it over cluster's IPC channel whether a connection may come in and whether its
 * client may start another handshake, and tells it when a handshake ends and when a connection
 * closes. Counted per worker, a client could hold the limit in each one. A worker that dies
 * takes its connections with it: the primary releases what they held.
 *
 * Messages on one worker's channel arrive in the order sent, so a release or a handshake's end
 * sent before the answer to its request is still counted after it.
 */
import type { Worker } from 'node:cluster';
import { ClientLimiter, type ClientAdmission, type ClientLease, type ClientLimits, type LimitName } from '../xpony/index.js';
import type { Config } from './config.js';
import { toPrimary, toWorker } from './worker-channel.js';

/**
 * How long a worker waits for the primary's answer. A primary that does not answer is stuck or
 * gone; the connection is then refused as over max_clients (421: the client comes back later).
 */
const ANSWER_MS = 5_000;

/** What a worker asks or tells the primary. */
type LimitsRequest =
  | { blackpony: 'limits'; op: 'connect'; request: number; address: string }
  | { blackpony: 'limits'; op: 'handshake'; request: number; lease: number }
  | { blackpony: 'limits'; op: 'handshake-end' | 'release'; lease: number };
/** The primary's answer to a request. */
type LimitsAnswer = { blackpony: 'limits-answer'; request: number; lease?: number; refused?: LimitName; granted?: boolean };

/** The limits inbound.limits sets. */
export function clientLimitsOf({ limits }: Config['inbound']): ClientLimits {
  return {
    connectionsPerClient: limits.connectionsPerClient,
    connectionRatePerClient: limits.connectionRatePerClient,
    pendingHandshakesPerClient: limits.pendingHandshakesPerClient,
    xponyAttemptsPerConnection: limits.xponyAttemptsPerConnection,
    message3TimeoutMs: limits.handshakeMessage3Seconds * 1000,
    ipv6PrefixLength: limits.ipv6PrefixLength,
    exemptions: limits.exemptions,
  };
}

/** In a worker: the primary's counts, asked for each connection and handshake. */
export class SharedClientLimits implements ClientAdmission {
  private nextRequest = 0;
  private readonly waiting = new Map<number, (answer: LimitsAnswer | undefined) => void>();

  constructor(private limits: ClientLimits) {
    process.on('message', (message: LimitsAnswer) => {
      if (message?.blackpony !== 'limits-answer') return;
      const waiting = this.waiting.get(message.request);
      // A connection refused meanwhile as over max_clients: its late lease would count until
      // the worker exits. (A handshake granted late ends with its connection.)
      if (waiting === undefined && message.lease !== undefined) this.tell({ blackpony: 'limits', op: 'release', lease: message.lease });
      else waiting?.(message);
    });
  }

  /**
   * This worker's copy, for what is read per connection (handshake_message3_seconds,
   * xpony_attempts_per_connection); the primary's counts follow its own reload.
   */
  get settings(): ClientLimits {
    return this.limits;
  }

  configure(limits: ClientLimits): void {
    this.limits = limits;
  }

  async connect(address: string): Promise<ClientLease | LimitName> {
    const answer = await this.ask({ op: 'connect', address });
    if (answer?.lease === undefined) return answer?.refused ?? 'max_clients';
    const lease = answer.lease;
    const tell = (op: 'handshake-end' | 'release'): void => this.tell({ blackpony: 'limits', op, lease });
    return {
      beginHandshake: async () => (await this.ask({ op: 'handshake', lease }))?.granted === true,
      endHandshake: () => tell('handshake-end'),
      release: () => tell('release'),
    };
  }

  private ask(question: { op: 'connect'; address: string } | { op: 'handshake'; lease: number }): Promise<LimitsAnswer | undefined> {
    const request = this.nextRequest++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), ANSWER_MS);
      const done = (answer: LimitsAnswer | undefined): void => {
        clearTimeout(timer);
        this.waiting.delete(request);
        resolve(answer);
      };
      this.waiting.set(request, done);
      this.tell({ blackpony: 'limits', request, ...question }, () => done(undefined));
    });
  }

  private tell(message: LimitsRequest, failed?: () => void): void {
    toPrimary(message, failed);
  }
}

/** In the primary: the one count for every worker, and of the connections all of them serve (inbound.max_clients). */
export class ClientLimitsForWorkers {
  private readonly limiter: ClientLimiter;
  private nextLease = 0;
  /** Connections admitted in every worker and not yet closed. */
  private open = 0;

  constructor(
    limits: ClientLimits,
    private maxClients: number,
  ) {
    this.limiter = new ClientLimiter(limits);
  }

  /** New limits (a reload): counts stay. */
  configure(limits: ClientLimits, maxClients: number): void {
    this.limiter.configure(limits);
    this.maxClients = maxClients;
  }

  /** Answers `worker`'s requests until it exits, then releases what its connections held. */
  serve(worker: Worker): void {
    /** This worker's leases by their number. */
    const held = new Map<number, ClientLease>();
    const release = (lease: number): void => {
      held.get(lease)?.release();
      if (held.delete(lease)) this.open--;
    };
    worker.on('message', (message: LimitsRequest) => {
      if (message?.blackpony !== 'limits') return;
      if (message.op === 'connect') {
        // As one process checks its own connections first (server-connection.ts).
        const admission = this.open >= this.maxClients ? 'max_clients' : this.limiter.connect(message.address);
        if (typeof admission === 'string') return this.answer(worker, { blackpony: 'limits-answer', request: message.request, refused: admission });
        const lease = this.nextLease++;
        held.set(lease, admission);
        this.open++;
        return this.answer(worker, { blackpony: 'limits-answer', request: message.request, lease });
      }
      if (message.op === 'release') return release(message.lease);
      const lease = held.get(message.lease);
      if (message.op === 'handshake')
        return this.answer(worker, { blackpony: 'limits-answer', request: message.request, granted: lease?.beginHandshake() === true });
      lease?.endHandshake();
    });
    worker.once('exit', () => {
      for (const lease of [...held.keys()]) release(lease);
    });
  }

  private answer(worker: Worker, answer: LimitsAnswer): void {
    toWorker(worker, answer);
  }
}
