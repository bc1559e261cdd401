/**
 * The HAProxy PROXY protocol, version 1 (haproxy's doc/proxy-protocol.txt, section 2.1): the
 * other way to tell Postfix who the client is, for a listener with
 * `smtpd_upstream_proxy_protocol = haproxy` (deploy/postfix/master.cf). One line goes first on
 * the connection, before Postfix even sends its greeting.
 */
import { SmtpClient, type SmtpEndpoint } from '../smtp/index.js';

export interface TcpEnd {
  address: string;
  port: number;
}

/** `PROXY TCP4|TCP6 <client> <server> <client port> <server port>\r\n`. */
export function proxyLine(client: TcpEnd, server: TcpEnd): string {
  const source = unmapped(client.address);
  const destination = unmapped(server.address);
  const family = source.includes(':') ? 'TCP6' : 'TCP4';
  if (destination.includes(':') !== (family === 'TCP6')) {
    throw new Error(`PROXY line: client ${source} and server ${destination} are not of one address family`);
  }
  return `PROXY ${family} ${source} ${destination} ${client.port} ${server.port}\r\n`;
}

const LOOPBACK = '127.0.0.1';
/** The port Postfix itself reports for a unix-socket client ("0"). */
const UNIX_PORT = 0;

/**
 * Connects, sends the PROXY line first, and reads the greeting Postfix sends once it has the line.
 * Without `line` the connection names itself: for blackpony asking on its own behalf (Postfix 3.7
 * refuses `PROXY UNKNOWN`); a unix socket has no addresses, so it names loopback.
 */
export function openWithProxyLine(endpoint: SmtpEndpoint, line?: string): Promise<SmtpClient> {
  return SmtpClient.open(
    endpoint,
    (socket) =>
      line ??
      proxyLine(
        { address: socket.localAddress ?? LOOPBACK, port: socket.localPort ?? UNIX_PORT },
        { address: socket.remoteAddress ?? LOOPBACK, port: socket.remotePort ?? UNIX_PORT },
      ),
  );
}

/** An IPv4 client on a dual-stack socket appears as ::ffff:a.b.c.d; Postfix wants a.b.c.d. */
export function unmapped(address: string): string {
  return address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}
