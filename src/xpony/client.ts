/**
 * The client side of XPONY (docs/PROTOCOL.md sections 2-4): connect, read the greeting, EHLO, and
 * if the server offers a version this client knows run the Noise initiator of the highest one
 * (version 2: XXhfs with ML-KEM-768; version 1: XX) over the XPONY verb up to the switch point. The result is a Tunnel carrying a fresh SMTP session, or the plaintext socket right after
 * EHLO when the server does not offer XPONY, so the caller can fall back.
 */
import { connect, type Socket } from 'node:net';
import { isHybridRecipient, parseRecipient, type Recipient } from '../crypto/age/index.js';
import { fingerprint } from '../crypto/fingerprint.js';
import type { Keys } from '../crypto/keyfile.js';
import type { HandshakeState } from '../crypto/noise/index.js';
import type { X25519KeyPair } from '../crypto/primitives.js';
import { verifyEndorsement } from './endorsement.js';
import { decodeMessage, encodeMessage, startHandshake } from './handshake.js';
import { HANDSHAKE_TIMEOUT_MS, MAX_CHALLENGE_LINE, MAX_COMMAND_LINE, SUPPORTED_VERSIONS, type ProtocolVersion } from './limits.js';
import { decodePayload, encodePayload, type Endorsement, type HandshakePayload } from './payload.js';
import { MAX_REPLY_LINE, ReplyReader, type Reply } from '../smtp/index.js';
import { Tunnel } from './tunnel.js';

export type XponyErrorKind = 'key-rejected' | 'handshake-failed' | 'protocol' | 'timeout' | 'connect';

export class XponyError extends Error {
  override readonly name = 'XponyError';
  constructor(
    readonly kind: XponyErrorKind,
    message: string,
    /** The server's reply, when one caused the error. */
    readonly reply?: Reply,
  ) {
    super(`XPONY ${kind}: ${message}`);
  }
}

export interface ConnectXponyOptions {
  host: string;
  port: number;
  /** Our name, for EHLO and Noise message 3. */
  localHostName: string;
  /** Our Noise static key pair (only `noise` is used). */
  keys: Pick<Keys, 'noise'>;
  /**
   * Judges the server's static key: true to go on, or the reason to cancel. `endorsedBy`: the
   * server's previous keys that proved in this handshake that they vouch for it.
   */
  requireKey?: (remoteStaticKey: Uint8Array, endorsedBy: Uint8Array[]) => true | string;
  /** For everything up to the switch point (default HANDSHAKE_TIMEOUT_MS). */
  timeoutMs?: number;
  /** The local address to connect from (default: the system's choice). */
  localAddress?: string;
  /** A fixed Noise ephemeral key: for the documented example session (test vectors) only. */
  fixedEphemeral?: X25519KeyPair;
  /** A fixed ML-KEM key seed (64 octets) for version 2: for the documented example session only. */
  fixedKemEphemeral?: Uint8Array;
  /** The versions this client may pick (default SUPPORTED_VERSIONS); ['1'] acts as an older peer. */
  versions?: readonly ProtocolVersion[];
}

export interface TunnelResult {
  kind: 'tunnel';
  tunnel: Tunnel;
  /** The protocol version the handshake ran. */
  version: ProtocolVersion;
  remoteStaticKey: Uint8Array;
  fingerprint: string;
  /** The server's previous static keys whose endorsement of remoteStaticKey verified. */
  endorsedBy: Uint8Array[];
  /** age recipients the server announced (authenticated by the handshake), parsed and checked. */
  ageRecipients: Recipient[];
  hostName: string | undefined;
  /** The server said its domain takes mail sealed to it through its other MX hosts (payload.ts). */
  sealedRelay: boolean;
  /** The plaintext EHLO reply's lines, text only. */
  ehloLines: string[];
}

export interface NoXponyResult {
  kind: 'no-xpony';
  /** Still open, right after the EHLO reply, paused. */
  socket: Socket;
  greeting: Reply;
  ehloLines: string[];
}

