/**
 * The example session of docs/PROTOCOL.md section 9, with fixed keys (ephemerals included).
 *
 * - The implementation (connectXpony against createXponyServer, through a recording relay) must
 *   produce the documented section octet for octet.
 * - The documented client side, replayed line by line and frame by frame against the server,
 *   must draw exactly the documented server side.
 *
 * Regenerate the section after an intended change: XPONY_WRITE_TRANSCRIPT=1 npx vitest run test/unit/protocol-transcript.test.ts
 */
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKeyFile } from '../../src/crypto/keyfile.js';
import { HandshakeState } from '../../src/crypto/noise/index.js';
import { x25519PublicKey, type X25519KeyPair } from '../../src/crypto/primitives.js';
import { FrameReader, FrameType } from '../../src/xpony/frames.js';
import { connectXpony, type TunnelResult } from '../../src/xpony/index.js';
import { NOISE_PROTOCOLS } from '../../src/xpony/limits.js';
import { encodePayload } from '../../src/xpony/payload.js';
import { buildPrologue } from '../../src/xpony/prologue.js';
import { RawSmtp, startRelay, startXponyServer, type Relay, type TestServer } from '../integration/xpony-fixtures.js';
import { waitFor } from '../harness/wait.js';

const DOC = new URL('../../docs/PROTOCOL.md', import.meta.url);
const HEADING = '## 14. Example session';
const CLIENT_NAME = 'client.example.test';

// Example keys: published here, so never use them for anything else.
const SERVER_KEYS = parseKeyFile(`blackpony-key-file: 1
noise-static: kK+Q5v4ZC6zuG6tGcmZNX9S/2Dd8JNY1hLsbvZKzHlo=
age-x25519: AGE-SECRET-KEY-1XPXTTD4P6NXJMKNL429UVL7TA8JJNT2GQLM82XHJNQS6D6XYK9FQUKQ673
age-hybrid: AGE-SECRET-KEY-PQ-15XLP77JLWXPDY8TMYXF22PM5KNNGUGN7KSCWPVDLJDVSJM6MSAYSNRQ0KH
`);
const pair = (hex: string): X25519KeyPair => {
  const privateKey = new Uint8Array(Buffer.from(hex, 'hex'));
  return { privateKey, publicKey: x25519PublicKey(privateKey) };
};
const CLIENT_STATIC = pair(Buffer.from('cAQEGXRNkaIDZ0S6RSTFkbjiZNIKAvyOXI7XARzhX0U=', 'base64').toString('hex'));
const SERVER_EPHEMERAL = pair('a8abababababababababababababababababababababababababababababab6b');
const CLIENT_EPHEMERAL = pair('58cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd4d');
// Version 2's ML-KEM randomness: the client's key seed d || z, the server's encapsulation message m.
const CLIENT_KEM_SEED = new Uint8Array(Buffer.from('c1'.repeat(64), 'hex'));
const SERVER_KEM_RANDOMNESS = new Uint8Array(Buffer.from('5e'.repeat(32), 'hex'));

