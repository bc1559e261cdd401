import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

const LOOPBACK = '127.0.0.1';
const ATTEMPTS = 20;

/**
 * A loopback port that is free right now: the OS picks it (listen on port 0), we close it again.
 * With `udp`, the same port number is also free for UDP (for DNS servers, which serve both).
 */
export async function freePort(options: { udp?: boolean } = {}): Promise<number> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const port = await listenAndClose(LOOPBACK, 0);
    if (port === undefined) continue;
    if (!options.udp || (await udpPortFree(port))) return port;
  }
  throw new Error(`ports: no loopback port free for both TCP and UDP after ${ATTEMPTS} attempts`);
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
