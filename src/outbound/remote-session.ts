/**
 * An established SMTP session with a next hop, in one of three modes: inside an XPONY tunnel
 * (the message sealed to the peer's age recipient), after STARTTLS, or in plaintext; the last two
 * carry the message sealed too when they are a sealed relay (sealed-relay.ts). It runs mail
 * transactions one at a time; between them it can wait in the session cache for the next message
 * to the same domain.
 */
import type { TLSSocket } from 'node:tls';
import type { Recipient } from '../crypto/age/index.js';
import {
  BINARY_KEYWORD,
  CHUNKING_KEYWORD,
  ChunkWriter,
  chunkSizeFor,
  createWrapStream,
  RAW_PAYLOAD_KEYWORD,
  type RawPayload,
  type Tunnel,
  type WrapStream,
} from '../xpony/index.js';
import type { SmtpClient, SmtpReply } from '../smtp/index.js';

export type DeliveryMode = 'xpony' | 'starttls' | 'plain';

export interface TunnelDetails {
  tunnel: Tunnel;
  remoteStaticKey: Uint8Array;
  fingerprint: string;
  /** The server's previous keys that vouched for remoteStaticKey in the handshake. */
  endorsedBy: Uint8Array[];
  /** The age recipients the message is sealed to, parsed once for every message of the session. */
  sealTo: Recipient[];
  /**
   * The server said, under its key, that its domain takes mail sealed to it through its other MX
   * hosts: the recipient such mail is sealed to (the hybrid one when announced), pinned with its key.
   */
  relayTo?: Recipient;
  /** Connect, greeting, EHLO and the Noise handshake, up to the switch point. */
  handshakeMs: number;
}

export interface RemoteSessionInit {
  client: SmtpClient;
  mode: DeliveryMode;
  /** The MX (or route) host name and the address connected to. */
  host: string;
  address: string;
  port: number;
  /** Lines of the last EHLO reply (keywords after the first line). */
  ehloLines: string[];
  tunnel?: TunnelDetails;
  /** After STARTTLS: the certificate chained to a trusted root and named the MX host. */
  tlsVerified?: boolean;
  /** Outside a tunnel: messages go sealed to this recipient, armored (sealed relay through an MX without XPONY). */
  sealedRelay?: Recipient[];
}

/** Something that takes message octets with backpressure and then ends the transaction. */
export interface BodySink {
  /** false: wait for onDrain before writing more. */
  write(chunk: Buffer): boolean;
  onDrain(callback: () => void): void;
  /** Ends the message and resolves with the final reply to DATA. */
  end(): Promise<SmtpReply>;
}

export class RemoteSession {
  readonly client: SmtpClient;
  readonly mode: DeliveryMode;
  readonly host: string;
  readonly address: string;
  readonly port: number;
  readonly tunnel: TunnelDetails | undefined;
  readonly tlsVerified: boolean;
  readonly sealedRelay: Recipient[] | undefined;
  private readonly keywords: Set<string>;
  /** The BDAT chunk size for the binary sealed message, as the peer's XPONY-BINARY announced it. */
  private readonly chunkSize: number;
  /** Mail transactions completed on this session. */
  transactions = 0;

  constructor(init: RemoteSessionInit) {
    this.client = init.client;
    this.mode = init.mode;
    this.host = init.host;
    this.address = init.address;
    this.port = init.port;
    this.tunnel = init.tunnel;
    this.tlsVerified = init.tlsVerified ?? false;
    this.sealedRelay = init.sealedRelay;
    const keywordLines = init.ehloLines.slice(1);
    this.keywords = new Set(keywordLines.map((line) => line.split(' ', 1)[0]!.toUpperCase()));
    this.chunkSize = chunkSizeFor(keywordLines);
  }

  get closed(): boolean {
    return this.client.closed;
  }

  /**
   * Whether messages go as the binary age file in BDAT chunks (docs/PROTOCOL.md section 5,
   * XPONY-BINARY): through a tunnel whose inner EHLO offers it; else sealed in DATA, armored.
   */
  get binary(): boolean {
    return this.tunnel !== undefined && this.offers(BINARY_KEYWORD) && this.offers(CHUNKING_KEYWORD);
  }

