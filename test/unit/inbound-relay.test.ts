/**
 * The relay against a scripted fake Postfix on loopback: what blackpony says to Postfix (EHLO,
 * XCLIENT with the real client, EHLO again, RSET when the client reset), and that every failure
 * of the hop reaches the client as a 4xx, never as a 250 or a 5xx of our own.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import type { SMTPServerSession } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { generateX25519Identity, parseIdentity } from '../../src/crypto/age/index.js';
import { createInboundServer, type InboundServer, type PostfixFailureEvent } from '../../src/inbound/inbound-server.js';
import { AcceptedMessages } from '../../src/inbound/accepted-messages.js';
import { RelaySession, type ClientIdentity, type PostfixFailure, type RelayConfig } from '../../src/inbound/relay-session.js';
import type { VerdictTurns } from '../../src/inbound/verdict-turns.js';
import type { SmtpReply } from '../../src/smtp/index.js';
import { RawSmtp, serverKeys } from '../integration/xpony-fixtures.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { waitFor } from '../harness/wait.js';

type Responder = (line: string) => string | undefined;

interface FakePostfix {
  port: number;
  /** Command lines received, in order ("<data>" for a whole message). */
  lines: string[];
  messages: Buffer[];
}

const EHLO_REPLY = '250-fake.postfix.test\r\n250-PIPELINING\r\n250-SIZE 4242\r\n250-XCLIENT NAME ADDR PROTO HELO PORT\r\n250 8BITMIME\r\n';

