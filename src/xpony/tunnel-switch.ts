import type { Socket } from 'node:net';
import type { HandshakeState } from '../crypto/noise/index.js';
import { Tunnel } from './tunnel.js';

/**
 * The switch point (docs/PROTOCOL.md section 4), on the server's socket once its plaintext parser
 * is retired: whatever arrived and was not processed yet is plaintext sent before it and is
 * discarded; from now on the socket carries frames only. The plaintext session's idle timer and
 * error reporting end here; the tunnel's session has its own. `acceptRawRuns`: the server offers
 * XPONY-RAW-PAYLOAD in the tunnel.
 */
export function switchToFrames(socket: Socket, ciphers: ReturnType<HandshakeState['split']>, acceptRawRuns: boolean): Tunnel {
  while (socket.read() !== null);
  socket.removeAllListeners('timeout');
  socket.removeAllListeners('error');
  return new Tunnel({ socket, send: ciphers.send, receive: ciphers.receive, acceptRawRuns });
}
