/**
 * Shared pieces of the XPONY tests: an XPONY server on a loopback port that records what its
 * handlers see, and a man-in-the-middle relay that can record, edit and inject bytes.
 */
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import type { SMTPServerSession } from 'smtp-server';
import { generateKeys, type Keys } from '../../src/crypto/keyfile.js';
import { ReplyReader, type Reply } from '../../src/smtp/index.js';
import {
  createXponyServer,
  xponyOf,
  type XponyHandshakeEvent,
  type XponyServer,
  type XponyServerOptions,
  type XponySessionInfo,
} from '../../src/xpony/index.js';

export interface ReceivedMessage {
  from: string;
  to: string[];
  data: Buffer;
  xpony: XponySessionInfo | undefined;
}

export interface TestServer {
  server: XponyServer;
  port: number;
  keys: Keys;
  /** Messages onData accepted (called back with success). */
  messages: ReceivedMessage[];
  /** MAIL FROM addresses onMailFrom saw. */
  mailFroms: string[];
  /** onData streams that errored or ended without the message being accepted. */
  abortedData: number;
  handshakes: XponyHandshakeEvent[];
  errors: Error[];
  close(): Promise<void>;
}

let cachedKeys: Keys | undefined;
let cachedClientKeys: Keys | undefined;
/** Key generation (ML-KEM) is slow-ish: one server and one client key set per test file. */
export function serverKeys(): Keys {
  return (cachedKeys ??= generateKeys());
}
export function clientKeys(): Keys {
  return (cachedClientKeys ??= generateKeys());
}

export async function startXponyServer(overrides: Partial<XponyServerOptions> = {}): Promise<TestServer> {
  const keys = overrides.keys ?? serverKeys();
  const state: Omit<TestServer, 'server' | 'port' | 'close'> = { keys, messages: [], mailFroms: [], abortedData: 0, handshakes: [], errors: [] };
  const server = createXponyServer({
    keys,
    hostName: 'mx.receiver.test',
    disableReverseLookup: true,
    authOptional: true,
    hideSTARTTLS: true,
    logger: false,
    // A failed test may leave a session open: do not wait the default 30 s for it.
    closeTimeout: 500,
    onMailFrom(address, _session, callback) {
      state.mailFroms.push(address.address);
      callback();
    },
    onData(stream: Readable, session: SMTPServerSession, callback) {
      const chunks: Buffer[] = [];
      let failed = false;
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', () => {
        failed = true;
        state.abortedData++;
      });
      stream.on('end', () => {
        if (failed) return;
        state.messages.push({
          from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks),
          xpony: xponyOf(session),
        });
        callback();
      });
      stream.on('close', () => {
        if (!stream.readableEnded && !failed) {
          failed = true;
          state.abortedData++;
        }
      });
    },
    ...overrides,
  });
  server.on('error', (err: Error) => state.errors.push(err));
  server.on('xpony-handshake', (event: XponyHandshakeEvent) => state.handshakes.push(event));
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  const port = (server.server.address() as AddressInfo).port;
  return Object.assign(state, {
    server,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

export interface RelayHooks {
  /** Rewrites (or drops, with an empty buffer) bytes from the client before they reach the server. */
  fromClient?: (data: Buffer, state: RelayConnection) => Buffer;
  /** Rewrites bytes from the server before they reach the client. */
  fromServer?: (data: Buffer, state: RelayConnection) => Buffer;
}

export interface RelayConnection {
  client: Socket;
  server: Socket;
  /** Everything that passed, in order, after any rewriting. */
  toServer: Buffer[];
  toClient: Buffer[];
}

export interface Relay {
  port: number;
  connections: RelayConnection[];
  close(): Promise<void>;
}

export interface RelayPlacement {
  /** Where the relay listens (default 127.0.0.1, any free port): e.g. a victim's MX address. */
  listen?: { host: string; port: number };
  targetHost?: string;
}

/** A TCP relay in the middle: what a network attacker sees and can do. */
export async function startRelay(targetPort: number, hooks: RelayHooks = {}, placement: RelayPlacement = {}): Promise<Relay> {
  const connections: RelayConnection[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, placement.targetHost ?? '127.0.0.1');
    const state: RelayConnection = { client, server: upstream, toServer: [], toClient: [] };
    connections.push(state);
    client.on('data', (data: Buffer) => {
      const out = hooks.fromClient ? hooks.fromClient(data, state) : data;
      state.toServer.push(out);
      if (out.length > 0) upstream.write(out);
    });
    upstream.on('data', (data: Buffer) => {
      const out = hooks.fromServer ? hooks.fromServer(data, state) : data;
      state.toClient.push(out);
      if (out.length > 0) client.write(out);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(placement.listen?.port ?? 0, placement.listen?.host ?? '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) {
          c.client.destroy();
          c.server.destroy();
        }
        server.close(() => resolve());
      }),
  };
}

/** A hand-driven SMTP client on any stream (a socket, or a tunnel): one line out, one reply in. */
export class RawSmtp {
  readonly reader: ReplyReader;
  constructor(readonly stream: Duplex) {
    this.reader = new ReplyReader(stream);
  }
  /** Connects to 127.0.0.1:`port`, from `localAddress` if given (another loopback address is another client). */
  static async connect(port: number, localAddress?: string): Promise<RawSmtp> {
    const socket = connect({ port, host: '127.0.0.1', ...(localAddress === undefined ? {} : { localAddress }) });
    await once(socket, 'connect');
    return new RawSmtp(socket);
  }
  write(text: string): void {
    this.stream.write(text, 'latin1');
  }
  reply(maxLine = 16_384): Promise<Reply> {
    return this.reader.read(maxLine);
  }
  /** Sends one line, returns the reply's first line as "code text". */
  async command(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    const reply = await this.reply();
    return `${reply.code} ${reply.lines[0] ?? ''}`;
  }
  /** Resolves when the stream has closed. */
  closed(): Promise<void> {
    return this.stream.destroyed ? Promise.resolve() : new Promise((resolve) => this.stream.once('close', () => resolve()));
  }
}
