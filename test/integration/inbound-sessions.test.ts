/**
 * The sessions the inbound reports (onSession: the daemon's blackpony_sessions_active and
 * blackpony_sessions_total): each session it greets opens once and closes once. A connection
 * refused before its greeting (a limit's 421) is neither, or the gauge would drift below the
 * sessions really open by one per refusal, as it did.
 */
import type { Server, Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEFAULT_CLIENT_LIMITS } from '../../src/xpony/index.js';
import { describeWith, POSTFIX, ROOT } from '../harness/requirements.js';
import { waitFor } from '../harness/wait.js';
import { startBlackpony, startPostfixBehind, type Blackpony, type PostfixBehind } from './inbound-fixtures.js';
import { RawSmtp } from './xpony-fixtures.js';

describeWith([ROOT, POSTFIX], 'inbound: sessions counted', () => {
  let behind: PostfixBehind;
  let pony: Blackpony;
  const events: string[] = [];
  /** Client sockets closed at the server: smtp-server's close handling, which reports sessions, runs first. */
  let socketsClosed = 0;

  beforeAll(async () => {
    behind = await startPostfixBehind();
    pony = await startBlackpony(behind.listenerPort, {
      clientLimits: { ...DEFAULT_CLIENT_LIMITS, connectionsPerClient: 1, exemptions: [] },
      onSession: (event) => events.push(event),
    });
    (pony.inbound.server as unknown as { server: Server }).server.on('connection', (socket: Socket) => socket.once('close', () => socketsClosed++));
  });
  afterAll(async () => {
    await pony?.inbound.close();
    await behind?.postfix.stop();
  });

  /** A session from `address`, greeted and ended with QUIT. */
  async function greetedSession(address: string, held?: (smtp: RawSmtp) => Promise<void>): Promise<void> {
    const smtp = await RawSmtp.connect(pony.port, address);
    expect((await smtp.reply()).code).toBe(220);
    await held?.(smtp);
    expect(await smtp.command('QUIT')).toMatch(/^221 /);
    await smtp.closed();
  }

  it('a connection refused over connections_per_client is neither opened nor closed', async () => {
    await greetedSession('127.0.0.1', async () => {
      // Over connections_per_client (1) while the first is open: refused before any greeting.
      const over = await RawSmtp.connect(pony.port, '127.0.0.1');
      expect((await over.reply()).code).toBe(421);
      await over.closed();
    });
    // Another address: not held up by the first one's close, which the count may hear later.
    await greetedSession('127.0.0.2');
    // Closes are reported in whatever order the sockets close: wait for all three.
    await waitFor('the three connections closed at the server', () => (socketsClosed === 3 ? true : undefined));
    expect(events.toSorted()).toEqual(['close', 'close', 'open', 'open']);
  });
});