export type ConnectXponyResult = TunnelResult | NoXponyResult;

export async function connectXpony(options: ConnectXponyOptions): Promise<ConnectXponyResult> {
  const timeoutMs = options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const socket = await openSocket(options.host, options.port, timeoutMs, options.localAddress);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      socket.destroy();
      reject(new XponyError('timeout', `no tunnel within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([handshake(socket, options), deadline]);
  } catch (err) {
    socket.destroy();
    throw err instanceof XponyError ? err : new XponyError('protocol', (err as Error).message);
  } finally {
    clearTimeout(timer);
  }
}

function openSocket(host: string, port: number, timeoutMs: number, localAddress: string | undefined): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, timeout: timeoutMs, ...(localAddress === undefined ? {} : { localAddress }) });
    const fail = (reason: string): void => {
      socket.destroy();
      reject(new XponyError('connect', `${host}:${port}: ${reason}`));
    };
    socket.once('error', (err) => fail(err.message));
    socket.once('timeout', () => fail(`no connection within ${timeoutMs} ms`));
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      socket.removeAllListeners('timeout');
      socket.setTimeout(0);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

async function handshake(socket: Socket, options: ConnectXponyOptions): Promise<ConnectXponyResult> {
  const reader = new ReplyReader(socket);
  const greeting = await reader.read(MAX_REPLY_LINE);
  if (greeting.code !== 220) throw new XponyError('protocol', `greeting is ${greeting.code}, not 220`, greeting);
  const ehloLine = Buffer.from(`EHLO ${options.localHostName}\r\n`, 'latin1');
  socket.write(ehloLine);
  const ehlo = await reader.read(MAX_REPLY_LINE);
  if (ehlo.code !== 250) throw new XponyError('protocol', `EHLO answered with ${ehlo.code}`, ehlo);
  // The first line is the greeting text, the others are keywords.
  const version = pickVersion(offeredVersions(ehlo.lines.slice(1)), options.versions ?? SUPPORTED_VERSIONS);
  if (version === undefined) {
    socket.pause();
    const rest = reader.detach();
    if (rest.length > 0) socket.unshift(rest);
    return { kind: 'no-xpony', socket, greeting, ehloLines: ehlo.lines };
  }

  const state = startHandshake(
    true,
    { greeting: greeting.raw, ehloLine, ehloReply: ehlo.raw, version },
    {
      staticKey: options.keys.noise,
      ...(options.fixedEphemeral === undefined ? {} : { fixedEphemeral: options.fixedEphemeral }),
      ...(options.fixedKemEphemeral === undefined ? {} : { fixedKemEphemeral: options.fixedKemEphemeral }),
    },
  );
  const message1 = state.writeMessage(new Uint8Array(0));
  // h1: what the server's endorsements are bound to (endorsement.ts).
  const h1 = state.handshakeHash;
  writeLine(socket, `XPONY ${version} ${encodeMessage(message1)}`);
  const challenge = await reader.read(MAX_CHALLENGE_LINE);
  if (challenge.code !== 334 || challenge.lines.length !== 1) {
    await quit(socket, reader, challenge.code !== 421);
    throw new XponyError('handshake-failed', `server answered XPONY with ${challenge.code} ${challenge.lines[0] ?? ''}`, challenge);
  }

  let payload: HandshakePayload;
  let ageRecipients: Recipient[];
  try {
    payload = decodePayload(state.readMessage(decodeMessage(challenge.lines[0]!, 'Noise message 2')));
    ageRecipients = announcedRecipients(payload.ageRecipients);
    checkEndorsements(payload.endorsements ?? [], state, h1);
  } catch (err) {
    await cancel(socket, reader);
    throw new XponyError('handshake-failed', (err as Error).message);
  }
  const remoteStaticKey = state.remoteStaticKey!;
  const endorsedBy = (payload.endorsements ?? []).map((endorsement) => endorsement.previousKey);
  const verdict = options.requireKey?.(remoteStaticKey, endorsedBy) ?? true;
  if (verdict !== true) {
    await cancel(socket, reader);
    throw new XponyError('key-rejected', `server key ${fingerprint(remoteStaticKey)}: ${verdict}`);
  }

  writeLine(socket, encodeMessage(state.writeMessage(encodePayload({ ageRecipients: [], hostName: options.localHostName }))));
  const ready = await reader.read(MAX_REPLY_LINE);
  if (ready.code !== 220) {
    await quit(socket, reader, ready.code !== 421);
    throw new XponyError('handshake-failed', `server answered Noise message 3 with ${ready.code} ${ready.lines[0] ?? ''}`, ready);
  }
  // The switch point: octets after the 220's CRLF were sent before it, in plaintext. Drop them.
  reader.detach();
  const ciphers = state.split();
  const tunnel = new Tunnel({ socket, send: ciphers.send, receive: ciphers.receive });
  tunnel.open();
  return {
    kind: 'tunnel',
    tunnel,
    version,
    remoteStaticKey,
    fingerprint: fingerprint(remoteStaticKey),
    endorsedBy,
    ageRecipients,
    hostName: payload.hostName,
    sealedRelay: payload.sealedRelay === true,
    ehloLines: ehlo.lines,
  };
}

/**
 * The highest version both sides know. The server's list is bound in the prologue, so a man in
 * the middle who strikes a version from it makes the handshake fail instead of choosing for us.
 */
export function pickVersion(offered: readonly string[], known: readonly ProtocolVersion[]): ProtocolVersion | undefined {
  return known.filter((version) => offered.includes(version)).sort((a, b) => Number(b) - Number(a))[0];
}

/** The versions listed on the XPONY keyword line among an EHLO reply's keyword lines, if there is one. */
export function offeredVersions(keywords: readonly string[]): string[] {
  for (const line of keywords) {
    const [keyword, ...versions] = line.split(' ');
    if (keyword?.toUpperCase() === 'XPONY') return versions;
  }
  return [];
}

/**
 * The announced recipients, each parsed and checked (a trial wrap, which for the hybrid kind costs
 * an ML-KEM encapsulation: done once per tunnel, here). An X25519 one must be among them.
 */
function announcedRecipients(recipients: string[]): Recipient[] {
  const parsed = recipients.map((recipient) => parseRecipient(recipient));
  if (parsed.every(isHybridRecipient)) throw new Error('message 2 announces no age X25519 recipient');
  return parsed;
}

/** Every endorsement must verify: a forged one is an attack, not a key to ignore. */
function checkEndorsements(endorsements: Endorsement[], state: HandshakeState, h1: Uint8Array): void {
  const currentKey = state.remoteStaticKey!;
  for (const endorsement of endorsements) {
    if (!verifyEndorsement(endorsement, (key) => state.localEphemeralAgreement(key), h1, currentKey)) {
      throw new Error(`message 2: endorsement by previous key ${fingerprint(endorsement.previousKey)} does not verify`);
    }
  }
}

function writeLine(socket: Socket, line: string): void {
  if (line.length + 2 > MAX_COMMAND_LINE) throw new XponyError('protocol', `XPONY line of ${line.length + 2} octets exceeds ${MAX_COMMAND_LINE}`);
  socket.write(`${line}\r\n`, 'latin1');
}

/** Cancels after Noise message 2 (`*`, then `501 5.7.0`), then leaves. Nothing else is sent. */
async function cancel(socket: Socket, reader: ReplyReader): Promise<void> {
  writeLine(socket, '*');
  await reader.read(MAX_REPLY_LINE).catch(() => undefined);
  await quit(socket, reader, true);
}

async function quit(socket: Socket, reader: ReplyReader, sayQuit: boolean): Promise<void> {
  if (sayQuit && socket.writable) {
    socket.write('QUIT\r\n');
    await reader.read(MAX_REPLY_LINE).catch(() => undefined);
  }
  socket.destroy();
}
