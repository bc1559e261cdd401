/**
 * A misbehaving remote MX (a legacy one: no XPONY, no STARTTLS): it answers one stage of the
 * SMTP dialogue with a given reply, says nothing at all or from one stage on, drops the
 * connection mid-DATA, botches STARTTLS, floods the client with octets nobody asked for, or
 * (kind 'none') behaves.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';

export type Stage = 'greeting' | 'EHLO' | 'MAIL' | 'RCPT' | 'DATA' | 'end-of-data';
export type Misbehaviour =
  | { kind: 'none' }
  | { kind: 'reply'; stage: Stage; reply: string }
  /** Says nothing at all, not even a greeting. */
  | { kind: 'silent' }
  /** Behaves until `stage`, then says nothing more (a remote slower than any timeout). */
  | { kind: 'stall'; stage: Stage }
  | { kind: 'drop-mid-data' }
  /** Offers STARTTLS and answers it with 220, then the TLS hello with bytes that are not TLS (or, 'silent', nothing). */
  | { kind: 'broken-starttls'; tls: 'garbage' | 'silent' }
  /**
   * Sends octets without end (as fast as the client takes them, up to FLOOD_CAP): after its 354
   * while no longer reading the message ('DATA'), or after its 250 to the end of data, while the
   * client's session is idle ('idle').
   */
  | { kind: 'flood'; when: 'DATA' | 'idle' };

/** One flood: octets the client took, and whether the client closed the connection. */
export interface Flood {
  octets: number;
  closedByClient: boolean;
}

/** Where a flood stops by itself: far beyond any bound a client should keep. */
export const FLOOD_CAP = 1024 * 1024 * 1024;

export interface FakeMx {
  misbehaviour: Misbehaviour;
  /** Connections it has seen. */
  connections: number;
  /** Messages it accepted (250 to the end of data), as received. */
  received: string[];
  /** Floods sent, in order. */
  floods: Flood[];
  close(): Promise<void>;
}

const NORMAL: Record<Stage, string> = {
  greeting: '220 mx.fake.test ESMTP',
  EHLO: '250-mx.fake.test\r\n250 8BITMIME',
  MAIL: '250 2.1.0 Ok',
  RCPT: '250 2.1.5 Ok',
  DATA: '354 End data with <CR><LF>.<CR><LF>',
  'end-of-data': '250 2.0.0 Ok: queued',
};

export async function startFakeMx(host: string, port: number, misbehaviour: Misbehaviour): Promise<FakeMx> {
  const sockets = new Set<Socket>();
  const mx: FakeMx = { misbehaviour, connections: 0, received: [], floods: [], close: async () => undefined };
  const answer = (socket: Socket, stage: Stage): boolean => {
    if (mx.misbehaviour.kind === 'stall' && mx.misbehaviour.stage === stage) return false;
    const bad = mx.misbehaviour.kind === 'reply' && mx.misbehaviour.stage === stage;
    socket.write(`${bad && mx.misbehaviour.kind === 'reply' ? mx.misbehaviour.reply : NORMAL[stage]}\r\n`);
    return !bad;
  };
  const flood = (socket: Socket): void => {
    const record: Flood = { octets: 0, closedByClient: false };
    mx.floods.push(record);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const more = (): void => {
      while (!socket.destroyed && record.octets < FLOOD_CAP) {
        record.octets += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', more);
      }
    };
    socket.once('close', () => (record.closedByClient = record.octets < FLOOD_CAP));
    more();
  };
  const server: Server = createServer((socket) => {
    mx.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (mx.misbehaviour.kind === 'silent') return;
    if (!answer(socket, 'greeting')) return void socket.end();
    let buffered = '';
    let inData = false;
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      if (inData) {
        if (mx.misbehaviour.kind === 'drop-mid-data' && buffered.length > 1_000) return void socket.destroy();
        const end = buffered.indexOf('\r\n.\r\n');
        if (end < 0) return;
        inData = false;
        const message = buffered.slice(0, end + 2);
        buffered = buffered.slice(end + 5);
        if (answer(socket, 'end-of-data')) mx.received.push(message);
        if (mx.misbehaviour.kind === 'flood' && mx.misbehaviour.when === 'idle') return void flood(socket);
      }
      for (let eol = buffered.indexOf('\r\n'); eol >= 0 && !inData; eol = buffered.indexOf('\r\n')) {
        const verb = buffered.slice(0, eol).split(' ')[0]!.toUpperCase();
        buffered = buffered.slice(eol + 2);
        if (verb === 'EHLO' || verb === 'HELO') {
          if (mx.misbehaviour.kind === 'broken-starttls') socket.write('250-mx.fake.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n');
          else answer(socket, 'EHLO');
        } else if (verb === 'STARTTLS' && mx.misbehaviour.kind === 'broken-starttls') {
          socket.write('220 2.0.0 Ready to start TLS\r\n');
          const answer = mx.misbehaviour.tls === 'garbage' ? 'this is not a TLS handshake\r\n' : '';
          socket.removeAllListeners('data');
          socket.once('data', () => socket.write(answer));
          return;
        } else if (verb === 'MAIL') answer(socket, 'MAIL');
        else if (verb === 'RCPT') answer(socket, 'RCPT');
        else if (verb === 'DATA') {
          inData = answer(socket, 'DATA');
          if (mx.misbehaviour.kind === 'flood' && mx.misbehaviour.when === 'DATA') {
            socket.removeAllListeners('data');
            socket.pause(); // the message is never read: the client can only wait, or give up
            return void flood(socket);
          }
        } else if (verb === 'QUIT') return void socket.end('221 2.0.0 Bye\r\n');
        else socket.write('250 2.0.0 Ok\r\n');
      }
    });
  });
  server.listen(port, host);
  await once(server, 'listening');
  mx.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return mx;
}
