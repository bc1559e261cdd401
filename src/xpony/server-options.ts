import type { Socket } from 'node:net';
import type { SMTPServer, SMTPServerOptions } from 'smtp-server';
import type { SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { Keys } from '../crypto/keyfile.js';
import type { X25519KeyPair } from '../crypto/primitives.js';
import type { ClientAdmission } from './client-limiter.js';
import { MAX_BDAT_CHUNK, SUPPORTED_VERSIONS, type ClientLimits, type ProtocolVersion } from './limits.js';
import type { XponySessionInfo } from './session.js';

export interface XponyServerOptions extends SMTPServerOptions {
  keys: Keys;
  /** This host's name: announced in Noise message 2, and the greeting name unless `name` is set. */
  hostName: string;
  /** From the XPONY command to the tunnel-open frame (default HANDSHAKE_TIMEOUT_MS). */
  handshakeTimeoutMs?: number;
  /** Per-client limits (default DEFAULT_CLIENT_LIMITS); clientLimiter.configure() changes them. */
  clientLimits?: ClientLimits;
  /** Counts shared with other processes serving the same listeners (default: this server's own ClientLimiter, with clientLimits). */
  clientAdmission?: ClientAdmission;
  /** A fixed Noise ephemeral key: for the documented example session (test vectors) only. */
  fixedEphemeral?: X25519KeyPair;
  /** Fixed ML-KEM encapsulation randomness (32 octets) for version 2: for the documented example session only. */
  fixedKemEphemeral?: Uint8Array;
  /** The versions offered in EHLO (default SUPPORTED_VERSIONS); ['1'] acts as an older peer. */
  versions?: readonly ProtocolVersion[];
  /** Inside tunnels, offer XPONY-ID (message-id.ts): the server answers a retry of an accepted message once. */
  offerMessageIds?: boolean;
  /** Inside tunnels, offer XPONY-BINARY and CHUNKING (binary-message.ts); default true, false acts as an older peer. */
  offerBinary?: boolean;
  /** The largest BDAT chunk taken and announced with XPONY-BINARY (default MAX_BDAT_CHUNK); BDAT_CHUNK_WITHOUT_SIZE announces none, as an older peer. */
  maxBdatChunk?: number;
  /** Inside tunnels that offer XPONY-BINARY, offer XPONY-RAW-PAYLOAD (binary-message.ts); default true, false acts as an older peer. */
  offerRawPayload?: boolean;
  /** Say in Noise message 2 that mail sealed to this host may come through the domain's other MX hosts (payload.ts). */
  announceSealedRelay?: boolean;
}

/** What a connection reads of its XponyServer (server.ts), beyond smtp-server's own. */
export interface XponyServerState extends SMTPServer {
  readonly xponyOptions: XponyServerOptions;
  /** Handshakes between the XPONY command and the tunnel-open frame. */
  pendingHandshakes: number;
  readonly clientLimiter: ClientAdmission;
  connect(socket: Socket, socketOptions?: XponyConnectionOptions | null): void;
}

export interface XponyConnectionOptions extends SMTPConnectionOptions {
  /** Set for the session inside a tunnel. */
  xpony?: XponySessionInfo;
}

/** The versions a server offers in EHLO and accepts in XPONY. */
export function serverVersions(options: XponyServerOptions): readonly ProtocolVersion[] {
  return options.versions ?? SUPPORTED_VERSIONS;
}

/** Whether a server's tunnels take raw runs (XPONY-RAW-PAYLOAD), which it offers beside XPONY-BINARY. */
export function serverTakesRawPayload(options: XponyServerOptions): boolean {
  return options.offerBinary !== false && options.offerRawPayload !== false;
}

/** The largest BDAT chunk a server takes, and announces with XPONY-BINARY. */
export function serverMaxBdatChunk(options: XponyServerOptions): number {
  return options.maxBdatChunk ?? MAX_BDAT_CHUNK;
}
