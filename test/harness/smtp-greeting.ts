import { connect } from 'node:net';
import { waitBound } from './wait.js';

/**
 * Connects to an SMTP server (a TCP port on `host`, or a unix socket's path), reads its greeting
 * (all lines of the reply), says QUIT and closes. Rejects when the connection fails, closes early
 * or the greeting does not come within the wait bound.
 */
export function readSmtpGreeting(port: number | { path: string }, host = '127.0.0.1', timeoutMs = waitBound()): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = typeof port === 'number' ? connect({ host, port }) : connect(port);
    const where = typeof port === 'number' ? `${host}:${port}` : port.path;
    let received = '';
    socket.setEncoding('ascii');
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`SMTP greeting from ${where}: none after ${timeoutMs} ms`)));
    socket.on('data', (chunk: string) => {
      received += chunk;
      const reply = completeReply(received);
      if (reply === undefined) return;
      socket.end('QUIT\r\n');
      socket.destroySoon();
      resolve(reply);
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`SMTP greeting from ${where}: connection closed after ${JSON.stringify(received)}`)));
  });
}

/** The reply once its last line ("NNN text", no dash) has arrived. */
function completeReply(text: string): string | undefined {
  const lines = text.split('\r\n');
  const complete = lines.slice(0, -1);
  const last = complete.at(-1);
  return last !== undefined && /^\d{3}( |$)/.test(last) ? complete.join('\n') : undefined;
}
