/**
 * The responder's side of one XPONY handshake (docs/PROTOCOL.md sections 3-4), as a plaintext
 * session runs it: the XPONY command with Noise message 1, the 334 challenge with message 2, the
 * continuation line with message 3, then the switch point (tunnel-switch.ts) and the wait for the
 * client's tunnel-open frame. Before any Noise work it counts the handshake against the server's
 * and the client's limits; it times each handshake and reports each outcome (server-events.ts).
 */
import type { HandshakeState } from '../crypto/noise/index.js';
import { fingerprint } from '../crypto/fingerprint.js';
import type { LineHandler } from '../smtp/index.js';
import type { ClientLease } from './client-limiter.js';
import { endorse } from './endorsement.js';
import { FrameError } from './frames.js';
import { decodeMessage, encodeMessage, startHandshake } from './handshake.js';
import { HANDSHAKE_TIMEOUT_MS, MAX_CHALLENGE_LINE, MAX_COMMAND_LINE, MAX_PENDING_HANDSHAKES, type LimitName, type ProtocolVersion } from './limits.js';
import { decodePayload, encodePayload } from './payload.js';
import type { PlaintextTranscript } from './prologue.js';
import { Replies, type XponyReply } from './replies.js';
import { reportClientLimit, reportHandshake, type XponyHandshakeEvent } from './server-events.js';
import { serverVersions, type XponyServerState } from './server-options.js';
import type { XponySessionInfo } from './session.js';
import type { Tunnel } from './tunnel.js';

const CRLF_LENGTH = 2;

interface OverLimit {
  limit: LimitName;
  reply: XponyReply;
}
/** MAX_PENDING_HANDSHAKES reached: this server is busy with handshakes, whoever asks. */
const SERVER_BUSY: OverLimit = { limit: 'max_pending_handshakes', reply: Replies.unavailable };
const VERSION_SYNTAX = /^[0-9]{1,3}$/;

/** What the handshake needs of its plaintext session (server-connection.ts). */
export interface HandshakeSession {
  readonly id: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly xponyServer: XponyServerState;
  /** This connection's share of its client's counts, once admitted. */
  readonly lease: ClientLease | undefined;
  reply(reply: XponyReply): void;
  /** Has the next line go to `handler` instead of the command dispatch (false: commands again). */
  expectLine(handler: LineHandler | false): void;
  /** Retires the plaintext session at the switch point; the tunnel is not open yet. */
  switchToTunnel(ciphers: ReturnType<HandshakeState['split']>): Tunnel;
  /** Serves a fresh SMTP session inside the opened tunnel. */
  serveTunnel(tunnel: Tunnel, info: XponySessionInfo): void;
  /** Ends the connection without a word. */
  destroy(): void;
}

export class ServerHandshake {
  private handshakeTimer: NodeJS.Timeout | undefined;
  private message3Timer: NodeJS.Timeout | undefined;
  private started = 0;
  private pending = false;
  /** Well-formed XPONY commands on this connection: each one asks for Noise work. */
  private attempts = 0;
  /** Past the switch point: the plaintext session is over and says nothing more. */
  switched = false;
  /** The connection closed. */
  private closed = false;

  constructor(private readonly session: HandshakeSession) {}

  /** Refuses the XPONY command: it may not run now. The session goes on in plaintext. */
  refuse(reply: XponyReply, callback: () => void): void {
    this.fail(reply, callback);
  }

  /** The XPONY command, `transcript` the plaintext octets so far (the prologue binds them). */
  start(command: Buffer, transcript: Omit<PlaintextTranscript, 'version'>, callback: () => void): void {
    const server = this.session.xponyServer;
    const parts = command.toString('latin1').split(' ');
    const [, version, message1] = parts;
    if (parts.length !== 3 || version === undefined || message1 === undefined) {
      this.fail(Replies.syntax('expected "XPONY <version> <base64>"'), callback);
      return;
    }
    if (!VERSION_SYNTAX.test(version)) {
      this.fail(Replies.syntax('version must be 1 to 3 digits'), callback);
      return;
    }
    const offered = serverVersions(server.xponyOptions).find((v) => v === version);
    if (offered === undefined) {
      this.fail(Replies.versionNotSupported(version), callback);
      return;
    }
    const bytes = this.handshakeMessage(command, message1, 'Noise message 1', callback);
    if (bytes === undefined) return;
    // Before any Noise work: what it costs must not be this client's to demand without bound.
    const overLimit = this.limitNow();
    if (overLimit instanceof Promise) void overLimit.then((later) => this.respond(later, offered, bytes, transcript, callback));
    else this.respond(overLimit, offered, bytes, transcript, callback);
  }