/** A standard Postfix dialogue; `override` answers first (undefined: fall through, '' : stay silent). */
function postfixLike(override: Responder = () => undefined): Responder {
  return (line) => {
    const special = override(line);
    if (special !== undefined) return special;
    const verb = line.split(' ')[0]!.toUpperCase();
    if (verb === 'EHLO' || verb === 'HELO') return EHLO_REPLY;
    if (verb === 'XCLIENT') return '220 fake.postfix.test ESMTP\r\n';
    if (verb === 'PROXY') return ''; // a PROXY listener takes the line silently
    if (verb === 'MAIL' || verb === 'RSET') return '250 2.1.0 Ok\r\n';
    if (verb === 'RCPT') return '250 2.1.5 Ok\r\n';
    if (verb === 'DATA') return '354 End data with <CR><LF>.<CR><LF>\r\n';
    if (line === '<data>') return '250 2.0.0 Ok: queued as FAKE123\r\n';
    if (verb === 'QUIT') return '221 2.0.0 Bye\r\n';
    return '502 5.5.2 Error: command not recognized\r\n';
  };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fakePostfix(respond: Responder, onData?: (socket: Socket) => boolean, greeting = '220 fake.postfix.test ESMTP\r\n'): Promise<FakePostfix> {
  const fake: FakePostfix = { port: 0, lines: [], messages: [] };
  const server: Server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.write(greeting);
    let buffer = Buffer.alloc(0);
    let inData = false;
    const answer = (line: string): void => {
      fake.lines.push(line);
      const reply = respond(line);
      if (reply === 'CLOSE') socket.destroy();
      else if (reply) socket.write(reply);
      if (reply?.startsWith('354')) inData = true;
    };
    socket.on('data', (data: Buffer) => {
      buffer = Buffer.concat([buffer, data]);
      for (;;) {
        if (inData) {
          if (onData !== undefined && !onData(socket)) return;
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          fake.messages.push(buffer.subarray(0, end + 2));
          buffer = buffer.subarray(end + 5);
          inData = false;
          answer('<data>');
          continue;
        }
        const end = buffer.indexOf('\r\n');
        if (end < 0) return;
        const line = buffer.toString('latin1', 0, end);
        buffer = buffer.subarray(end + 2);
        answer(line);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  fake.port = (server.address() as AddressInfo).port;
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return fake;
}

/** blackpony in front of `front`; `failures` collects what it reports of the hop to Postfix. */
async function blackponyIn(
  front: FakePostfix,
  timeoutMs = 2_000,
  clientIdentity: ClientIdentity = 'xclient',
): Promise<{ inbound: InboundServer; port: number; failures: PostfixFailureEvent[] }> {
  const failures: PostfixFailureEvent[] = [];
  const inbound = createInboundServer({
    keys: serverKeys(),
    hostName: 'mx.blackpony.test',
    clientIdentity,
    postfix: { host: '127.0.0.1', port: front.port, timeoutMs },
    onPostfixFailure: (failure) => failures.push(failure),
  });
  const address = await inbound.listen(0, '127.0.0.1');
  cleanups.push(() => inbound.close());
  return { inbound, port: address.port, failures };
}

/** What every client gets when the hop to Postfix fails: the class of the failure, nothing of our insides. */
const UNAVAILABLE = 'mail system temporarily unavailable, try again later';

async function client(port: number, helo = 'client.test'): Promise<RawSmtp> {
  const smtp = await RawSmtp.connect(port);
  cleanups.push(async () => void smtp.stream.destroy());
  await smtp.reply();
  smtp.write(`EHLO ${helo}\r\n`);
  await smtp.reply();
  return smtp;
}

describe('inbound relay against a scripted Postfix', () => {
  it("says EHLO, XCLIENT with the real client, EHLO with the client's name, then relays the transaction", async () => {
    const fake = await fakePostfix(postfixLike());
    const { port } = await blackponyIn(fake);
    const smtp = await client(port);
    const local = (smtp.stream as Socket).localPort;
    expect(await smtp.command('MAIL FROM:<a@sender.test> BODY=8BITMIME')).toBe('250 2.1.0 Ok');
    expect(await smtp.command('RCPT TO:<b@d.test>')).toBe('250 2.1.5 Ok');
    expect(await smtp.command('DATA')).toMatch(/^354 /);
    expect(await smtp.command('Subject: x\r\n\r\n.dot\r\n.')).toBe('250 2.0.0 Ok: queued as FAKE123');
    const session = fake.lines.slice(-7);
    expect(session).toEqual([
      'EHLO mx.blackpony.test',
      `XCLIENT ADDR=127.0.0.1 PORT=${local} NAME=[UNAVAILABLE] HELO=client.test PROTO=ESMTP`,
      'EHLO client.test',
      'MAIL FROM:<a@sender.test> BODY=8BITMIME',
      'RCPT TO:<b@d.test>',
      'DATA',
      '<data>',
    ]);
    const message = fake.messages[0]!.toString('latin1');
    expect(message).toMatch(
      /^X-Pony-Trace: v=1; by=mx\.blackpony\.test; via=plain; peer=none; sealed=no;\r\n\tclient=\[127\.0\.0\.1\]:\d+; helo=client\.test;\r\n\t.+\r\nSubject: x\r\n\r\n\.\.dot\r\n$/,
    );
  });

  it("with clientIdentity proxy: a PROXY line first on each connection, no XCLIENT, then the client's own EHLO", async () => {
    const fake = await fakePostfix(postfixLike());
    const { port } = await blackponyIn(fake, 2_000, 'proxy');
    // The capability probe at listen() names its own connection.
    expect(fake.lines[0]).toMatch(/^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ \d+$/);
    const smtp = await client(port);
    const local = (smtp.stream as Socket).localPort;
    expect(await smtp.command('MAIL FROM:<a@sender.test>')).toBe('250 2.1.0 Ok');
    expect(fake.lines.slice(-3)).toEqual([`PROXY TCP4 127.0.0.1 127.0.0.1 ${local} ${port}`, 'EHLO client.test', 'MAIL FROM:<a@sender.test>']);
    expect(fake.lines.some((line) => line.startsWith('XCLIENT'))).toBe(false);
  });

  it('tells Postfix PROTO=SMTP and says HELO for a client that said HELO', async () => {
    const fake = await fakePostfix(postfixLike());
    const { port } = await blackponyIn(fake);
    const smtp = await RawSmtp.connect(port);
    cleanups.push(async () => void smtp.stream.destroy());
    await smtp.reply();
    expect(await smtp.command('HELO old.client.test')).toMatch(/^250 /);
    expect(await smtp.command('MAIL FROM:<a@sender.test>')).toMatch(/^250 /);
    expect(fake.lines.slice(-3)).toEqual([
      expect.stringMatching(/^XCLIENT ADDR=127\.0\.0\.1 PORT=\d+ NAME=\[UNAVAILABLE\] HELO=old\.client\.test PROTO=SMTP$/),
      'HELO old.client.test',
      'MAIL FROM:<a@sender.test>',
    ]);
  });

  it("advertises Postfix's SIZE, and only the extensions Postfix offers", async () => {
    const fake = await fakePostfix(postfixLike());
    const { port } = await blackponyIn(fake);
    const smtp = await RawSmtp.connect(port);
    cleanups.push(async () => void smtp.stream.destroy());
    await smtp.reply();
    smtp.write('EHLO client.test\r\n');
    const keywords = (await smtp.reply()).lines.slice(1);
    expect(keywords).toContain('SIZE 4242');
    // The fake offers 8BITMIME but neither DSN nor SMTPUTF8.
    expect(keywords).toEqual(expect.arrayContaining(['PIPELINING', '8BITMIME', 'ENHANCEDSTATUSCODES', 'XPONY 1 2']));
    expect(keywords).not.toContain('DSN');
    expect(keywords).not.toContain('SMTPUTF8');
  });

  it('sends RSET before the next MAIL when the client reset in between', async () => {
    const fake = await fakePostfix(postfixLike());
    const { port } = await blackponyIn(fake);
    const smtp = await client(port);
    await smtp.command('MAIL FROM:<a@sender.test>');
    await smtp.command('RCPT TO:<b@d.test>');
    expect(await smtp.command('RSET')).toMatch(/^250 /);
    expect(await smtp.command('MAIL FROM:<c@sender.test>')).toMatch(/^250 /);
    expect(fake.lines.slice(-3)).toEqual(['RCPT TO:<b@d.test>', 'RSET', 'MAIL FROM:<c@sender.test>']);
  });

  it("answers a pipelined client in order, each with Postfix's reply", async () => {
    const fake = await fakePostfix(
      postfixLike((line) => (line === 'RCPT TO:<bad@d.test>' ? '550 5.1.1 <bad@d.test>: Recipient address rejected: User unknown\r\n' : undefined)),
    );
    const { port } = await blackponyIn(fake);
    const smtp = await client(port);
    smtp.write('MAIL FROM:<a@sender.test>\r\nRCPT TO:<bad@d.test>\r\nRCPT TO:<b@d.test>\r\nDATA\r\n');
    const replies = [];
    for (let i = 0; i < 4; i++) {
      const reply = await smtp.reply();
      replies.push(`${reply.code} ${reply.lines[0]}`);
    }
    expect(replies[1]).toBe('550 5.1.1 <bad@d.test>: Recipient address rejected: User unknown');
    expect(replies.map((r) => r.slice(0, 3))).toEqual(['250', '550', '250', '354']);
  });

  it("passes Postfix's replies word for word, multi-line ones as multi-line, with Postfix's code (251)", async () => {
    const fake = await fakePostfix(
      postfixLike((line) => {
        if (line.startsWith('MAIL')) return '250 2.1.0 Sender <a@sender.test> is fine\r\n';
        if (line === 'RCPT TO:<fwd@d.test>') return '251 2.1.5 User not local; will forward to <x@elsewhere.test>\r\n';
        if (line === 'RCPT TO:<bad@d.test>') return '550-5.7.1 Rejected by policy:\r\n550-5.7.1 see https://d.test/policy\r\n550 5.7.1 for details\r\n';
        if (line === '<data>') return '250-2.0.0 Ok: queued as FAKE123\r\n250 2.0.0 have a nice day\r\n';
        return undefined;
      }),
    );
    const { port } = await blackponyIn(fake);
    const smtp = await client(port);
    expect(await smtp.command('MAIL FROM:<a@sender.test>')).toBe('250 2.1.0 Sender <a@sender.test> is fine');
    expect(await smtp.command('RCPT TO:<fwd@d.test>')).toBe('251 2.1.5 User not local; will forward to <x@elsewhere.test>');
    smtp.write('RCPT TO:<bad@d.test>\r\n');
    expect((await smtp.reply()).raw.toString('latin1')).toBe(
      '550-5.7.1 Rejected by policy:\r\n550-5.7.1 see https://d.test/policy\r\n550 5.7.1 for details\r\n',
    );
    expect(await smtp.command('DATA')).toMatch(/^354 /);
    smtp.write('Subject: x\r\n\r\nbody\r\n.\r\n');
    expect((await smtp.reply()).raw.toString('latin1')).toBe('250-2.0.0 Ok: queued as FAKE123\r\n250 2.0.0 have a nice day\r\n');
    // The next command gets smtp-server's own reply again.
    expect(await smtp.command('NOOP')).toBe('250 2.0.0 OK');
  });

  it('names only the XCLIENT attributes the server lists, and relays nothing when ADDR is not among them', async () => {
    const offering = (attributes: string) =>
      postfixLike((line) => (line === 'EHLO mx.blackpony.test' ? `250-fake.postfix.test\r\n250 XCLIENT ${attributes}\r\n` : undefined));
    const lean = await fakePostfix(offering('ADDR REVERSE_NAME'));
    const smtp = await client((await blackponyIn(lean)).port);
    expect(await smtp.command('MAIL FROM:<a@sender.test>')).toBe('250 2.1.0 Ok');
    expect(lean.lines.find((line) => line.startsWith('XCLIENT'))).toBe('XCLIENT ADDR=127.0.0.1 REVERSE_NAME=[UNAVAILABLE]');

    const noAddress = await fakePostfix(offering('NAME HELO'));
    const { port, failures } = await blackponyIn(noAddress);
    const refused = await client(port);
    expect(await refused.command('MAIL FROM:<a@sender.test>')).toBe(`451 4.3.0 ${UNAVAILABLE}`);
    expect(failures).toEqual([{ kind: 'refused', reason: 'XCLIENT without ADDR offered (XCLIENT NAME HELO)', postfix: `127.0.0.1:${noAddress.port}` }]);
    expect(noAddress.lines.some((line) => line.startsWith('XCLIENT') || line.startsWith('MAIL'))).toBe(false);
  });

  it('refuses to relay (451 4.3.0) when Postfix does not accept XCLIENT', async () => {
    const fake = await fakePostfix(postfixLike((line) => (line.startsWith('XCLIENT') ? '550 5.7.0 Error: insufficient authorization\r\n' : undefined)));
    const { port, failures } = await blackponyIn(fake);
    const smtp = await client(port);
    expect(await smtp.command('MAIL FROM:<a@sender.test>')).toBe(`451 4.3.0 ${UNAVAILABLE}`);
    expect(failures).toEqual([{ kind: 'refused', reason: 'XCLIENT refused: 550 5.7.0 Error: insufficient authorization', postfix: `127.0.0.1:${fake.port}` }]);
    expect(fake.lines.some((line) => line.startsWith('MAIL'))).toBe(false);
  });

  it("answers 451 4.3.0, not Postfix's 5xx, when Postfix refuses the connection itself", async () => {
    const fake = await fakePostfix(postfixLike(), undefined, '554 5.3.2 fake.postfix.test is not accepting connections\r\n');
    const { port, failures } = await blackponyIn(fake);
    const smtp = await client(port);
    expect(await smtp.command('MAIL FROM:<a@sender.test>')).toBe(`451 4.3.0 ${UNAVAILABLE}`);
    expect(failures.at(-1)).toEqual({
      kind: 'refused',
      reason: 'greeting: 554 5.3.2 fake.postfix.test is not accepting connections',
      postfix: `127.0.0.1:${fake.port}`,
    });
  });

  it('answers 451 4.4.2 when Postfix is slower than the timeout', async () => {
    const fake = await fakePostfix(postfixLike((line) => (line.startsWith('MAIL') ? '' : undefined)));
    const { port, failures } = await blackponyIn(fake, 300);
    const smtp = await client(port);
    expect(await smtp.command('MAIL FROM:<a@sender.test>')).toBe(`451 4.4.2 ${UNAVAILABLE}`);
    expect(failures).toEqual([
      { kind: 'timeout', reason: `postfix 127.0.0.1:${fake.port}: no reply to MAIL within 300 ms`, postfix: `127.0.0.1:${fake.port}` },
    ]);
  });

  it('never says 250 when Postfix hangs up instead of answering the final dot', async () => {
    const fake = await fakePostfix(postfixLike((line) => (line === '<data>' ? 'CLOSE' : undefined)));
    const { port, failures } = await blackponyIn(fake);
    const smtp = await client(port);
    await smtp.command('MAIL FROM:<a@sender.test>');
    await smtp.command('RCPT TO:<b@d.test>');
    await smtp.command('DATA');
    expect(await smtp.command('Subject: x\r\n\r\nbody\r\n.')).toBe(`451 4.4.2 ${UNAVAILABLE}`);
    expect(failures).toEqual([
      { kind: 'lost', reason: expect.stringMatching(/connection closed|connection dropped/) as unknown, postfix: `127.0.0.1:${fake.port}` },
    ]);
    // The session goes on: the next MAIL opens a fresh Postfix connection.
    expect(await smtp.command('MAIL FROM:<a@sender.test>')).toBe('250 2.1.0 Ok');
  });

  it('answers 451 4.4.2 when Postfix goes away in the middle of the data, after reading the rest from the client', async () => {
    const fake = await fakePostfix(postfixLike(), (socket) => {
      socket.destroy();
      return false;
    });
    const { port } = await blackponyIn(fake);
    const smtp = await client(port);
    await smtp.command('MAIL FROM:<a@sender.test>');
    await smtp.command('RCPT TO:<b@d.test>');
    await smtp.command('DATA');
    smtp.write(`Subject: x\r\n\r\n${'y'.repeat(100).concat('\r\n').repeat(20_000)}`);
    expect(await smtp.command('.')).toMatch(/^451 4\.4\.2 /);
  });

  it("passes Postfix's 421 and closes the client session", async () => {
    const fake = await fakePostfix(postfixLike((line) => (line.startsWith('RCPT') ? '421 4.4.2 fake.postfix.test Error: timeout exceeded\r\n' : undefined)));
    const { port } = await blackponyIn(fake);
    const smtp = await client(port);
    await smtp.command('MAIL FROM:<a@sender.test>');
    expect(await smtp.command('RCPT TO:<b@d.test>')).toBe('421 4.4.2 fake.postfix.test Error: timeout exceeded');
    await smtp.closed();
  });
});

/** A Postfix that takes whole messages and keeps its verdicts back; the test writes the first one's on postfixSocket(). */
async function postfixHoldingVerdict(): Promise<{ fake: FakePostfix; postfixSocket: () => Socket }> {
  let socket: Socket | undefined;
  const fake = await fakePostfix(
    postfixLike((line) => (line === '<data>' ? '' : undefined)),
    (dataSocket) => ((socket ??= dataSocket), true),
  );
  return { fake, postfixSocket: () => socket! };
}

/**
 * A RelaySession driven directly, as smtp-server would for one client: MAIL (with `mailArgs`),
 * RCPT and the message, under way to `fake`; `xpony` makes it a tunnel session of that peer.
 */
async function relayOneMessage(
  fake: FakePostfix,
  options: { name: string; mailArgs?: Record<string, string>; xpony?: string; config?: Partial<RelayConfig> },
): Promise<{ relay: RelaySession; reply: Promise<SmtpReply> }> {
  const mailFrom = { address: 'a@sender.test', args: options.mailArgs ?? {} };
  const session = {
    id: options.name,
    hostNameAppearsAs: 'client.test',
    transmissionType: 'ESMTP',
    remoteAddress: '127.0.0.1',
    remotePort: 40000,
    secure: false,
    envelope: { mailFrom, rcptTo: [{ address: 'b@d.test', args: {} }] },
    ...(options.xpony === undefined
      ? {}
      : {
          xpony: {
            version: '2',
            remoteStaticKey: new Uint8Array(32),
            remoteFingerprint: options.xpony,
            hostName: 'client.test',
            remoteAddress: '127.0.0.1',
            remotePort: 40000,
            rawOctetsReceived: () => 0,
          },
        }),
  } as unknown as SMTPServerSession;
  const relay = new RelaySession(
    {
      postfix: { host: '127.0.0.1', port: fake.port, timeoutMs: 5_000 },
      clientIdentity: 'xclient',
      hostName: 'mx.blackpony.test',
      ageIdentities: [parseIdentity(generateX25519Identity())],
      ...options.config,
    },
    session,
  );
  await relay.mailFrom(mailFrom);
  await relay.rcptTo({ address: 'b@d.test', args: {} });
  const message = new PassThrough();
  message.end('Subject: x\r\n\r\nbody\r\n');
  return { relay, reply: relay.data(message) };
}

/** A fresh store of accepted messages (XPONY-ID), with the turns given, else this process's own. */
async function acceptedMessages(turns?: VerdictTurns): Promise<AcceptedMessages> {
  return AcceptedMessages.open({
    dir: await makeTempDir('accepted'),
    windowMs: 86_400_000,
    maxEntries: 100,
    onError: (error) => {
      throw error;
    },
    ...(turns === undefined ? {} : { turns }),
  });
}

describe('RelaySession: a client that leaves while Postfix judges its whole message', () => {
  it("still reads Postfix's verdict (Postfix queues a message whose end it has), then drops the connection", async () => {
    const { fake, postfixSocket } = await postfixHoldingVerdict();
    const failures: PostfixFailure[] = [];
    const { relay, reply: verdict } = await relayOneMessage(fake, { name: 'left-early', config: { onPostfixFailure: (f) => failures.push(f) } });
    await waitFor('Postfix has the whole message', () => (fake.messages.length === 1 ? true : undefined));
    relay.close();
    expect(postfixSocket().destroyed).toBe(false);
    postfixSocket().write('250 2.0.0 Ok: queued as LATE1\r\n');
    expect((await verdict).lines).toEqual(['2.0.0 Ok: queued as LATE1']);
    expect(failures).toEqual([]);
    await once(postfixSocket(), 'close');
  });
});

describe('RelaySession: a retry that comes while the first copy is judged', () => {
  it('waits for the first verdict and is answered from it: its end never reaches Postfix, one copy', async () => {
    const { fake, postfixSocket } = await postfixHoldingVerdict();
    const accepted = await acceptedMessages();
    /** One tunnel session of the same peer, with the same message under way to Postfix. */
    const send = (name: string): ReturnType<typeof relayOneMessage> =>
      relayOneMessage(fake, { name, mailArgs: { 'XPONY-ID': 'AAAAAAAAAAAAAAAAAAAAAA' }, xpony: 'the-peer', config: { acceptedMessages: accepted } });
    const first = await send('first');
    await waitFor('Postfix has the first copy', () => (fake.messages.length === 1 ? true : undefined));
    // The sender lost the tunnel after the end and retries on another before Postfix's 250.
    first.relay.close();
    const retry = await send('retry');
    await waitFor('the retry has reached DATA at Postfix', () => (fake.lines.filter((line) => line === 'DATA').length === 2 ? true : undefined));
    postfixSocket().write('250 2.0.0 Ok: queued as FIRST1\r\n');
    expect((await first.reply).lines).toEqual(['2.0.0 Ok: queued as FIRST1']);
    expect((await retry.reply).lines).toEqual(['2.0.0 already accepted: Ok: queued as FIRST1']);
    expect(fake.messages).toHaveLength(1);
    expect(retry.relay.lastRetry).toBe(true);
  });
});

describe('RelaySession: a turn at the verdict that cannot be had', () => {
  it('answers 451 and drops Postfix before the end of data: nothing is queued', async () => {
    const fake = await fakePostfix(postfixLike());
    // As a worker whose primary does not answer (shared-verdict-turns.ts).
    const accepted = await acceptedMessages({ take: () => Promise.reject(new Error('verdict turn: no answer from the primary')) });
    const { reply } = await relayOneMessage(fake, {
      name: 'no-turn',
      mailArgs: { 'XPONY-ID': 'AAAAAAAAAAAAAAAAAAAAAA' },
      xpony: 'the-peer',
      config: { acceptedMessages: accepted },
    });
    await expect(reply).rejects.toMatchObject({ responseCode: 451, message: '4.3.0 mail system temporarily unavailable, try again later' });
    expect(fake.lines).toContain('DATA');
    expect(fake.messages).toEqual([]);
  });
});

describe('InboundServer.close(): a session that closed while Postfix judged its message', () => {
  it("resolves only after that message's verdict, so that a stop never leaves it unread (and a retry unrecognised)", async () => {
    const { fake, postfixSocket } = await postfixHoldingVerdict();
    const { inbound, port } = await blackponyIn(fake);
    const smtp = await client(port);
    await smtp.command('MAIL FROM:<a@sender.test>');
    await smtp.command('RCPT TO:<b@d.test>');
    await smtp.command('DATA');
    smtp.write('Subject: x\r\n\r\nbody\r\n.\r\n');
    await waitFor('Postfix has the whole message', () => (fake.messages.length === 1 ? true : undefined));
    // The client resets (a FIN alone leaves the session open until its last reply); the session
    // closes while the verdict is awaited.
    (smtp.stream as Socket).resetAndDestroy();
    await waitFor('the session closed', () => (inbound.server.connections.size === 0 ? true : undefined));
    const events: string[] = [];
    const closed = inbound.close().then(() => events.push('closed'));
    await waitFor('the listener closed', () => (inbound.server.server.listening ? undefined : true));
    await new Promise((resolve) => setImmediate(resolve));
    events.push('verdict given');
    postfixSocket().write('250 2.0.0 Ok: queued as LATE2\r\n');
    await closed;
    expect(events).toEqual(['verdict given', 'closed']);
    await once(postfixSocket(), 'close');
  });
});