/** One unit on the wire: a plaintext line (without its CRLF) or a whole frame. */
interface Unit {
  from: 'C' | 'S';
  kind: 'line' | 'frame';
  bytes: Buffer;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Splits what the relay saw, in arrival order, into lines up to the switch point and frames after it. */
function unitsOf(chunks: Array<{ from: 'C' | 'S'; data: Buffer }>): Unit[] {
  const pending = { C: Buffer.alloc(0), S: Buffer.alloc(0) };
  // Plaintext lines before the switch point: the client sends 3 (EHLO, XPONY, message 3).
  const linesLeft = { C: 3, S: Number.POSITIVE_INFINITY };
  const units: Unit[] = [];
  for (const { from, data } of chunks) {
    pending[from] = Buffer.concat([pending[from], data]);
    for (;;) {
      const buffer = pending[from];
      if (linesLeft[from] > 0) {
        const end = buffer.indexOf('\r\n');
        if (end < 0) break;
        const line = buffer.subarray(0, end);
        units.push({ from, kind: 'line', bytes: line });
        pending[from] = buffer.subarray(end + 2);
        linesLeft[from]--;
        if (from === 'S' && line.toString('latin1') === '220 2.0.0 XPONY tunnel ready') linesLeft.S = 0;
      } else {
        if (buffer.length < 2 || buffer.length < 2 + buffer.readUInt16BE(0)) break;
        const length = 2 + buffer.readUInt16BE(0);
        units.push({ from, kind: 'frame', bytes: buffer.subarray(0, length) });
        pending[from] = buffer.subarray(length);
      }
    }
  }
  return units;
}

/** Opens the frames with keys from a handshake replayed on the documented lines, to annotate them. */
function annotations(units: Unit[]): Map<Unit, string> {
  const lines = units.filter((u) => u.kind === 'line');
  const text = (u: Unit) => u.bytes.toString('latin1');
  const reply = (from: number) => {
    const out: Unit[] = [];
    for (let i = from; i < lines.length && lines[i]!.from === 'S'; i++) {
      out.push(lines[i]!);
      if (text(lines[i]!)[3] === ' ') break;
    }
    return out;
  };
  const greeting = reply(0);
  const ehloLine = lines[greeting.length]!;
  const ehloReply = reply(greeting.length + 1);
  const withCrlf = (us: Unit[]) => Buffer.concat(us.map((u) => Buffer.concat([u.bytes, Buffer.from('\r\n')])));
  const state = new HandshakeState({
    protocolName: NOISE_PROTOCOLS['2'],
    initiator: true,
    prologue: buildPrologue({ greeting: withCrlf(greeting), ehloLine: withCrlf([ehloLine]), ehloReply: withCrlf(ehloReply), version: '2' }),
    s: CLIENT_STATIC,
    e: CLIENT_EPHEMERAL,
    kemEphemeral: CLIENT_KEM_SEED,
  });
  const [xpony, challenge, message3] = lines.slice(greeting.length + 1 + ehloReply.length);
  const message1 = state.writeMessage(new Uint8Array(0));
  expect(`XPONY 2 ${Buffer.from(message1).toString('base64')}`).toBe(text(xpony!));
  const message2 = Buffer.from(text(challenge!).slice(4), 'base64');
  state.readMessage(message2);
  layout.message1 = message1;
  layout.message2 = message2;
  expect(Buffer.from(state.writeMessage(encodePayload({ ageRecipients: [], hostName: CLIENT_NAME }))).toString('base64')).toBe(text(message3!));
  const { send, receive } = state.split();
  const readers = { C: new FrameReader(send), S: new FrameReader(receive) };
  const notes = new Map<Unit, string>();
  const names = { [FrameType.data]: 'data', [FrameType.rekey]: 'rekey', [FrameType.close]: 'close', [FrameType.rawRun]: 'raw run' };
  for (const unit of units.filter((u) => u.kind === 'frame')) {
    const [frame] = readers[unit.from].push(unit.bytes);
    const content = Buffer.concat(frame!.content).toString('latin1');
    const note =
      frame!.type === FrameType.data && content === '' && unit === units.find((u) => u.kind === 'frame')
        ? 'data "" (tunnel-open)'
        : `${names[frame!.type]}${frame!.type === FrameType.data ? ' ' + JSON.stringify(content) : ''}`;
    notes.set(unit, note);
  }
  return notes;
}

/** Noise messages 1 and 2 of the session, for the layout table. */
const layout: { message1?: Uint8Array; message2?: Uint8Array } = {};

/** Each token's octets in messages 1 and 2 (PROTOCOL.md section 7): offset, length, first octets. */
function layoutTable(): string {
  const row = (message: Uint8Array, name: string, offset: number, length: number, what: string) =>
    `${name.padEnd(9)} ${String(offset).padStart(4)} ${String(length).padStart(5)}  ${hex(message.subarray(offset, offset + Math.min(length, 8)))}${length > 8 ? '...' : ''}  ${what}`;
  const m1 = layout.message1!;
  const m2 = layout.message2!;
  const payload2 = m2.length - 1184;
  return [
    `message 1 (${m1.length} octets)`,
    row(m1, '  e', 0, 32, 'client ephemeral X25519 public key, clear'),
    row(m1, '  e1', 32, 1184, 'client ML-KEM-768 encapsulation key, clear (no key yet)'),
    `message 2 (${m2.length} octets)`,
    row(m2, '  e', 0, 32, 'server ephemeral X25519 public key, clear'),
    row(m2, '  ekem1', 32, 1104, 'ML-KEM-768 ciphertext (1088) + tag (16), encrypted after ee; then MixKey(shared secret)'),
    row(m2, '  s', 1136, 48, 'server static key (32) + tag (16)'),
    row(m2, '  payload', 1184, payload2, `section 7 payload (${payload2 - 16}) + tag (16)`),
  ].join('\n');
}

function render(units: Unit[]): string {
  const notes = annotations(units);
  const body = units.map((u) => (u.kind === 'line' ? `${u.from}: ${u.bytes.toString('latin1')}` : `${u.from}> ${hex(u.bytes)}\n   ${notes.get(u)}`)).join('\n');
  const key = (name: string, k: X25519KeyPair) => `${name} ${hex(k.privateKey)} (public ${hex(k.publicKey)})`;
  return `${HEADING}

This section is generated from the implementation by \`test/unit/protocol-transcript.test.ts\`,
which also checks that the implementation still produces it octet for octet and that the client
side below, replayed against the server, draws exactly the server side below. The keys are fixed,
the ephemeral ones included, which a real implementation MUST NOT do: they are published here.

Keys (X25519 private keys in hex, public halves in parentheses; the server's age identities):

\`\`\`
${key('server static:   ', SERVER_KEYS.noise)}
${key('server ephemeral:', SERVER_EPHEMERAL)}
${key('client static:   ', CLIENT_STATIC)}
${key('client ephemeral:', CLIENT_EPHEMERAL)}
client ML-KEM-768 key seed (d || z):  ${hex(CLIENT_KEM_SEED)}
server ML-KEM-768 encapsulation m:    ${hex(SERVER_KEM_RANDOMNESS)}
server age-x25519: ${SERVER_KEYS.ageX25519Identity}
server age-hybrid: ${SERVER_KEYS.ageHybridIdentity}
\`\`\`

Both sides offer and pick version 2 (\`Noise_XXhfs_25519+MLKEM768_ChaChaPoly_SHA256\`). The tokens
of Noise messages 1 and 2 in the session below (offset and length in octets, the first octets in
hex; message 3 is as in version 1):

\`\`\`
${layoutTable()}
\`\`\`

Transcript. \`C:\` and \`S:\` are plaintext lines from the client and the server, each followed by
CRLF on the wire. \`C>\` and \`S>\` are whole frames in hex (the length, then the Noise transport
message); the indented line under each is its decrypted body: the type, and the content of a data
frame as a JSON string. The inner session says EHLO, sends one message (the client rekeys right
after its end, the server after its final reply to DATA) and QUIT; the server ends with a close frame,
and the client closes the connection.

\`\`\`
${body}
\`\`\`
`;
}

function docSection(): string {
  const doc = readFileSync(DOC, 'utf8');
  const start = doc.indexOf(`\n${HEADING}\n`);
  if (start < 0) return '';
  const end = doc.indexOf('\n## ', start + 1);
  // Up to the next heading, without the blank lines before it.
  return doc.slice(start + 1, end < 0 ? undefined : end + 1).replace(/\n+$/, '\n');
}

function writeDocSection(section: string): void {
  const doc = readFileSync(DOC, 'utf8');
  const old = docSection();
  writeFileSync(DOC, old === '' ? `${doc.trimEnd()}\n\n${section}` : doc.replace(old, section));
}

/** Units as the documented text lists them. */
function parseDoc(section: string): Unit[] {
  const block = section.slice(section.lastIndexOf('```\n', section.length - 5) + 4, section.length - 5);
  const units: Unit[] = [];
  for (const line of block.split('\n')) {
    const match = /^([CS])([:>]) (.*)$/.exec(line);
    if (match === null) continue;
    const from = match[1] as 'C' | 'S';
    units.push(
      match[2] === ':' ? { from, kind: 'line', bytes: Buffer.from(match[3]!, 'latin1') } : { from, kind: 'frame', bytes: Buffer.from(match[3]!, 'hex') },
    );
  }
  return units;
}

describe('docs/PROTOCOL.md section 9: example session', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startXponyServer({
      keys: SERVER_KEYS,
      hostName: 'mx.example.test',
      fixedEphemeral: SERVER_EPHEMERAL,
      fixedKemEphemeral: SERVER_KEM_RANDOMNESS,
      disabledCommands: ['AUTH'],
    });
  });
  afterAll(async () => {
    await srv.close();
  });

  it('is what the implementation produces, octet for octet', async () => {
    const chunks: Array<{ from: 'C' | 'S'; data: Buffer }> = [];
    const relay: Relay = await startRelay(srv.port, {
      fromClient: (data) => (chunks.push({ from: 'C', data }), data),
      fromServer: (data) => (chunks.push({ from: 'S', data }), data),
    });
    try {
      const result = (await connectXpony({
        host: '127.0.0.1',
        port: relay.port,
        localHostName: CLIENT_NAME,
        keys: { noise: CLIENT_STATIC },
        fixedEphemeral: CLIENT_EPHEMERAL,
        fixedKemEphemeral: CLIENT_KEM_SEED,
      })) as TunnelResult;
      expect(result).toMatchObject({ kind: 'tunnel', version: '2' });
      const inner = new RawSmtp(result.tunnel);
      expect((await inner.reply()).code).toBe(220);
      expect(await inner.command(`EHLO ${CLIENT_NAME}`)).toMatch(/^250 /);
      expect(await inner.command('MAIL FROM:<alice@client.example.test>')).toMatch(/^250 /);
      expect(await inner.command('RCPT TO:<bob@mx.example.test>')).toMatch(/^250 /);
      expect(await inner.command('DATA')).toMatch(/^354 /);
      const queued = inner.command('Subject: example\r\n\r\nHello.\r\n.');
      result.tunnel.rekey();
      expect(await queued).toMatch(/^250 /);
      const serverClosed = once(result.tunnel, 'end'); // the server's close frame
      expect(await inner.command('QUIT')).toMatch(/^221 /);
      await serverClosed;
      // The server's close frame said it sends nothing more: the client closes the connection.
      result.tunnel.destroy();
    } finally {
      await relay.close();
    }
    const section = render(unitsOf(chunks));
    if (process.env.XPONY_WRITE_TRANSCRIPT === '1') writeDocSection(section);
    expect(docSection()).toBe(section);
  });

  it('draws exactly the documented server side when its client side is replayed', async () => {
    const units = parseDoc(docSection());
    expect(units.filter((u) => u.kind === 'frame').length).toBeGreaterThan(10);
    const socket = connect(srv.port, '127.0.0.1');
    await once(socket, 'connect');
    let received = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => (received = Buffer.concat([received, data])));
    const next = async (length: number): Promise<Buffer> => {
      await waitFor(`${length} octets from the server`, () => (received.length >= length ? true : undefined), { intervalMs: 2 });
      const out = received.subarray(0, length);
      received = received.subarray(length);
      return out;
    };
    for (const unit of units) {
      const wire = unit.kind === 'line' ? Buffer.concat([unit.bytes, Buffer.from('\r\n')]) : unit.bytes;
      if (unit.from === 'C') socket.write(wire);
      else expect(hex(await next(wire.length)), `server ${unit.kind}: ${unit.bytes.toString('latin1').slice(0, 40)}`).toBe(hex(wire));
    }
    expect(received.length).toBe(0);
    socket.destroy();
  });
});
