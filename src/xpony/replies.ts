/**
 * The XPONY replies of docs/PROTOCOL.md section 3 and the per-client refusals of section 6, text
 * included. They carry their enhanced status code themselves, so they read the same whatever the
 * server's ENHANCEDSTATUSCODES setting.
 */
export interface XponyReply {
  code: number;
  text: string;
}

export const Replies = {
  challenge: (base64Message2: string): XponyReply => ({ code: 334, text: base64Message2 }),
  tunnelReady: { code: 220, text: '2.0.0 XPONY tunnel ready' },
  syntax: (reason: string): XponyReply => ({ code: 501, text: `5.5.2 XPONY: ${reason}` }),
  versionNotSupported: (version: string): XponyReply => ({ code: 504, text: `5.5.4 XPONY: version ${version} not supported` }),
  badSequence: (reason: string): XponyReply => ({ code: 503, text: `5.5.1 XPONY: ${reason}` }),
  cancelled: { code: 501, text: '5.7.0 XPONY: cancelled by client' },
  handshakeFailed: (reason: string): XponyReply => ({ code: 535, text: `5.7.8 XPONY: handshake failed: ${reason}` }),
  unavailable: { code: 454, text: '4.7.0 XPONY: temporarily unavailable' },
  handshakeTimeout: { code: 421, text: '4.4.2 XPONY: handshake timeout' },
  message3Timeout: { code: 421, text: '4.4.2 XPONY: timeout waiting for Noise message 3' },
  tooManyHandshakes: { code: 454, text: '4.7.0 XPONY: too many handshakes from this client, try again later' },
  tooManyAttempts: { code: 454, text: '4.7.0 XPONY: too many attempts on this connection' },
  /** Instead of the greeting, then close (as Postfix's smtpd with anvil's counts). */
  tooManyClients: (host: string): XponyReply => ({ code: 421, text: `${host} Too many connected clients, try again in a moment` }),
  tooManyConnections: (host: string, address: string): XponyReply => ({ code: 421, text: `4.7.0 ${host} Error: too many connections from ${address}` }),
  connectionRate: (host: string, address: string): XponyReply => ({ code: 421, text: `4.7.0 ${host} Error: too many connections from ${address} this minute` }),
} as const;

/** The EHLO keyword line a server adds on plaintext sessions. */
export function ehloKeyword(versions: readonly string[]): string {
  return ['XPONY', ...versions].join(' ');
}
