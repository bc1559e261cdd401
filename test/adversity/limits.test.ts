/**
 * Adversity, part 5: the per-client limits (docs/PROTOCOL.md section 6) against `blackpony run`
 * in front of a real Postfix. Each attacker is one loopback address that tries to exhaust one
 * limit; meanwhile another client (VICTIM) must still get its XPONY tunnel and have its message
 * delivered by Postfix. Each case prints what the attacker got and what the other client got.
 * Every attacker has an address of its own, so that one case's counts do not spill into the next.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeMessage } from '../../scripts/adversity-messages.js';
import { connectXpony, XponyError } from '../../src/xpony/index.js';
import { DEFAULT_CLIENT_LIMITS, MAX_PENDING_HANDSHAKES } from '../../src/xpony/limits.js';
import { Replies } from '../../src/xpony/replies.js';
import { OPENSSL, selfSignedCertificate } from '../harness/certificates.js';
import { describeWith, POSTFIX, ROOT } from '../harness/requirements.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { MAILBOX } from '../integration/inbound-fixtures.js';
import { openInnerSmtp } from '../integration/inner-smtp.js';
import { clientKeys, RawSmtp } from '../integration/xpony-fixtures.js';
import { startInboundDaemon, type InboundDaemon } from './daemon-site.js';
import { copiesOf, printFigure } from './fixtures.js';
import { jsonLogLines } from '../harness/daemon-log.js';
import { loadScaled, waitFor } from '../harness/wait.js';

const HOST = 'mx.d.test';
const VICTIM = '127.0.0.3';
/** Short, so the test sees it; the default is DEFAULT_CLIENT_LIMITS.message3Seconds. */
const MESSAGE3_SECONDS = 2;
const LIMITS = DEFAULT_CLIENT_LIMITS;
/** EHLO / XPONY / * rounds pipelined in one write. */
const ROUNDS = 1_000;

