/**
 * Adversity, part 2: faults. Two sites as deployed (Postfix + `blackpony run` child processes),
 * A sending to B through an XPONY tunnel, and a misbehaving legacy MX. Postfix is stopped and
 * restarted on either side, blackpony is SIGKILLed mid-transaction on either side and started
 * again, and the remote MX answers 4xx/5xx at every stage, says nothing, or drops mid-DATA.
 * Every message must end up delivered exactly once, still queued in A's Postfix, or (after a
 * 5xx) bounced to its sender. The duplicate SMTP's at-least-once rule would force (a kill after B
 * accepted, before A's Postfix heard it) is provoked on purpose: B recognises the retry by its
 * XPONY-ID and answers it without a second copy (docs/PROTOCOL.md section 5); counted and printed.
 *
 * A remote slower than a timeout: silent from the start (the connect timeout, which covers the
 * greeting) or from one stage on (outbound.command_timeout_seconds, short here).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { deliveredId, type TestMessage } from '../../scripts/adversity-messages.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { freePort } from '../harness/ports.js';
import type { PostfixInstance } from '../harness/postfix.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { waitFor } from '../harness/wait.js';
import { sharedMxPort } from '../integration/outbound-fixtures.js';
import { startRelay, type Relay } from '../integration/xpony-fixtures.js';
import { startDaemonSite, type DaemonSite } from './daemon-site.js';
import { startFakeMx, type FakeMx, type Misbehaviour, type Stage } from './fake-mx.js';
import { copiesOf, holdDeferred, mxRecords, printFigure, retryHeld, sendMessage, tally } from './fixtures.js';

const A = { domain: 'a.test', address: '127.0.0.5', mailbox: 'alice@a.test' };
const B = { domain: 'b.test', address: '127.0.0.2', mailbox: 'bob@b.test' };
const LEGACY = { domain: 'legacy.test', address: '127.0.0.3', mailbox: 'lee@legacy.test' };
const BIG = 4 * 1024 * 1024;

describeWith([POSTFIX, ROOT, DNSMASQ, SWAKS], 'adversity 2: faults on either side and at the remote MX', () => {
  let dns: TestDns;
  let a: DaemonSite;
  let b: DaemonSite;
  let fakeMx: FakeMx;
  let relay: Relay;
  /** Called with each chunk A sends to B and each chunk B sends back; returns what to pass on. */
  let toB: (data: Buffer) => Buffer = (data) => data;
  let toA: (data: Buffer) => Buffer = (data) => data;
  const sentToB: TestMessage[] = [];
  /** B's log lines for retries it answered from its accepted messages. */
  const retriesAtB = () => b.daemon.log('message accepted').filter((line) => line.retry === true);
  let scenarios = 0;

  beforeAll(async () => {
    const mxPort = await sharedMxPort([B.address, LEGACY.address, A.address]);
    const hiddenB = await freePort();
    dns = await startDns({});
    a = await startDaemonSite({ domain: A.domain, inbound: { host: A.address, port: mxPort }, mxPort, dnsPort: dns.port, mailboxes: [A.mailbox] });
    b = await startDaemonSite({ domain: B.domain, inbound: { host: '127.0.0.1', port: hiddenB }, mxPort, dnsPort: dns.port, mailboxes: [B.mailbox] });
    relay = await startRelay(hiddenB, { fromClient: (data) => toB(data), fromServer: (data) => toA(data) }, { listen: { host: B.address, port: mxPort } });
    fakeMx = await startFakeMx(LEGACY.address, mxPort, { kind: 'silent' });
    await dns.restart(mxRecords([B, LEGACY], [{ domain: B.domain, record: b.record('enforce') }]));
    // So that each scenario sees only its own message.
    await holdDeferred(a.postfix);
  });

  afterAll(async () => {
    await relay?.close();
    await fakeMx?.close();
    await a?.stop();
    await b?.stop();
    await dns?.stop();
  });

  /** Delivery log lines of A's blackpony for `domain`, from index `since` on. */
  const deliveries = (domain: string, since = 0) =>
    a.daemon
      .log('delivery ')
      .slice(since)
      .filter((line) => line.domain === domain);

  async function sendToB(id: string, size = 50_000): Promise<TestMessage> {
    const message = await sendMessage(a.postfix, id, A.mailbox, [B.mailbox], size);
    sentToB.push(message);
    scenarios++;
    return message;
  }

  async function delivered(postfix: PostfixInstance, id: string): Promise<void> {
    await waitFor(`${id} delivered`, async () => ((await copiesOf(postfix, B.mailbox, id)) >= 1 ? true : undefined), {
      diagnostics: async () => `A queue: ${JSON.stringify(await a.postfix.queue())}\nA log: ${a.daemon.process.stderr().slice(-3000)}`,
    });
  }

  /** Stops Postfix's master(8) without removing the instance; restart() brings it back. */
  async function stopPostfix(postfix: PostfixInstance): Promise<void> {
    const pid = postfix.masterPid!;
    process.kill(-pid, 'SIGTERM');
    await waitFor('postfix master gone', () => (postfix.masterPid === undefined ? true : undefined));
  }

  /**
   * Bytes from A to B on the current connection, counted until `at`, then `then()` once. With
   * `cut`, nothing more reaches B after that chunk: a kill takes a while to land, and A, which
   * sends the payload in raw runs, can get the rest of a message through in that while.
   */
  function whenAHasSent(at: number, then: () => void, { cut = false } = {}): void {
    let count = 0;
    let fired = false;
    toB = (data) => {
      if (fired && cut) return Buffer.alloc(0);
      count += data.length;
      if (!fired && count >= at) {
        fired = true;
        then();
      }
      return data;
    };
  }

  it('the receiving Postfix stopped: A defers and keeps the message; restarted: delivered once', async () => {
    await stopPostfix(b.postfix);
    const since = a.daemon.log('delivery ').length;
    const message = await sendToB('postfix-b-down');
    await waitFor('a deferral for b.test', () => (deliveries(B.domain, since).some((l) => String(l.msg).startsWith('delivery deferred')) ? true : undefined));
    await a.postfix.waitForQueue('holds it', (q) => q.length === 1);
    await b.postfix.restart();
    await retryHeld(a.postfix);
    await delivered(b.postfix, message.id);
  });

  it('the sending Postfix stopped with mail queued and restarted: delivered once', async () => {
    await stopPostfix(b.postfix);
    const message = await sendToB('postfix-a-restarted');
    await a.postfix.waitForQueue('holds it', (q) => q.length === 1);
    await stopPostfix(a.postfix);
    await b.postfix.restart();
    await a.postfix.restart();
    await retryHeld(a.postfix);
    await delivered(b.postfix, message.id);
  });

  for (const [side, title] of [
    ['b', 'the receiving blackpony SIGKILLed mid-DATA: A defers; restarted: delivered once'],
    ['a', 'the sending blackpony SIGKILLed mid-transaction: Postfix keeps the message; restarted: delivered once'],
  ] as const) {
    it(title, async () => {
      const site = side === 'a' ? a : b;
      const killed: Array<Promise<void>> = [];
      whenAHasSent(BIG / 2, () => killed.push(site.daemon.kill()), { cut: true });
      const message = await sendToB(`kill-${side}-mid-data`, BIG);
      await waitFor(`${side.toUpperCase()} killed mid-DATA`, () => (killed.length > 0 ? true : undefined));
      await killed[0];
      toB = (data) => data;
      await a.postfix.waitForQueue('holds it', (q) => q.length === 1);
      expect(await copiesOf(b.postfix, B.mailbox, message.id)).toBe(0);
      await site.daemon.start();
      await retryHeld(a.postfix);
      await delivered(b.postfix, message.id);
    });
  }

  it('the sending blackpony SIGKILLed after B accepted, before Postfix heard: B recognises the retry, no second copy', async () => {
    // Everything A sent is through; B's replies (its 250 to the end of data) are held back.
    let held = false;
    const size = 200_000;
    whenAHasSent(size, () => (held = true));
    toA = (data) => (held ? Buffer.alloc(0) : data);
    const message = await sendToB('kill-a-after-accept', size);
    await delivered(b.postfix, message.id);
    await a.daemon.kill();
    toA = (data) => data;
    toB = (data) => data;
    await a.postfix.waitForQueue('holds it', (q) => q.length === 1);
    await a.daemon.start();
    const answered = retriesAtB().length;
    await retryHeld(a.postfix);
    await a.postfix.waitForQueue('the retry answered', (q) => q.length === 0);
    expect(retriesAtB()).toHaveLength(answered + 1);
    expect(await copiesOf(b.postfix, B.mailbox, message.id)).toBe(1);
  });

  const stages: Stage[] = ['greeting', 'EHLO', 'MAIL', 'RCPT', 'DATA', 'end-of-data'];
  const remoteFaults: Array<[string, Misbehaviour]> = [
    ['says nothing (beyond the connect timeout)', { kind: 'silent' }],
    ...(['EHLO', 'MAIL', 'RCPT', 'DATA', 'end-of-data'] as const).map((stage): [string, Misbehaviour] => [
      `goes silent at ${stage} (beyond the command timeout)`,
      { kind: 'stall', stage },
    ]),
    ['drops the connection mid-DATA', { kind: 'drop-mid-data' }],
    ...stages.map((stage): [string, Misbehaviour] => [`answers 451 at ${stage}`, { kind: 'reply', stage, reply: '451 4.3.0 try again later' }]),
    ...stages.map((stage): [string, Misbehaviour] => [`answers 554 at ${stage}`, { kind: 'reply', stage, reply: '554 5.7.1 go away' }]),
  ];
  const legacySent: TestMessage[] = [];
  const bounced: string[] = [];

  for (const [what, misbehaviour] of remoteFaults) {
    it(`a legacy MX that ${what}: deferred and kept, or bounced to the sender on a 5xx after the greeting; never lost`, async () => {
      fakeMx.misbehaviour = misbehaviour;
      const since = a.daemon.log('delivery ').length;
      const id = `remote-${what.replace(/[^a-z0-9]+/gi, '-')}`;
      const message = await sendMessage(a.postfix, id, A.mailbox, [LEGACY.mailbox], 20_000);
      legacySent.push(message);
      scenarios++;
      const permanent = misbehaviour.kind === 'reply' && misbehaviour.reply.startsWith('5') && !['greeting', 'EHLO'].includes(misbehaviour.stage);
      // One delivery line per attempt, a refusal at RCPT (which Postfix hears at RCPT) included.
      const [line] = await waitFor(
        'a delivery log line for legacy.test',
        () => {
          const lines = deliveries(LEGACY.domain, since);
          return lines.length > 0 ? lines : undefined;
        },
        { diagnostics: () => a.daemon.process.stderr().slice(-3000) },
      );
      expect(line!.outcome, JSON.stringify(line)).toBe(permanent ? 'bounced' : 'deferred');
      if (misbehaviour.kind === 'reply' && misbehaviour.stage === 'RCPT') expect(line).toMatchObject({ recipients: 0, refused: 1, reply: misbehaviour.reply });
      if (permanent) {
        bounced.push(id);
        await waitFor(`a bounce for ${id}`, async () =>
          (await a.postfix.maildirMessages(A.mailbox)).some((m) => m.bytes.includes(`<${id}@adversity.test>`)) ? true : undefined,
        );
      } else {
        await a.postfix.waitForQueue(`holds ${id}`, (q) => q.some((m) => m.recipients.some((r) => r.address === LEGACY.mailbox)));
      }
      expect(fakeMx.received.some((text) => text.includes(`<${id}@adversity.test>`))).toBe(false);
    });
  }

  it('at the end: every message delivered exactly once, or bounced after a 5xx; no second copies', async () => {
    fakeMx.misbehaviour = { kind: 'none' };
    await retryHeld(a.postfix);
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
    // A's queue empties when B has queued the last retry; B delivers it a moment later.
    await b.postfix.waitForQueue('empty', (q) => q.length === 0);
    const atB = await tally(sentToB, [b]);
    expect(atB).toEqual({ sent: sentToB.length, delivered: sentToB.length, lost: 0, duplicated: 0, corrupted: 0 });
    const ids = (texts: string[]) => texts.map((text) => deliveredId(Buffer.from(text.replace(/\r\n/g, '\n'), 'latin1')));
    const atLegacy = ids(fakeMx.received);
    for (const message of legacySent) {
      const copies = atLegacy.filter((id) => id === message.id).length;
      expect(copies, message.id).toBe(bounced.includes(message.id) ? 0 : 1);
    }
    printFigure(
      `faults: scenarios ${scenarios}, delivered exactly once ${atB.delivered + legacySent.length - bounced.length}, ` +
        `bounced on 5xx ${bounced.length}, lost 0, duplicates forced by at-least-once 0 (retries answered by B without a copy ${retriesAtB().length})`,
    );
  });
});
