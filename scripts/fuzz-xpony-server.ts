/**
 * A real XponyServer on loopback for the whole fuzz run, one connection per input:
 * - the XPONY command line: after EHLO the client sends `XPONY <input>`; the server must answer
 *   with one of the handshake's replies (a 334 challenge, which the client cancels, or a refusal)
 *   and then go on serving the plaintext session, whatever the line held;
 * - the BDAT path inside a tunnel: after MAIL FROM with XPONY-BINARY and RCPT, the input goes as
 *   the rest of the inner session (BDAT lines, chunk octets, commands), its first half in frames
 *   and its second in a raw run (XPONY-RAW-PAYLOAD: a server does not check where a client puts
 *   them), then the close frame; the server must answer and close the tunnel, without an error of
 *   its own.
 */
import { connect, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { generateKeys, type Keys } from '../src/crypto/keyfile.js';
import { BINARY_KEYWORD } from '../src/xpony/binary-message.js';
import { connectXpony } from '../src/xpony/client.js';
import { MAX_REPLY_LINE } from '../src/smtp/limits.js';
import { DEFAULT_CLIENT_LIMITS, MAX_CHALLENGE_LINE } from '../src/xpony/limits.js';
import { ReplyReader } from '../src/smtp/reply-reader.js';
import { createXponyServer, type XponyServer } from '../src/xpony/server.js';

/** Replies an XPONY command may get right after EHLO: challenge, syntax, version, handshake failed. */
const XPONY_REPLIES = [334, 501, 504, 535];

let listening: Promise<{ server: XponyServer; port: number; errors: Error[] }> | undefined;

function server(): Promise<{ server: XponyServer; port: number; errors: Error[] }> {
  listening ??= (async () => {
    const errors: Error[] = [];
    const server = createXponyServer({
      keys: generateKeys(),
      hostName: 'mx.example.test',
      disableReverseLookup: true,
      hideSTARTTLS: true,
      authOptional: true,
      logger: false,
      closeTimeout: 100,
      // One session serves every input: the limit on XPONY attempts per connection would answer
      // every well-formed line after the first two with 454 instead of running the handshake.
      clientLimits: { ...DEFAULT_CLIENT_LIMITS, xponyAttemptsPerConnection: Number.MAX_SAFE_INTEGER },
    });
    server.on('error', (error: Error) => errors.push(error));
    server.listen(0, '127.0.0.1');
    await once(server.server, 'listening');
    // The fuzz run ends when its work does; this server must not keep the process alive.
    server.server.unref();
    return { server, port: (server.server.address() as AddressInfo).port, errors };
  })();
  return listening;
}

/** Sends `line` and reads the reply code; throws a message naming the step. */
async function exchange(socket: Socket, reader: ReplyReader, line: Buffer | string, maxLine = MAX_REPLY_LINE): Promise<number> {
  socket.write(Buffer.concat([Buffer.isBuffer(line) ? line : Buffer.from(line, 'latin1'), Buffer.from('\r\n')]));
  return (await reader.read(maxLine)).code;
}

interface Session {
  socket: Socket;
  reader: ReplyReader;
}

/** One plaintext session serves input after input (the greeting waits 100 ms); a new one after a failure. */
let session: Promise<Session> | undefined;

async function openSession(): Promise<Session> {
  const { port } = await server();
  const socket = connect(port, '127.0.0.1');
  socket.unref();
  const reader = new ReplyReader(socket);
  await reader.read(MAX_REPLY_LINE);
  return { socket, reader };
}

/** The run before: fast-check may abandon a run at its time limit, but the session is still in it. */
let previous: Promise<unknown> = Promise.resolve();

/**
 * Runs one XPONY line (CR and LF removed, so it stays one line) through the server, after the
 * run before finished. Returns why the server misbehaved, or undefined.
 */
export function xponyServerVerdict(input: Uint8Array): Promise<string | undefined> {
  const run = previous.then(() => verdict(input));
  previous = run.catch(() => undefined);
  return run;
}

async function verdict(input: Uint8Array): Promise<string | undefined> {
  const { errors } = await server();
  const current = (session ??= openSession());
  let problem: string | undefined = 'no verdict';
  try {
    problem = await sessionVerdict(await current, input);
  } finally {
    if (problem !== undefined) {
      session = undefined;
      (await current.catch(() => undefined))?.socket.destroy();
    }
  }
  return (
    problem ??
    (errors.length > 0
      ? `server error: ${errors
          .splice(0)
          .map((e) => e.message)
          .join('; ')}`
      : undefined)
  );
}

async function sessionVerdict({ socket, reader }: Session, input: Uint8Array): Promise<string | undefined> {
  if ((await exchange(socket, reader, 'EHLO client.example.test')) !== 250) return 'EHLO refused';
  const line = Buffer.concat([Buffer.from('XPONY ', 'latin1'), Buffer.from(input.filter((b) => b !== 0x0d && b !== 0x0a))]);
  const code = await exchange(socket, reader, line, MAX_CHALLENGE_LINE);
  if (!XPONY_REPLIES.includes(code)) return `XPONY answered ${code}`;
  if (code === 334 && (await exchange(socket, reader, '*')) !== 501) return 'cancel not answered 501';
  if ((await exchange(socket, reader, 'NOOP')) !== 250) return 'the plaintext session did not go on after XPONY';
  return undefined;
}

let clientKeys: Keys | undefined;

/** Runs `input` as the inner session after MAIL FROM with XPONY-BINARY and RCPT, after the run before finished. */
export function bdatSessionVerdict(input: Uint8Array): Promise<string | undefined> {
  const run = previous.then(() => bdatVerdict(input));
  previous = run.catch(() => undefined);
  return run;
}

async function bdatVerdict(input: Uint8Array): Promise<string | undefined> {
  const { port, errors } = await server();
  const result = await connectXpony({ host: '127.0.0.1', port, localHostName: 'client.example.test', keys: (clientKeys ??= generateKeys()), timeoutMs: 5_000 });
  if (result.kind !== 'tunnel') return 'no tunnel';
  const tunnel = result.tunnel;
  tunnel.on('error', () => undefined);
  const closed = new Promise((resolve) => tunnel.once('close', resolve));
  try {
    const reader = new ReplyReader(tunnel);
    if ((await reader.read(MAX_REPLY_LINE)).code !== 220) return 'no inner greeting';
    for (const line of ['EHLO client.example.test', `MAIL FROM:<a@example.test> ${BINARY_KEYWORD}`, 'RCPT TO:<b@example.test>']) {
      tunnel.write(`${line}\r\n`);
      const code = (await reader.read(MAX_REPLY_LINE)).code;
      if (code !== 250) return `${line.split(' ')[0]} answered ${code}`;
    }
    const octets = Buffer.from(input);
    const half = octets.length >> 1;
    tunnel.write(octets.subarray(0, half));
    tunnel.end(half < octets.length ? tunnel.markRaw(octets.subarray(half)) : undefined);
    // Replies are read (and dropped) so that the server is never held up writing them.
    tunnel.resume();
    await closed;
  } finally {
    tunnel.destroy();
  }
  return errors.length > 0
    ? `server error: ${errors
        .splice(0)
        .map((e) => e.message)
        .join('; ')}`
    : undefined;
}
