/** The XPONY SMTP extension and its tunnel (docs/PROTOCOL.md sections 1-7): public API. */
export { connectXpony, XponyError, type ConnectXponyOptions, type ConnectXponyResult, type NoXponyResult, type TunnelResult, type XponyErrorKind } from './client.js';
export { createXponyServer, XponyServer, xponyOf, type XponyHandshakeEvent, type XponyServerOptions, type XponySession, type XponySessionInfo } from './server.js';
export { Tunnel, type TunnelOptions } from './tunnel.js';
export { FrameError, FrameReader, FrameType, sealFrame } from './frames.js';
export { ReplyReader, ReplyError, type Reply } from './reply-reader.js';
export { Replies } from './replies.js';
