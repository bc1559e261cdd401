/**
 * A remote MX that floods blackpony's outbound side with octets nobody asked for: while its
 * session waits idle in the session cache, and during DATA (having stopped reading the message).
 * blackpony holds at most MAX_UNREAD_REPLY_OCTETS of it, closes the connection, defers the
 * message (4xx to Postfix, which retries it), and its memory stays where it was.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { peakRssMib } from '../harness/peak-rss.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { waitFor } from '../harness/wait.js';
import { sharedMxPort } from '../integration/outbound-fixtures.js';
import { startDaemonSite, type DaemonSite } from './daemon-site.js';
import { startFakeMx, type FakeMx, type Flood } from './fake-mx.js';
import { holdDeferred, mxRecords, printFigure, retryHeld, sendMessage } from './fixtures.js';

const A = { domain: 'a.test', address: '127.0.0.5', mailbox: 'alice@a.test' };
const LEGACY = { domain: 'legacy.test', address: '127.0.0.3', mailbox: 'lee@legacy.test' };
/** What the client may take before it closes: its bound, plus what the kernel's socket buffers hold. */
const MOST_TAKEN = 32 * 1024 * 1024;
/** Growth of the daemon's peak RSS the floods may cause (the old reader grew by the flood's size). */
const MOST_GROWTH_MIB = 48;

describeWith([POSTFIX, ROOT, DNSMASQ, SWAKS], 'adversity: a remote MX that floods the outbound side', () => {
  let dns: TestDns;
  let a: DaemonSite;
  let mx: FakeMx;
  let rssBefore: number;

  beforeAll(async () => {
    const mxPort = await sharedMxPort([LEGACY.address, A.address]);
    dns = await startDns({});
    // Sessions are kept idle for reuse, as by default: the idle flood meets one in the cache.
    a = await startDaemonSite({
      domain: A.domain,
      inbound: { host: A.address, port: mxPort },
      mxPort,
      dnsPort: dns.port,
      mailboxes: [A.mailbox],
      tunnelIdleSeconds: 60,
    });
    mx = await startFakeMx(LEGACY.address, mxPort, { kind: 'none' });
    await dns.restart(mxRecords([LEGACY]));
    await holdDeferred(a.postfix);
    rssBefore = await peakRssMib(a.daemon.process.pid);
  });

  afterAll(async () => {
    await mx?.close();
    await a?.stop();
    await dns?.stop();
  });

  const deliveries = (since: number) =>
    a.daemon
      .log('delivery ')
      .slice(since)
      .filter((line) => line.domain === LEGACY.domain);
  const received = (id: string) => mx.received.filter((text) => text.includes(`<${id}@adversity.test>`)).length;

  /** The flood started `index`-th, once the client closed its connection. */
  async function closedByClient(index: number): Promise<Flood> {
    return waitFor(`flood ${index} closed by blackpony`, () => (mx.floods[index]?.closedByClient === true ? mx.floods[index] : undefined), {
      diagnostics: () => `floods: ${JSON.stringify(mx.floods)}\n${a.daemon.process.stderr().slice(-3000)}`,
    });
  }

  it('a flood while the session is idle in the cache: the session is closed and dropped; the next message goes on a new one', async () => {
    mx.misbehaviour = { kind: 'flood', when: 'idle' };
    await sendMessage(a.postfix, 'idle-flood', A.mailbox, [LEGACY.mailbox], 20_000);
    const flood = await closedByClient(0);
    expect(flood.octets).toBeLessThan(MOST_TAKEN);
    expect(received('idle-flood')).toBe(1);

    mx.misbehaviour = { kind: 'none' };
    const connections = mx.connections;
    await sendMessage(a.postfix, 'after-idle-flood', A.mailbox, [LEGACY.mailbox], 20_000);
    await waitFor('the next message delivered', () => (received('after-idle-flood') === 1 ? true : undefined));
    // Its log line comes once blackpony has read the MX's 250, which can be after the MX counted it: wait, so no later test reads it as its own.
    await waitFor('both deliveries logged', () => (deliveries(0).filter((line) => line.outcome === 'delivered').length >= 2 ? true : undefined));
    expect(mx.connections).toBe(connections + 1);
  });

  it('a flood during DATA: the session is closed, the message deferred (4xx) and kept; retried: delivered once', async () => {
    mx.misbehaviour = { kind: 'flood', when: 'DATA' };
    const since = a.daemon.log('delivery ').length;
    await sendMessage(a.postfix, 'data-flood', A.mailbox, [LEGACY.mailbox], 1024 * 1024);
    const flood = await closedByClient(1);
    expect(flood.octets).toBeLessThan(MOST_TAKEN);
    const [line] = await waitFor('a deferral for legacy.test', () => (deliveries(since).length > 0 ? deliveries(since) : undefined));
    expect(line).toMatchObject({ outcome: 'deferred' });
    // Octets read before the end of data are unasked for; after it, the flood is read as the reply, too long a line.
    expect(String(line!.reply)).toMatch(/^451 4\.4\.2 .*(no reply was awaited|reply to end of data: reply line 1: longer than 4096 octets)/);
    await a.postfix.waitForQueue('holds it', (q) => q.some((m) => m.recipients.some((r) => r.address === LEGACY.mailbox)));
    expect(received('data-flood')).toBe(0);

    mx.misbehaviour = { kind: 'none' };
    await retryHeld(a.postfix);
    await waitFor('the retry delivered', () => (received('data-flood') === 1 ? true : undefined));
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
    expect(received('data-flood')).toBe(1);
  });

  it("the daemon's peak memory barely moved", async () => {
    const rssAfter = await peakRssMib(a.daemon.process.pid);
    printFigure(
      `flood: peak RSS ${Math.round(rssBefore)} MiB before, ${Math.round(rssAfter)} MiB after; octets taken before closing: ${mx.floods.map((f) => f.octets).join(', ')}`,
    );
    expect(rssAfter - rssBefore).toBeLessThan(MOST_GROWTH_MIB);
  });
});