  /** Whether the peer advertised an EHLO keyword (e.g. SMTPUTF8, DSN). */
  offers(keyword: string): boolean {
    return this.keywords.has(keyword);
  }

  /** TLS protocol and cipher after STARTTLS, for the log. */
  get tlsDetails(): { protocol: string | null; cipher: string } | undefined {
    if (this.mode !== 'starttls') return undefined;
    const socket = this.client.transport as TLSSocket;
    return { protocol: socket.getProtocol(), cipher: socket.getCipher().name };
  }

  command(line: string): Promise<SmtpReply> {
    return this.client.command(line);
  }

  /** Commands sent together, replies in order; only where the peer offers PIPELINING. */
  pipeline(lines: readonly string[]): Promise<SmtpReply[]> {
    return this.client.pipeline(lines);
  }

  /**
   * After the 354 (or, binary, after RCPT): where the message goes. Through a tunnel it is sealed
   * on the way (the age layer streams, 64 KiB chunks), armored in DATA or binary in BDAT chunks;
   * for a sealed relay, armored in DATA; otherwise the octets go as they are.
   */
  body(): BodySink {
    const client = this.client;
    const sealTo = this.tunnel?.sealTo ?? this.sealedRelay;
    if (sealTo === undefined) {
      return {
        write: (chunk) => client.writeData(chunk),
        onDrain: (callback) => client.onDrain(callback),
        end: () => this.finish(),
      };
    }
    const binary = this.binary;
    const wrap: WrapStream = createWrapStream(sealTo, binary);
    const sink = binary
      ? new ChunkWriter(client, this.chunkSize, this.rawPayload(wrap))
      : { write: (chunk: Buffer) => client.writeData(chunk), onDrain: (callback: () => void) => client.onDrain(callback) };
    const ended = new Promise<void>((resolve, reject) => {
      wrap.on('data', (chunk: Buffer) => {
        if (client.closed) return; // finish() reports the loss
        if (!sink.write(chunk)) {
          wrap.pause();
          sink.onDrain(() => wrap.resume());
        }
      });
      wrap.once('end', resolve);
      wrap.once('error', reject);
    });
    return {
      write: (chunk) => wrap.write(chunk),
      onDrain: (callback) => wrap.once('drain', callback),
      end: async () => {
        wrap.end();
        await ended;
        return this.finish(sink instanceof ChunkWriter ? sink : undefined);
      },
    };
  }

  /**
   * Where the peer offered XPONY-RAW-PAYLOAD beside XPONY-BINARY: the binary file's payload goes
   * in raw runs, encrypted once (by age) instead of twice; its header stays in frames.
   */
  private rawPayload(wrap: WrapStream): RawPayload | undefined {
    const tunnel = this.tunnel?.tunnel;
    if (tunnel === undefined || !this.offers(RAW_PAYLOAD_KEYWORD)) return undefined;
    return { headerLength: wrap.headerLength, markRaw: (piece) => tunnel.markRaw(piece) };
  }

  /** Drops the session: a transaction in progress is discarded by the peer. */
  destroy(): void {
    this.client.destroy();
  }

  /** QUIT, and for a tunnel the close frame after it. */
  quit(): void {
    this.client.quit();
  }

  describe(): string {
    return `${this.host}[${this.address}]:${this.port} (${this.mode}${this.tunnel === undefined ? '' : ` ${this.tunnel.fingerprint}`}${this.sealedRelay === undefined ? '' : ', sealed relay'})`;
  }

  private async finish(chunks?: ChunkWriter): Promise<SmtpReply> {
    // Both write the message's end before they wait for the reply.
    const reply = chunks === undefined ? this.client.endData() : chunks.end();
    // docs/PROTOCOL.md section 5: the client rekeys its direction right after each message's end,
    // so the rekey frame leaves in the same write, and the key that carried the message is gone
    // before the reply comes.
    this.tunnel?.tunnel.rekey();
    const answer = await reply;
    this.transactions++;
    // A chunk refused before LAST leaves the peer mid-transaction: the session is not reused.
    if (chunks?.refusedEarly === true) this.client.destroy();
    return answer;
  }
}
