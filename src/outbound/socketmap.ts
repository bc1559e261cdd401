/**
 * Postfix's socketmap protocol (socketmap_table(5)) on the server side: Postfix sends one request
 * per lookup, `<map name> <key>` as a netstring, on a connection it keeps for further lookups,
 * and reads one netstring reply: `OK <value>`, `NOTFOUND `, `TEMP <reason>`, `TIMEOUT <reason>` or
 * `PERM <reason>`. Requests on one connection are answered in order.
 *
 * A malformed or oversized request is answered `PERM` and the connection closed: the peer is not
 * Postfix, and nothing it sends is buffered beyond one request.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { errorMessage } from '../error-message.js';

/** A request netstring's payload, in octets: a map name, a space and a key (a domain or address). */
export const MAX_SOCKETMAP_REQUEST = 4096;
/** Postfix refuses replies over 100000 octets (socketmap_table(5)); ours are far shorter. */
export const MAX_SOCKETMAP_REPLY = 100_000;
/** Lookups one connection may have under way; past this its socket is read no further until one ends. */
export const MAX_SOCKETMAP_IN_FLIGHT = 32;

export type SocketmapAnswer = { status: 'OK'; value: string } | { status: 'NOTFOUND' } | { status: 'TEMP' | 'TIMEOUT' | 'PERM'; reason: string };

export type SocketmapHandler = (map: string, key: string) => Promise<SocketmapAnswer>;

/** The reply netstring for an answer; reasons and values are kept to one line of printable octets. */
export function encodeAnswer(answer: SocketmapAnswer): Buffer {
  const text = answer.status === 'OK' ? `OK ${answer.value}` : answer.status === 'NOTFOUND' ? 'NOTFOUND ' : `${answer.status} ${answer.reason}`;
  const payload = Buffer.from(text.replace(/[^\x20-\x7e]/g, '?'), 'latin1').subarray(0, MAX_SOCKETMAP_REPLY);
  return Buffer.concat([Buffer.from(`${payload.length}:`, 'latin1'), payload, Buffer.from(',', 'latin1')]);
}

/** Why a connection's input is not a socketmap request stream. */
export class SocketmapRequestError extends Error {
  override readonly name = 'SocketmapRequestError';
}

/**
 * Splits a connection's octets into request payloads. Returns the payloads complete so far, and
 * the error that ends the stream if one follows them; keeps at most one partial request.
 */
export class NetstringReader {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): { requests: Buffer[]; error?: SocketmapRequestError } {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const requests: Buffer[] = [];
    try {
      this.split(requests);
    } catch (error) {
      if (!(error instanceof SocketmapRequestError)) throw error;
      this.buffer = Buffer.alloc(0);
      return { requests, error };
    }
    return { requests };
  }

  private split(requests: Buffer[]): void {
    for (;;) {
      const colon = this.buffer.indexOf(0x3a);
      const lengthText = this.buffer.toString('latin1', 0, Math.min(colon < 0 ? this.buffer.length : colon, 16));
      if (!/^[0-9]*$/.test(lengthText)) throw new SocketmapRequestError(`netstring length is not a number: ${JSON.stringify(lengthText)}`);
      if (lengthText.length > String(MAX_SOCKETMAP_REQUEST).length) throw new SocketmapRequestError(`netstring length longer than ${MAX_SOCKETMAP_REQUEST}`);
      if (colon < 0) break;
      if (!/^(?:0|[1-9][0-9]*)$/.test(lengthText)) throw new SocketmapRequestError(`netstring length is not a number: ${JSON.stringify(lengthText)}`);
      const length = Number(lengthText);
      if (length > MAX_SOCKETMAP_REQUEST) throw new SocketmapRequestError(`request of ${length} octets, more than ${MAX_SOCKETMAP_REQUEST}`);
      const end = colon + 1 + length;
      if (this.buffer.length <= end) break;
      if (this.buffer[end] !== 0x2c) throw new SocketmapRequestError('netstring not terminated by ","');
      requests.push(this.buffer.subarray(colon + 1, end));
      this.buffer = this.buffer.subarray(end + 1);
    }
  }
}

/** `<map> <key>` from a request payload. */
export function parseRequest(payload: Buffer): { map: string; key: string } {
  const text = payload.toString('utf8');
  const space = text.indexOf(' ');
  if (space <= 0 || space === text.length - 1) throw new SocketmapRequestError(`expected "<map> <key>", got ${JSON.stringify(text.slice(0, 80))}`);
  return { map: text.slice(0, space), key: text.slice(space + 1) };
}

/** A socketmap server; each connection's requests are answered in order by `handler`. */
export function createSocketmapServer(handler: SocketmapHandler): Server {
  // Half-open: a client that sends its last request and shuts down its side still gets every answer.
  return createServer({ allowHalfOpen: true }, (socket) => serveConnection(socket, handler));
}

function serveConnection(socket: Socket, handler: SocketmapHandler): void {
  const reader = new NetstringReader();
  // Answers in request order: each lookup starts at once, replies wait for those before them.
  let previous: Promise<void> = Promise.resolve();
  let inFlight = 0;
  const after = (step: () => void | Promise<void>): void => {
    previous = previous.then(step);
  };
  socket.on('data', (chunk: Buffer) => {
    const { requests, error } = reader.push(chunk);
    for (const payload of requests) {
      let request: { map: string; key: string };
      try {
        request = parseRequest(payload);
      } catch (failure) {
        if (!(failure instanceof SocketmapRequestError)) throw failure;
        refuse(failure);
        return;
      }
      const answer = handler(request.map, request.key).catch((failure: unknown): SocketmapAnswer => ({
        status: 'TEMP',
        reason: errorMessage(failure),
      }));
      if (++inFlight >= MAX_SOCKETMAP_IN_FLIGHT) socket.pause();
      after(async () => {
        const result = await answer;
        if (!socket.destroyed) socket.write(encodeAnswer(result));
        if (--inFlight < MAX_SOCKETMAP_IN_FLIGHT) socket.resume();
      });
    }
    if (error !== undefined) refuse(error);
  });
  /** The peer is not Postfix: one PERM after the answers due, then the connection ends. */
  function refuse(error: SocketmapRequestError): void {
    socket.removeAllListeners('data');
    socket.pause();
    after(() => {
      socket.end(encodeAnswer({ status: 'PERM', reason: `bad request: ${error.message}` }));
    });
  }
  socket.on('end', () => after(() => void socket.end()));
  socket.on('error', () => socket.destroy());
}
