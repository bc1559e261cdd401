/**
 * The XPONY SMTP extension and its tunnel (docs/PROTOCOL.md): the only way into src/xpony/ from
 * the rest of src/.
 */
/** The client side: EHLO, the Noise handshake, and the tunnel it opens (or why there is none). */
export {
  connectXpony,
  offeredVersions,
  XponyError,
  type ConnectXponyOptions,
  type ConnectXponyResult,
  type NoXponyResult,
  type TunnelResult,
  type XponyErrorKind,
} from './client.js';
/** The server side: an smtp-server offering XPONY, serving a fresh session inside each tunnel. */
export { createXponyServer, XponyServer } from './server.js';
/** Its options. */
export type { XponyServerOptions } from './server-options.js';
/** What it emits per handshake and per client limit reached. */
export type { ClientLimitEvent, XponyHandshakeEvent } from './server-events.js';
/** What a session inside a tunnel knows of its peer, and whether its message is binary. */
export { isBinaryMessage, xponyOf, type XponySession, type XponySessionInfo } from './session.js';
/** The encrypted duplex stream of frames. */
export { Tunnel, type TunnelOptions } from './tunnel.js';
/** Frames: one Noise transport message each. */
export { FrameError, FrameReader, FrameType, sealFrame } from './frames.js';
/** The wire protocol's limits and the per-client limits. */
export {
  DEFAULT_CLIENT_LIMITS,
  HANDSHAKE_TIMEOUT_MS,
  isHybridHandshake,
  LIMIT_NAMES,
  MAX_PENDING_HANDSHAKES,
  type ClientLimits,
  type LimitName,
} from './limits.js';
/** Client addresses and ranges as the per-client limits count them. */
export { ClientLimiter, parseAddressRange, type AddressRange, type ClientAdmission, type ClientLease } from './client-limiter.js';
/** The sealed message: wrapping for a recipient host, unwrapping with its identities. */
export { armoredSealedSize, createUnwrapStream, createWrapStream, SealedMessageError, sealedMessageReply, type WrapStream } from './sealed-message.js';
/** The binary sealed message (XPONY-BINARY) and the BDAT chunks that carry it. */
export { BINARY_KEYWORD, CHUNKING_KEYWORD, chunkSizeFor, RAW_PAYLOAD_KEYWORD } from './binary-message.js';
export { ChunkWriter, type RawPayload } from './chunk-writer.js';
/** XPONY-ID: one id per message, so that a retry is answered without a second copy. */
export { isMessageId, MESSAGE_ID_KEYWORD, messageId } from './message-id.js';
/** XPONY-EVIDENCE: how the sender knew the receiver's key. */
export { EVIDENCE_KEYWORD, isKeyEvidence, KEY_EVIDENCE, type KeyEvidence } from './key-evidence.js';