  /** Noise message 2 in a 334 challenge, unless the handshake is over a limit (or the connection went meanwhile). */
  private respond(
    limit: OverLimit | undefined,
    offered: ProtocolVersion,
    bytes: Uint8Array,
    transcript: Omit<PlaintextTranscript, 'version'>,
    callback: () => void,
  ): void {
    if (this.closed) return;
    // While a shared count answered, other handshakes may have begun: the server-wide bound again.
    const overLimit = limit ?? (this.session.xponyServer.pendingHandshakes >= MAX_PENDING_HANDSHAKES ? SERVER_BUSY : undefined);
    if (overLimit !== undefined) {
      this.fail(overLimit.reply, callback);
      this.emitLimit(overLimit.limit, overLimit.reply);
      return;
    }
    this.begin();
    const server = this.session.xponyServer;
    const options = server.xponyOptions;
    let handshake: HandshakeState;
    let challenge: string;
    try {
      handshake = startHandshake(
        false,
        { ...transcript, version: offered },
        {
          staticKey: options.keys.noise,
          ...(options.fixedEphemeral === undefined ? {} : { fixedEphemeral: options.fixedEphemeral }),
          ...(options.fixedKemEphemeral === undefined ? {} : { fixedKemEphemeral: options.fixedKemEphemeral }),
        },
      );
      if (handshake.readMessage(bytes).length > 0) throw new Error('Noise message 1 must carry an empty payload');
      const { keys } = options;
      // h1 and the client's ephemeral bind each endorsement to this handshake (endorsement.ts).
      const h1 = handshake.handshakeHash;
      const endorsements = keys.previousNoise.map((previous) => endorse(previous, handshake.remoteEphemeralKey!, h1, keys.noise.publicKey));
      const payload = encodePayload({
        ageRecipients: [keys.ageX25519Recipient, keys.ageHybridRecipient],
        hostName: options.hostName,
        ...(endorsements.length === 0 ? {} : { endorsements }),
        ...(options.announceSealedRelay === true ? { sealedRelay: true } : {}),
      });
      challenge = encodeMessage(handshake.writeMessage(payload));
    } catch (err) {
      this.fail(Replies.handshakeFailed((err as Error).message), callback);
      return;
    }
    if (`334 ${challenge}\r\n`.length > MAX_CHALLENGE_LINE) {
      // Only a misconfigured server gets here (too many or too long recipients).
      this.fail(Replies.unavailable, callback);
      return;
    }
    this.session.expectLine((line: Buffer, next: () => void) => this.onMessage3(handshake, offered, line, next));
    this.session.reply(Replies.challenge(challenge));
    this.message3Timer = timer(server.clientLimiter.settings.message3TimeoutMs, () => {
      this.emitLimit('handshake_message3_seconds', Replies.message3Timeout);
      this.onTimeout(Replies.message3Timeout);
    });
    callback();
  }

  /** The connection closed: a handshake in progress stops counting, and one waiting for its count does not start. */
  close(): void {
    this.closed = true;
    this.end();
  }

