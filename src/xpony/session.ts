/** What an XponyServer's session carries beyond smtp-server's: the tunnel's peer, and whether the message is binary. */
import type { SMTPServerSession } from 'smtp-server';

/** What an SMTP session inside a tunnel knows about its peer; on `session.xpony`. */
export interface XponySessionInfo {
  version: string;
  /** The client's Noise static key, proven in the handshake. */
  remoteStaticKey: Uint8Array;
  remoteFingerprint: string;
  /** The host name the client announced in Noise message 3, if any (authenticated, not verified). */
  hostName: string | undefined;
  /** The TCP peer of the tunnel. */
  remoteAddress: string;
  remotePort: number;
  /** Octets the tunnel has received so far in raw runs (XPONY-RAW-PAYLOAD), which it did not authenticate. */
  rawOctetsReceived(): number;
}

export type XponySession = SMTPServerSession & {
  xpony?: XponySessionInfo;
  /** The message being received is the binary age file, sent with BDAT (XPONY-BINARY). */
  binaryMessage?: boolean;
};

/** Whether the message of onData is the binary age file (XPONY-BINARY), not a message in DATA's form. */
export function isBinaryMessage(session: SMTPServerSession): boolean {
  return (session as XponySession).binaryMessage === true;
}

/** The tunnel's peer, or undefined for a plaintext session. */
export function xponyOf(session: SMTPServerSession): XponySessionInfo | undefined {
  return (session as XponySession).xpony;
}
