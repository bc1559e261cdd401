import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOOPBACK = '127.0.0.1';
const ATTEMPTS = 50;
/** The lowest port handed out; below it are the well-known and common service ports. */
const LOWEST = 10_000;

/**
 * Ports handed out, below the kernel's ephemeral range: a port there can be taken, between our
 * check and the server's bind, as the source port of any outgoing connection the tests make (a
 * CI run saw blackpony's listen fail with EADDRINUSE, and a relay reach another test's server).
 */
function portRange(): [number, number] {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && low - 1 - LOWEST >= 1_000) return [LOWEST, low - 1];
  } catch {
    // Not Linux: the OS's choice below.
  }
  return [0, 0];
}

const [FIRST, LAST] = portRange();

/**
 * A loopback port that is free right now, picked at random below the ephemeral range (where the
 * OS has one, else by the OS: listen on port 0), then closed again. With `udp`, the same port
 * number is also free for UDP (for DNS servers, which serve both).
 */
export async function freePort(options: { udp?: boolean } = {}): Promise<number> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const candidate = FIRST === 0 ? 0 : FIRST + Math.floor(Math.random() * (LAST - FIRST + 1));
    const port = await listenAndClose(LOOPBACK, candidate);
    if (port === undefined) continue;
    if (!options.udp || (await udpPortFree(port))) return port;
  }
  throw new Error(`ports: no loopback port free${options.udp ? ' for both TCP and UDP' : ''} after ${ATTEMPTS} attempts`);
}

/** Whether a TCP listener could bind host:port right now. */
export async function tcpPortFree(host: string, port: number): Promise<boolean> {
  return (await listenAndClose(host, port)) !== undefined;
}

/** Listens on host:port and closes again; resolves with the bound port, or undefined if it was taken. */
function listenAndClose(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(undefined) : reject(error)));
    server.listen({ host, port, exclusive: true }, () => {
      const address = server.address();
      server.close(() => resolve(address !== null && typeof address === 'object' ? address.port : undefined));
    });
  });
}

function udpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind({ address: LOOPBACK, port, exclusive: true }, () => socket.close(() => resolve(true)));
  });
}