  /** The handshake is over: it stops counting. */
  private end(): void {
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.message3Timer);
    this.session.lease?.endHandshake();
    if (this.pending) {
      this.pending = false;
      this.session.xponyServer.pendingHandshakes--;
    }
  }

  /** The Noise message carried base64 in a command or continuation line; on a bad line, replies 501 and returns undefined. */
  private handshakeMessage(line: Buffer, base64: string, what: string, callback: () => void): Uint8Array | undefined {
    try {
      if (line.length + CRLF_LENGTH > MAX_COMMAND_LINE) throw new Error(`line longer than ${MAX_COMMAND_LINE} octets`);
      return decodeMessage(base64, what);
    } catch (err) {
      this.fail(Replies.syntax((err as Error).message), callback);
      return undefined;
    }
  }

  /** The limit a new handshake on this connection would exceed, if any (a shared count answers later); counts the attempt. */
  private limitNow(): OverLimit | undefined | Promise<OverLimit | undefined> {
    const server = this.session.xponyServer;
    if (++this.attempts > server.clientLimiter.settings.xponyAttemptsPerConnection)
      return { limit: 'xpony_attempts_per_connection', reply: Replies.tooManyAttempts };
    if (server.pendingHandshakes >= MAX_PENDING_HANDSHAKES) return SERVER_BUSY;
    const granted = this.session.lease?.beginHandshake() ?? true;
    const perClient = (yes: boolean): OverLimit | undefined => (yes ? undefined : { limit: 'pending_handshakes_per_client', reply: Replies.tooManyHandshakes });
    return granted instanceof Promise ? granted.then(perClient) : perClient(granted);
  }

  private onMessage3(handshake: HandshakeState, version: ProtocolVersion, line: Buffer, callback: () => void): void {
    clearTimeout(this.message3Timer);
    const text = line.toString('latin1');
    if (text === '*') {
      this.fail(Replies.cancelled, callback, 'cancelled');
      return;
    }
    const bytes = this.handshakeMessage(line, text, 'Noise message 3', callback);
    if (bytes === undefined) return;
    let hostName: string | undefined;
    try {
      hostName = decodePayload(handshake.readMessage(bytes)).hostName;
    } catch (err) {
      this.fail(Replies.handshakeFailed((err as Error).message), callback);
      return;
    }
    const remoteStaticKey = handshake.remoteStaticKey!;
    const ciphers = handshake.split();
    this.session.reply(Replies.tunnelReady);
    this.switched = true;
    const tunnel = this.session.switchToTunnel(ciphers);
    this.awaitTunnelOpen(tunnel, {
      version,
      remoteStaticKey,
      remoteFingerprint: fingerprint(remoteStaticKey),
      hostName,
      remoteAddress: this.session.remoteAddress,
      remotePort: this.session.remotePort,
      rawOctetsReceived: () => tunnel.rawOctetsReceived,
    });
    // Resume, and so drain without dispatching, the retired parser (as upgrade() does).
    setImmediate(callback);
  }

  /** The handshake ends with the client's first frame: the tunnel-open frame, or a failure. */
  private awaitTunnelOpen(tunnel: Tunnel, info: XponySessionInfo): void {
    const beforeOpen = (err: Error): void => {
      if (!this.pending) return; // already timed out
      this.end();
      this.emitHandshake({ outcome: 'failed', reason: err.message });
    };
    tunnel.on('error', beforeOpen);
    tunnel.once('tunnel-open', (isOpenFrame: boolean) => {
      tunnel.off('error', beforeOpen);
      this.end();
      if (!isOpenFrame) {
        tunnel.destroy(new FrameError("the client's first frame is not the tunnel-open frame"));
        return;
      }
      this.emitHandshake({ outcome: 'tunnel', remoteStaticKey: info.remoteStaticKey });
      // Swallow errors after the inner session closed (it reports the first one).
      tunnel.on('error', () => undefined);
      this.session.serveTunnel(tunnel, info);
    });
  }

  /** Counts the handshake as pending (its client's share was taken in limitNow) and starts its clock. */
  private begin(): void {
    const server = this.session.xponyServer;
    this.pending = true;
    server.pendingHandshakes++;
    this.started = performance.now();
    this.handshakeTimer = timer(server.xponyOptions.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS, () => this.onTimeout(Replies.handshakeTimeout));
  }

  private onTimeout(reply: XponyReply): void {
    this.end();
    this.emitHandshake({ outcome: 'timeout', reply: `${reply.code} ${reply.text}` });
    if (this.switched) {
      // Past the switch point nothing may be said in plaintext: just close.
      this.session.destroy();
      return;
    }
    this.session.expectLine(false);
    this.session.reply(reply); // a 421: send() closes the connection
  }

  /** Refuses or ends the exchange; the session goes on in plaintext, as right after EHLO. */
  private fail(reply: XponyReply, callback: () => void, outcome?: XponyHandshakeEvent['outcome']): void {
    const wasPending = this.pending;
    this.end();
    this.session.reply(reply);
    this.emitHandshake({ outcome: outcome ?? (wasPending ? 'failed' : 'rejected'), reply: `${reply.code} ${reply.text}` });
    callback();
  }

  private emitLimit(limit: LimitName, reply: XponyReply): void {
    reportClientLimit(this.session.xponyServer, this.session, limit, reply);
  }

  private emitHandshake(event: Omit<XponyHandshakeEvent, 'sessionId' | 'seconds'>): void {
    reportHandshake(this.session.xponyServer, this.session.id, (performance.now() - this.started) / 1000, event);
  }
}

function timer(ms: number, action: () => void): NodeJS.Timeout {
  const timer = setTimeout(action, ms);
  timer.unref();
  return timer;
}
