/**
 * Adversity, part 4 (CI-sized; `npm run soak -- --messages N` runs it at any size): messages of
 * 1 KiB to 5 MiB from Postfix A through blackpony A to three domains: two behind blackpony B
 * (one with an enforce record, one pinned on first contact), and a legacy Postfix. Once every
 * queue is empty, the SHA-256 of every delivered body is compared with what was sent.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { formatTally } from '../../scripts/adversity-messages.js';
import { sendLoad } from '../../scripts/load-generator.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT } from '../harness/requirements.js';
import { waitBound } from '../harness/wait.js';
import { sharedMxPort, startBlackponySite, startLegacySite, type BlackponySite, type LegacySite } from '../integration/outbound-fixtures.js';
import { printFigure, tally } from './fixtures.js';

const MESSAGES = Number(process.env.BLACKPONY_LOAD_MESSAGES ?? 1_000);
const A = { domain: 'a.test', address: '127.0.0.5', mailbox: 'alice@a.test' };
const B = { domain: 'b.test', address: '127.0.0.2', mailboxes: ['bob@b.test', 'carol@c.test'] };
const LEGACY = { domain: 'legacy.test', address: '127.0.0.3', mailbox: 'lee@legacy.test' };
/** Generous: about 60 ms per message on two cores, plus start-up. */
const TIMEOUT_MS = 120_000 + MESSAGES * 60;

describeWith([POSTFIX, ROOT, DNSMASQ], `adversity 4: load, ${MESSAGES} messages through two Postfix + blackpony pairs and a legacy peer`, () => {
  let dns: TestDns;
  let a: BlackponySite;
  let b: BlackponySite;
  let legacy: LegacySite;

  beforeAll(async () => {
    const mxPort = await sharedMxPort([B.address, LEGACY.address]);
    dns = await startDns({});
    const resolver = () => dns.resolver();
    b = await startBlackponySite({ ...B, mxPort, resolver });
    a = await startBlackponySite({ ...A, mxPort, resolver, mailboxes: [A.mailbox] });
    legacy = await startLegacySite({ ...LEGACY, mxPort, mailboxes: [LEGACY.mailbox], tls: true });
    await dns.restart({
      mx: [
        { domain: B.domain, host: `mx.${B.domain}`, preference: 10 },
        { domain: 'c.test', host: `mx.${B.domain}`, preference: 10 },
        { domain: LEGACY.domain, host: `mx.${LEGACY.domain}`, preference: 10 },
      ],
      a: [
        { host: `mx.${B.domain}`, address: B.address },
        { host: `mx.${LEGACY.domain}`, address: LEGACY.address },
      ],
      txt: [{ name: `_pony.${B.domain}`, value: b.record('enforce') }],
    });
  });

  afterAll(async () => {
    for (const site of [a, b]) {
      await site?.inbound.close();
      await site?.outbound.server.close();
    }
    await dns?.stop();
  });

  it(
    `every one of ${MESSAGES} messages arrives once, byte-exact`,
    async () => {
      const started = performance.now();
      const sent = await sendLoad('127.0.0.1', a.postfix.port, {
        messages: MESSAGES,
        from: A.mailbox,
        recipients: [...B.mailboxes, LEGACY.mailbox],
        connections: 4,
        idPrefix: 'load',
      });
      for (const postfix of [a.postfix, b.postfix, legacy.postfix]) await postfix.waitForQueue('empty', (q) => q.length === 0, waitBound(TIMEOUT_MS));
      const seconds = (performance.now() - started) / 1000;
      const result = await tally(sent, [
        { postfix: b.postfix, mailboxes: B.mailboxes },
        { postfix: legacy.postfix, mailboxes: [LEGACY.mailbox] },
      ]);
      const modes = new Map<string, number>();
      for (const record of a.outbound.deliveries)
        if (record.outcome === 'delivered') modes.set(record.mode ?? 'none', (modes.get(record.mode ?? 'none') ?? 0) + 1);
      console.log(`load: ${seconds.toFixed(1)} s; deliveries by mode: ${[...modes].map(([mode, n]) => `${mode} ${n}`).join(', ')}`);
      printFigure(formatTally(result));
      expect(result).toEqual({ sent: MESSAGES, delivered: MESSAGES, lost: 0, duplicated: 0, corrupted: 0 });
      expect(modes.get('xpony')).toBeGreaterThan(0);
      expect(modes.get('starttls')).toBeGreaterThan(0);
    },
    waitBound(TIMEOUT_MS * 2),
  );
});
