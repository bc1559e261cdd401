/**
 * Every limit and timeout of the XPONY wire protocol, in one place (docs/PROTOCOL.md section 6),
 * but for those of reading plaintext replies, which are the SMTP toolkit's (src/smtp/limits.ts).
 */
import { MAX_PREVIOUS_NOISE_KEYS } from '../crypto/keyfile.js';

/** The protocol versions this implementation knows, as listed in EHLO (`XPONY 1 2`); a client picks the highest both know. */
export const SUPPORTED_VERSIONS = ['1', '2'] as const;
export type ProtocolVersion = (typeof SUPPORTED_VERSIONS)[number];

/** The Noise protocol each version's handshake runs: version 2 adds ML-KEM-768 (Noise HFS). */
export const NOISE_PROTOCOLS: Readonly<Record<ProtocolVersion, string>> = {
  '1': 'Noise_XX_25519_ChaChaPoly_SHA256',
  '2': 'Noise_XXhfs_25519+MLKEM768_ChaChaPoly_SHA256',
};

/** Whether a version's handshake is hybrid post-quantum (ML-KEM-768 beside X25519): every version after 1. */
export function isHybridHandshake(version: ProtocolVersion): boolean {
  return version !== '1';
}

/**
 * XPONY command and continuation lines, CRLF included. Version 2's XPONY line is the longest:
 * "XPONY 2 " and base64 of e (32) and the ML-KEM-768 key (1184), 1634 octets.
 */
export const MAX_COMMAND_LINE = 4096;
/**
 * The 334 challenge line carrying Noise message 2, CRLF included. Version 2's message 2 is
 * e (32), the encrypted ML-KEM ciphertext (1088 + 16), s (32 + 16) and a payload of at most
 * MAX_PAYLOAD (+ 16): 5296 octets, a line of 7070.
 */
export const MAX_CHALLENGE_LINE = 8192;
/** A handshake payload (messages 2 and 3), in octets. */
export const MAX_PAYLOAD = 4096;
/** age recipients a server may announce in message 2. */
export const MAX_AGE_RECIPIENTS = 4;
/**
 * Recipient stanzas in a sealed message's age header (section 8). A sender seals to recipients
 * the receiving host announced (blackpony to exactly one), so more cannot be for that host; a
 * receiver refuses more before unwrapping any, each being an ML-KEM decapsulation to try.
 */
export const MAX_SEALED_STANZAS = MAX_AGE_RECIPIENTS;
/** A host name in a payload. */
export const MAX_HOST_NAME = 255;
/** Key endorsements in message 2: one per previous key a key file may keep. */
export const MAX_ENDORSEMENTS = MAX_PREVIOUS_NOISE_KEYS;
/** An endorsement field: the previous static public key (32 octets), then the proof (32 octets). */
export const ENDORSEMENT_LENGTH = 64;

/** Frame header: the big-endian length of the Noise transport message that follows. */
export const FRAME_HEADER = 2;
/** A Noise transport message: 65535 octets at most (Noise), at least its 16-octet tag. */
export const MAX_FRAME_CIPHERTEXT = 65535;
export const MIN_FRAME_CIPHERTEXT = 16;
/** Frame body: one type octet, then content. */
export const MAX_FRAME_CONTENT = MAX_FRAME_CIPHERTEXT - 16 - 1;
/** A raw-run frame's content: the big-endian count of the raw octets that follow the frame. */
export const RAW_RUN_LENGTH = 4;
/**
 * Raw octets one raw-run frame announces: 1 to this many (a receiver passes them on as they come,
 * holding none; a sender announces one run per BDAT chunk's payload, at most MAX_BDAT_CHUNK).
 */
export const MAX_RAW_RUN = 1024 * 1024;

/** A sender rekeys its direction after this many octets even within a transaction. */
export const REKEY_AFTER_BYTES = 2 ** 30;

/** From the XPONY command to the tunnel-open frame. */
export const HANDSHAKE_TIMEOUT_MS = 30_000;

/** Handshakes a server runs at once; more get `454 4.7.0`. */
export const MAX_PENDING_HANDSHAKES = 256;

/**
 * Limits per client, like Postfix's anvil (smtpd_client_connection_count_limit, default 50;
 * smtpd_client_connection_rate_limit per anvil_rate_time_unit) plus XPONY's own, so that one
 * client cannot take what other clients need (docs/PROTOCOL.md section 6). A client is its IPv4
 * address, or its IPv6 network of `ipv6PrefixLength` bits (one host often has a whole /64);
 * addresses in `exemptions` (IP or CIDR) are not counted, as Postfix exempts mynetworks.
 */
export interface ClientLimits {
  /** Simultaneous connections from one address; 0: no limit. */
  connectionsPerClient: number;
  /** Connections from one address per CONNECTION_RATE_WINDOW_MS, refused ones included; 0: no limit. */
  connectionRatePerClient: number;
  /** XPONY handshakes of one address between the XPONY command and the tunnel-open frame. */
  pendingHandshakesPerClient: number;
  /** XPONY commands on one connection that get Noise work; the next ones are refused without any. */
  xponyAttemptsPerConnection: number;
  /** From the 334 challenge to the client's Noise message 3. */
  message3TimeoutMs: number;
  /** IPv6 clients in one network of this many bits count as one client (128: each address alone). */
  ipv6PrefixLength: number;
  exemptions: readonly string[];
}

export const DEFAULT_CLIENT_LIMITS: ClientLimits = {
  connectionsPerClient: 50,
  connectionRatePerClient: 300,
  pendingHandshakesPerClient: 4,
  xponyAttemptsPerConnection: 2,
  message3TimeoutMs: 10_000,
  // As Postfix's smtpd_client_ipv6_prefix_length (3.8 and later).
  ipv6PrefixLength: 84,
  exemptions: ['127.0.0.0/8', '::1'],
};

/** The time unit of connectionRatePerClient (Postfix's anvil_rate_time_unit). */
export const CONNECTION_RATE_WINDOW_MS = 60_000;
/** Client addresses the limiter remembers at most; beyond, the oldest idle ones' rates are forgotten. */
export const MAX_TRACKED_CLIENTS = 50_000;

/** Every limit a client can run into, named as its setting; counted in metrics by this name. */
export const LIMIT_NAMES = [
  'max_clients',
  'connections_per_client',
  'connection_rate_per_client',
  'max_pending_handshakes',
  'pending_handshakes_per_client',
  'xpony_attempts_per_connection',
  'handshake_message3_seconds',
] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

/**
 * A BDAT chunk of the binary sealed message (docs/PROTOCOL.md section 5, XPONY-BINARY): every
 * server that offers XPONY-BINARY takes chunks of this many octets; a client sends no more to a
 * server that announces no chunk size (servers before 2026-12-07).
 */
export const BDAT_CHUNK_WITHOUT_SIZE = 64 * 1024;
/**
 * The largest BDAT chunk a blackpony server takes and announces (`XPONY-BINARY 262144`), and the
 * largest a blackpony client sends, whatever a server announces: a client holds a chunk before it
 * can send its size. A quarter of the BDAT commands and replies of 64 KiB chunks, each a frame and
 * a system call at both ends (docs/PERFORMANCE.md, "BDAT chunks of 256 KiB"). A server answers a
 * larger announced size with 552 and closes the tunnel, since the octets that follow cannot be
 * told from commands.
 */
export const MAX_BDAT_CHUNK = 256 * 1024;
