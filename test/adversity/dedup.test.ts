/**
 * A retry answered once (docs/PROTOCOL.md section 5, XPONY-ID). Two sites as deployed (Postfix +
 * `blackpony run`), A sending to B through a tunnel, with a man in the middle that cuts the
 * connection right after A's end of data, before B's 250 gets back to A: B's Postfix has the
 * message, A's Postfix defers it and retries. B recognises the retry (also after a restart in
 * between) and answers it without a second copy. Driven by hand through a tunnel: the same id
 * from another key, or to other recipients, is another message and is delivered. All of it with B
 * as one process and with two workers, where the retry reaches the other worker than the first copy.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeMessage } from '../../scripts/adversity-messages.js';
import { generateKeys, type Keys } from '../../src/crypto/keyfile.js';
import { connectXpony } from '../../src/xpony/client.js';
import { MESSAGE_ID_KEYWORD, messageId } from '../../src/xpony/message-id.js';
import { SmtpClient, type SmtpReply } from '../../src/smtp/smtp-client.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { freePort } from '../harness/ports.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { loadScaled, waitFor } from '../harness/wait.js';
import { sharedMxPort } from '../integration/outbound-fixtures.js';
import { startRelay, type Relay, type RelayConnection } from '../integration/xpony-fixtures.js';
import { startDaemonSite, type DaemonSite } from './daemon-site.js';
import { copiesOf, holdDeferred, mxRecords, retryHeld, sendMessage } from './fixtures.js';

const A = { domain: 'a.test', address: '127.0.0.5', mailbox: 'alice@a.test' };
const B = { domain: 'b.test', address: '127.0.0.2', mailboxes: ['bob@b.test', 'carol@b.test'] };
const [BOB, CAROL] = B.mailboxes as [string, string];
const SIZE = 50_000;

for (const workers of [1, 2])
  describeWith(
    [POSTFIX, ROOT, DNSMASQ, SWAKS],
    `adversity: a lost final reply through a tunnel gives one copy, not two (B: ${workers} worker${workers === 1 ? '' : 's'})`,
    () => {
      let dns: TestDns;
      let a: DaemonSite;
      let b: DaemonSite;
      let relay: Relay;
      let hiddenB: number;
      /** Set: the next connection is cut once A has sent this many octets and B answers. */
      let cutAfter: number | undefined;
      const cut: RelayConnection[] = [];

      beforeAll(async () => {
        const mxPort = await sharedMxPort([B.address, A.address]);
        hiddenB = await freePort();
        dns = await startDns({});
        a = await startDaemonSite({ domain: A.domain, inbound: { host: A.address, port: mxPort }, mxPort, dnsPort: dns.port, mailboxes: [A.mailbox] });
        b = await startDaemonSite({
          domain: B.domain,
          inbound: { host: '127.0.0.1', port: hiddenB },
          mxPort,
          dnsPort: dns.port,
          mailboxes: B.mailboxes,
          workers,
        });
        const sent = new Map<RelayConnection, number>();
        relay = await startRelay(
          hiddenB,
          {
            fromClient: (data, connection) => {
              sent.set(connection, (sent.get(connection) ?? 0) + data.length);
              return data;
            },
            // B's first words after A sent the message are its reply to the end of data: withheld, and the connection cut.
            fromServer: (data, connection) => {
              if (cutAfter === undefined || (sent.get(connection) ?? 0) < cutAfter) return data;
              cutAfter = undefined;
              cut.push(connection);
              setImmediate(() => {
                connection.client.destroy();
                connection.server.destroy();
              });
              return Buffer.alloc(0);
            },
          },
          { listen: { host: B.address, port: mxPort } },
        );
        await dns.restart(mxRecords([B], [{ domain: B.domain, record: b.record('enforce') }]));
        await holdDeferred(a.postfix);
      });

      afterAll(async () => {
        await relay?.close();
        await a?.stop();
        await b?.stop();
        await dns?.stop();
      });

      /** B's log lines for messages answered from its accepted messages. */
      const retries = () => b.daemon.log('message accepted').filter((line) => line.retry === true);

      async function copies(mailbox: string, id: string, count: number): Promise<void> {
        await waitFor(`${count} copies of ${id} for ${mailbox}`, async () => ((await copiesOf(b.postfix, mailbox, id)) >= count ? true : undefined), {
          diagnostics: async () =>
            `A queue: ${JSON.stringify(await a.postfix.queue())}\nA log: ${a.daemon.process.stderr().slice(-3000)}\nB log: ${b.daemon.process.stderr().slice(-3000)}`,
        });
      }

      /** Sends a message from A's Postfix, cuts the tunnel before B's final reply; returns once A deferred it and B has it. */
      async function loseTheFinalReply(id: string): Promise<void> {
        const since = a.daemon.log('delivery ').length;
        cutAfter = SIZE;
        await sendMessage(a.postfix, id, A.mailbox, [BOB], SIZE);
        await copies(BOB, id, 1);
        const [line] = await waitFor('A defers it', () => {
          const lines = a.daemon
            .log('delivery ')
            .slice(since)
            .filter((l) => l.domain === B.domain);
          return lines.length > 0 ? lines : undefined;
        });
        expect(line).toMatchObject({ outcome: 'deferred', mode: 'xpony' });
        await a.postfix.waitForQueue('A holds it', (q) => q.length === 1);
      }

      async function retried(id: string): Promise<void> {
        const answered = retries().length;
        await retryHeld(a.postfix);
        await a.postfix.waitForQueue('A delivered the retry', (q) => q.length === 0);
        expect(retries()).toHaveLength(answered + 1);
        expect(retries().at(-1)).toMatchObject({ outcome: 'accepted', via: 'xpony', retry: true });
        expect(String(retries().at(-1)!.reply)).toMatch(/^250 2\.0\.0 already accepted: Ok: queued as /);
        expect(await copiesOf(b.postfix, BOB, id)).toBe(1);
      }

      it("the tunnel cut after the end of data, before B's 250 reached A: A's Postfix retries, B answers from its store, one copy", async () => {
        await loseTheFinalReply('lost-reply');
        expect(cut).toHaveLength(1);
        await retried('lost-reply');
        if (workers > 1) {
          // The primary hands each new connection to the next worker: the retry met the one that did not take the first copy.
          const [first, retry] = b.daemon
            .log('message accepted')
            .filter((line) => line.via === 'xpony')
            .slice(-2);
          expect(first?.retry).toBe(false);
          expect(retry?.pid).not.toBe(first?.pid);
        }
      });

      it('the same, with B SIGKILLed and started again between the attempts: still one copy', async () => {
        await loseTheFinalReply('lost-reply-b-restarted');
        await b.daemon.kill();
        await b.daemon.start();
        await retried('lost-reply-b-restarted');
      });

      /** One message through a tunnel of our own to B, as `keys`, with XPONY-ID `id`; B's final reply. */
      async function sendByHand(keys: Keys, id: string, messageName: string, recipients: readonly string[]): Promise<SmtpReply> {
        const opened = await connectXpony({ host: '127.0.0.1', port: hiddenB, localHostName: 'hand.a.test', keys });
        if (opened.kind !== 'tunnel') throw new Error('B offered no tunnel');
        const client = await SmtpClient.over(opened.tunnel, { host: '127.0.0.1', port: hiddenB, timeoutMs: loadScaled(30_000), label: 'B' });
        try {
          const ehlo = await client.command('EHLO hand.a.test');
          expect(ehlo.lines.slice(1)).toContain(MESSAGE_ID_KEYWORD);
          expect((await client.command(`MAIL FROM:<${A.mailbox}> ${MESSAGE_ID_KEYWORD}=${id}`)).code).toBe(250);
          for (const recipient of recipients) expect((await client.command(`RCPT TO:<${recipient}>`)).code).toBe(250);
          expect((await client.command('DATA')).code).toBe(354);
          client.writeData(Buffer.from(makeMessage(messageName, A.mailbox, recipients, 2_000).text, 'latin1'));
          return await client.endData();
        } finally {
          client.quit();
        }
      }

      it('the same id from another key, or to other recipients, is another message and is delivered; from the same key to the same recipients it is not', async () => {
        const id = messageId('4XkHandMadez1', A.mailbox);
        const [keys, otherKeys] = [generateKeys(), generateKeys()];
        const answered = retries().length;
        expect((await sendByHand(keys, id, 'by-hand', [BOB])).lines[0]).toMatch(/^2\.0\.0 Ok: queued as /);
        expect((await sendByHand(keys, id, 'by-hand', [BOB])).lines[0]).toMatch(/^2\.0\.0 already accepted: Ok: queued as /);
        expect((await sendByHand(otherKeys, id, 'by-hand', [BOB])).lines[0]).toMatch(/^2\.0\.0 Ok: queued as /);
        expect((await sendByHand(keys, id, 'by-hand', [CAROL])).lines[0]).toMatch(/^2\.0\.0 Ok: queued as /);
        expect((await sendByHand(keys, id, 'by-hand', [BOB, CAROL])).lines[0]).toMatch(/^2\.0\.0 Ok: queued as /);
        await copies(BOB, 'by-hand', 3);
        await copies(CAROL, 'by-hand', 2);
        expect(await copiesOf(b.postfix, BOB, 'by-hand')).toBe(3);
        expect(retries()).toHaveLength(answered + 1);
      });

      it('a malformed XPONY-ID is refused at MAIL', async () => {
        const opened = await connectXpony({ host: '127.0.0.1', port: hiddenB, localHostName: 'hand.a.test', keys: generateKeys() });
        if (opened.kind !== 'tunnel') throw new Error('B offered no tunnel');
        const client = await SmtpClient.over(opened.tunnel, { host: '127.0.0.1', port: hiddenB, timeoutMs: loadScaled(30_000), label: 'B' });
        await client.command('EHLO hand.a.test');
        const reply = await client.command(`MAIL FROM:<${A.mailbox}> ${MESSAGE_ID_KEYWORD}=short`);
        expect(reply.code).toBe(501);
        expect(reply.lines[0]).toMatch(/^5\.5\.4 XPONY-ID: /);
        client.quit();
      });
    },
  );