// With two workers each client is still counted once (the primary counts for both), not once in each.
describe.each([1, 2])('workers: %i', (workers) => {
  describeWith([ROOT, POSTFIX, OPENSSL], 'adversity 5: per-client limits; one client exhausting a limit, another still served', () => {
    let site: InboundDaemon;
    let served = 0;

    beforeAll(async () => {
      // No exemptions: every loopback address here stands for a client on the Internet.
      const certificate = await selfSignedCertificate(await makeTempDir('limits-tls'), 'inbound', HOST);
      site = await startInboundDaemon(
        HOST,
        { limits: { exemptions: [], handshake_message3_seconds: MESSAGE3_SECONDS }, tls: { cert: certificate.certFile, key: certificate.keyFile } },
        workers,
      );
    });
    afterAll(() => site?.stop());

    /** VICTIM gets its tunnel and its message delivered through it; what it got, for the figure line. */
    async function victimServed(): Promise<string> {
      expect(site.daemon.process.status).toBeNull();
      const started = performance.now();
      const result = await connectXpony({
        host: '127.0.0.1',
        port: site.port,
        localAddress: VICTIM,
        localHostName: 'victim.test',
        keys: clientKeys(),
        timeoutMs: loadScaled(10_000),
      });
      if (result.kind !== 'tunnel') throw new Error('the other client was not offered XPONY');
      const handshakeMs = performance.now() - started;
      const inner = await openInnerSmtp(result.tunnel, { localHostName: 'victim.test' });
      const id = `victim-${++served}`;
      const message = makeMessage(id, 'victim@sender.test', [MAILBOX]);
      await inner.send({ from: 'victim@sender.test', to: [MAILBOX] }, message.text);
      await inner.quit();
      await site.behind.postfix.waitForDelivery(MAILBOX, served);
      expect(await copiesOf(site.behind.postfix, MAILBOX, id)).toBe(1);
      return `tunnel in ${handshakeMs.toFixed(0)} ms, message delivered`;
    }

    /** Connects from `address` and returns the session with the greeting's first line. */
    async function attackerSession(address: string): Promise<{ smtp: RawSmtp; greeting: string }> {
      const smtp = await RawSmtp.connect(site.port, address);
      smtp.stream.on('error', () => undefined);
      const greeting = await smtp.reply();
      return { smtp, greeting: `${greeting.code} ${greeting.lines[0] ?? ''}` };
    }

    /** Reply lines by their code and enhanced code, e.g. "421 4.7.0: 10". */
    function byCode(lines: readonly string[]): string {
      const counts = new Map<string, number>();
      for (const line of lines) {
        const key = /^\d{3}(?: [245]\.\d+\.\d+)?/.exec(line)?.[0] ?? line;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      return [...counts].map(([code, count]) => `${count} x ${code}`).join(', ');
    }

    it(`connections: one address holding ${LIMITS.connectionsPerClient + 10} connections gets ${LIMITS.connectionsPerClient}; another is still served`, async () => {
      const attacker = '127.0.0.4';
      const sessions = await Promise.all(Array.from({ length: LIMITS.connectionsPerClient + 10 }, () => attackerSession(attacker)));
      try {
        const greetings = sessions.map((s) => s.greeting);
        const refusal = Replies.tooManyConnections(HOST, attacker);
        expect(greetings.filter((g) => g.startsWith('220 ')).length).toBe(LIMITS.connectionsPerClient);
        expect(greetings.filter((g) => g === `${refusal.code} ${refusal.text}`).length).toBe(10);
        printFigure(`limit connections_per_client ${LIMITS.connectionsPerClient}: attacker got ${byCode(greetings)}; other client: ${await victimServed()}`);
      } finally {
        for (const { smtp } of sessions) smtp.stream.destroy();
      }
    });

    // A connection leaves its client's count when it closes, however it was used: STARTTLS
    // (smtp-server) drops every listener of the plain socket, XPONY carries the tunnel on it.
    it(`connections: one address's ${LIMITS.connectionsPerClient + 5} STARTTLS sessions, as many failed TLS handshakes, then as many XPONY tunnels, one after another, are all served`, async () => {
      const client = '127.0.0.11';
      const rounds = LIMITS.connectionsPerClient + 5;
      const outcomes: string[] = [];
      /** A session from `client`: what `use` makes of it once greeted, or the refusal. */
      const session = async (use: (smtp: RawSmtp) => Promise<string>): Promise<string> => {
        const { smtp, greeting } = await attackerSession(client);
        if (greeting.startsWith('220 ')) return use(smtp);
        smtp.stream.destroy();
        return greeting;
      };
      for (let index = 0; index < rounds; index++)
        outcomes.push(
          await session(async (smtp) => {
            expect(await smtp.command('EHLO tls.client.test')).toMatch(/^250 /);
            expect(await smtp.command('STARTTLS')).toMatch(/^220 /);
            const tls = new RawSmtp(connectTls({ socket: smtp.stream as Socket, rejectUnauthorized: false, servername: HOST }));
            expect(await tls.command('EHLO tls.client.test')).toMatch(/^250 /);
            const bye = await tls.command('QUIT');
            await tls.closed();
            return bye;
          }),
        );
      // And as many whose TLS handshake fails: octets that are no TLS record, after which the server hangs up.
      for (let index = 0; index < rounds; index++)
        outcomes.push(
          await session(async (smtp) => {
            expect(await smtp.command('STARTTLS')).toMatch(/^220 /);
            smtp.write('EHLO not.tls.test\r\n');
            await smtp.closed();
            return 'TLS handshake failed';
          }),
        );
      for (let index = 0; index < rounds; index++) {
        const options = {
          host: '127.0.0.1',
          port: site.port,
          localAddress: client,
          localHostName: 'tls.client.test',
          keys: clientKeys(),
          timeoutMs: loadScaled(10_000),
        };
        const result = await connectXpony(options).catch((error: Error) => error);
        if (result instanceof Error || result.kind !== 'tunnel') {
          outcomes.push(result instanceof Error ? result.message : result.kind);
          continue;
        }
        await (await openInnerSmtp(result.tunnel, { localHostName: 'tls.client.test' })).quit();
        outcomes.push('tunnel');
      }
      expect(byCode(outcomes)).toBe(`${rounds} x 221 2.0.0, ${rounds} x TLS handshake failed, ${rounds} x tunnel`);
      printFigure(
        `connections_per_client ${LIMITS.connectionsPerClient}: ${rounds} STARTTLS sessions, ${rounds} failed TLS handshakes and ${rounds} tunnels in a row, all served`,
      );
    });

    // The primary releases what a dead worker's connections held; kept, they would count forever.
    if (workers > 1)
      it(`connections: a client holding ${LIMITS.connectionsPerClient} connections in workers that die gets new ones from their replacements`, async () => {
        const attacker = '127.0.0.8';
        const sessions = await Promise.all(Array.from({ length: LIMITS.connectionsPerClient }, () => attackerSession(attacker)));
        expect(sessions.filter((session) => session.greeting.startsWith('220 ')).length).toBe(LIMITS.connectionsPerClient);
        const over = await attackerSession(attacker);
        over.smtp.stream.destroy();
        expect(over.greeting).toMatch(/^421 4\.7\.0 /);
        const [listening] = jsonLogLines(site.daemon.process, 'listening');
        for (const pid of listening?.workers as number[]) process.kill(pid, 'SIGKILL');
        await Promise.all(sessions.map(({ smtp }) => smtp.closed()));
        await waitFor('both workers replaced', () => (jsonLogLines(site.daemon.process, 'worker listening').length >= 2 * workers ? true : undefined), {
          diagnostics: () => site.daemon.process.output(),
        });
        const again = await attackerSession(attacker);
        again.smtp.stream.destroy();
        expect(again.greeting).toMatch(/^220 /);
        printFigure(`connections_per_client ${LIMITS.connectionsPerClient} across workers killed: released; other client: ${await victimServed()}`);
      });

    it(`connection rate: one address connecting ${LIMITS.connectionRatePerClient + 10} times in a minute is refused after ${LIMITS.connectionRatePerClient}; another is still served`, async () => {
      const attacker = '127.0.0.5';
      const greetings: string[] = [];
      // In batches well below connections_per_client: only the rate is at stake.
      for (let opened = 0; opened < LIMITS.connectionRatePerClient + 10; opened += 25) {
        const batch = await Promise.all(Array.from({ length: Math.min(25, LIMITS.connectionRatePerClient + 10 - opened) }, () => attackerSession(attacker)));
        for (const { smtp, greeting } of batch) {
          greetings.push(greeting);
          smtp.stream.destroy();
          await smtp.closed();
        }
      }
      const refusal = Replies.connectionRate(HOST, attacker);
      expect(greetings.filter((g) => g.startsWith('220 ')).length).toBe(LIMITS.connectionRatePerClient);
      expect(greetings.filter((g) => g === `${refusal.code} ${refusal.text}`).length).toBe(10);
      printFigure(
        `limit connection_rate_per_client ${LIMITS.connectionRatePerClient}/min: attacker got ${byCode(greetings)}; other client: ${await victimServed()}`,
      );
    });

    it(`pending handshakes (defect 2): ${MAX_PENDING_HANDSHAKES} connections from one address with unanswered XPONY do not block XPONY for another`, async () => {
      const attacker = '127.0.0.2';
      const sessions = await Promise.all(Array.from({ length: MAX_PENDING_HANDSHAKES }, () => attackerSession(attacker)));
      try {
        const replies = await Promise.all(
          sessions.map(async ({ smtp, greeting }) => {
            if (!greeting.startsWith('220 ')) return greeting;
            expect(await smtp.command('EHLO attacker.test')).toMatch(/^250 /);
            const reply = await smtp.command(`XPONY 1 ${randomBytes(32).toString('base64')}`);
            return reply.startsWith('334 ') ? '334' : reply;
          }),
        );
        expect(replies.filter((r) => r === '334').length).toBeLessThanOrEqual(LIMITS.pendingHandshakesPerClient);
        printFigure(
          `limit pending_handshakes_per_client ${LIMITS.pendingHandshakesPerClient}: attacker's ${MAX_PENDING_HANDSHAKES} connections got ${byCode(replies)}; other client: ${await victimServed()}`,
        );
      } finally {
        for (const { smtp } of sessions) smtp.stream.destroy();
      }
    });

    it('XPONY attempts (defect 3): 1,000 EHLO / XPONY / * rounds in one write get Noise work for only the first few', async () => {
      const attacker = '127.0.0.6';
      const { smtp, greeting } = await attackerSession(attacker);
      expect(greeting).toMatch(/^220 /);
      const round = () => `EHLO attacker.test\r\nXPONY 1 ${randomBytes(32).toString('base64')}\r\n*\r\n`;
      const started = performance.now();
      smtp.write(Array.from({ length: ROUNDS }, round).join(''));
      const replies: string[] = [];
      // Until the server closes, or has answered every line.
      while (replies.length < 3 * ROUNDS) {
        const reply = await smtp.reply().catch(() => undefined);
        if (reply === undefined) break;
        replies.push(reply.code === 334 ? '334' : `${reply.code} ${reply.lines.at(-1) ?? ''}`);
      }
      const ms = performance.now() - started;
      const limited = Replies.tooManyAttempts;
      expect(replies.filter((r) => r === '334').length).toBe(LIMITS.xponyAttemptsPerConnection);
      expect(replies).toContain(`${limited.code} ${limited.text}`);
      printFigure(
        `limit xpony_attempts_per_connection ${LIMITS.xponyAttemptsPerConnection}: ${ROUNDS} pipelined rounds got ${byCode(replies.filter((r) => !r.startsWith('250 ')))} in ${ms.toFixed(0)} ms; other client: ${await victimServed()}`,
      );
    });

    it(`Noise message 3: a client that never sends it is cut off after handshake_message3_seconds (${MESSAGE3_SECONDS} s here); another is still served`, async () => {
      const attacker = '127.0.0.7';
      const { smtp, greeting } = await attackerSession(attacker);
      expect(greeting).toMatch(/^220 /);
      expect(await smtp.command('EHLO attacker.test')).toMatch(/^250 /);
      const started = performance.now();
      smtp.write(`XPONY 1 ${randomBytes(32).toString('base64')}\r\n`);
      expect((await smtp.reply()).code).toBe(334);
      const victim = await victimServed();
      const reply = await smtp.reply();
      const seconds = (performance.now() - started) / 1000;
      const timeout = Replies.message3Timeout;
      expect(`${reply.code} ${reply.lines[0] ?? ''}`).toBe(`${timeout.code} ${timeout.text}`);
      await smtp.closed();
      expect(seconds).toBeGreaterThanOrEqual(MESSAGE3_SECONDS - 0.1);
      printFigure(
        `limit handshake_message3_seconds ${MESSAGE3_SECONDS}: attacker got ${reply.code} ${reply.lines[0]} after ${seconds.toFixed(1)} s and was disconnected; other client: ${victim}`,
      );
    });
  });
});

describeWith([ROOT, POSTFIX], 'adversity 5: max_clients with two workers counts the connections of both', () => {
  const MAX = 10;
  let site: InboundDaemon;

  beforeAll(async () => {
    site = await startInboundDaemon(HOST, { maxClients: MAX, limits: { exemptions: [] } }, 2);
  });
  afterAll(() => site?.stop());

  it(`${MAX + 1} connections: ${MAX} greeted (in both workers), the next gets 421; once one closes, another is greeted`, async () => {
    const held: RawSmtp[] = [];
    try {
      for (let index = 0; index < MAX; index++) {
        const smtp = await RawSmtp.connect(site.port, '127.0.0.9');
        held.push(smtp);
        expect((await smtp.reply()).code).toBe(220);
      }
      const over = await RawSmtp.connect(site.port, '127.0.0.10');
      held.push(over);
      const refused = await over.reply();
      expect(`${refused.code} ${refused.lines[0] ?? ''}`).toBe(`421 ${Replies.tooManyClients(HOST).text}`);
      held.shift()!.stream.destroy();
      // The primary hears of the close after the worker does: the next connection may come first.
      const again = await waitFor('a connection greeted once one closed', async () => {
        const smtp = await RawSmtp.connect(site.port, '127.0.0.10');
        held.push(smtp);
        const reply = await smtp.reply();
        return reply.code === 220 ? reply : (smtp.stream.destroy(), undefined);
      });
      expect(again.code).toBe(220);
    } finally {
      for (const smtp of held) smtp.stream.destroy();
    }
  });
});
