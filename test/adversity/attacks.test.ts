/**
 * Adversity, part 1: attacks by a man in the middle on B's MX address, between two real
 * Postfix + blackpony sites (A sends, B receives). Each attack gets a fresh relay; the message
 * sent during it must not be delivered in clear, altered or truncated: it stays in A's Postfix
 * queue with a delivery record naming the attack class, or (where the attack is harmless by
 * design) arrives intact. At the end the attacker leaves, A's queue is flushed, and every
 * message is in B's mailboxes exactly once, byte-exact.
 *
 * The plain-domain cases of outbound-delivery.test.ts (XPONY stripped from EHLO for an enforce
 * domain, a key swap for a pinned domain) and the bare-server frame attacks of
 * xpony-attacks.test.ts are not repeated; these run through the whole delivery path.
 */
import { connect } from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestMessage } from '../../scripts/adversity-messages.js';
import { generateKeys } from '../../src/crypto/keyfile.js';
import { createInboundServer, type InboundServer, type InboundServerOptions } from '../../src/inbound/inbound-server.js';
import type { DeliveryRecord } from '../../src/outbound/transaction.js';
import type { XponyHandshakeEvent } from '../../src/xpony/index.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { DNSMASQ, describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { loadScaled, sleep, waitFor } from '../harness/wait.js';
import { sharedMxPort, startBlackponySite, type BlackponySite } from '../integration/outbound-fixtures.js';
import { startRelay, type Relay, type RelayConnection, type RelayHooks } from '../integration/xpony-fixtures.js';
import {
  copiesOf,
  FrameSplitter,
  holdDeferred,
  printFigure,
  queuedFor,
  RAW_RUN_FRAME_OCTETS,
  retryHeld,
  sendMessage,
  tally,
  TUNNEL_READY,
} from './fixtures.js';

const A = { domain: 'a.test', address: '127.0.0.5', mailbox: 'alice@a.test' };
const B = { domain: 'b.test', address: '127.0.0.2', mailbox: 'bob@b.test' };
/** Served by B's MX without a record: pinned on first contact. */
const PINNED = 'bob@pinned.test';
/** Large enough that the sealed message spans several tunnel frames. */
const MESSAGE_SIZE = 200_000;
/** A frame of the message itself, not of a command or reply (to a receiver without raw runs). */
const isMessageFrame = (frame: Buffer): boolean => frame.length > 1_000;

/** Per connection: frames of each direction after the switch point. */
interface Tap {
  switched: boolean;
  fromClient: FrameSplitter;
  fromServer: FrameSplitter;
  tampered: boolean;
  /** A frame held back, sent after the next one. */
  held?: Buffer;
  /** Raw octets passed so far (XPONY-RAW-PAYLOAD), after the first raw-run frame. */
  rawOffset: number;
}

/** What a frame attack sends in place of the frame it picked; `tap.held` delays a frame. */
type FrameAttack = (frame: Buffer, tap: Tap, connection: RelayConnection) => Buffer[];
/** What a raw-run attack sends in place of raw octets that begin `offset` octets into the run. */
type RawAttack = (octets: Buffer, offset: number) => Buffer;

describeWith([POSTFIX, ROOT, DNSMASQ, SWAKS], 'adversity 1: attacks by a man in the middle between two Postfix + blackpony sites', () => {
  let dns: TestDns;
  let a: BlackponySite;
  let b: BlackponySite;
  let mxPort: number;
  /** B's inbound side, moved behind the attacker's relay. */
  let hiddenPort: number;
  let attacker: InboundServer | undefined;
  let relay: Relay | undefined;
  const sent: TestMessage[] = [];
  const serverHandshakes: XponyHandshakeEvent[] = [];
  let attacks = 0;
  let leaks = 0;
  /** Recorded by the first, unattacked delivery: what replays replay. */
  let recordedChallenge = '';
  let recordedClientBytes: Buffer[] = [];

  beforeAll(async () => {
    mxPort = await sharedMxPort([B.address]);
    dns = await startDns({});
    const resolver = () => dns.resolver();
    b = await startBlackponySite({ ...B, mxPort, resolver, mailboxes: [B.mailbox, PINNED] });
    a = await startBlackponySite({ ...A, mxPort, resolver, mailboxes: [A.mailbox] });
    await dns.restart({
      mx: [B.domain, 'pinned.test'].map((domain) => ({ domain, host: `mx.${B.domain}`, preference: 10 })),
      a: [{ host: `mx.${B.domain}`, address: B.address }],
      txt: [{ name: `_pony.${B.domain}`, value: b.record('enforce') }],
    });
    // So that each attack sees only its own message.
    await holdDeferred(a.postfix);
    await b.stopInbound();
    hiddenPort = await b.startInbound({ host: '127.0.0.1', port: 0 });
    b.inbound.server.on('xpony-handshake', (event: XponyHandshakeEvent) => serverHandshakes.push(event));
  });

  afterAll(async () => {
    await relay?.close();
    await attacker?.close();
    for (const site of [a, b]) {
      await site?.inbound.close();
      await site?.outbound.server.close();
    }
    await dns?.stop();
  });

  async function placeRelay(hooks: RelayHooks, target = hiddenPort): Promise<Relay> {
    await relay?.close();
    relay = await startRelay(target, hooks, { listen: { host: B.address, port: mxPort } });
    return relay;
  }

  /** Whether any connection through the relay carried this message's text outside the tunnel. */
  function leaked(message: TestMessage): boolean {
    return (relay?.connections ?? []).some((c) => Buffer.concat(c.toServer).includes(`adversity ${message.id}`));
  }

  function newRecord(domain: string, since: number, outcome: DeliveryRecord['outcome']): Promise<DeliveryRecord> {
    return waitFor(`a ${outcome} record for ${domain}`, () => a.outbound.deliveries.slice(since).find((d) => d.domain === domain && d.outcome === outcome), {
      diagnostics: () => JSON.stringify(a.outbound.deliveries.slice(since)),
    });
  }

  /** What the delivery log line says about a record: its deferral class, reply and attempts. */
  const logText = (record: DeliveryRecord): string => [record.deferral ?? '', record.reply, ...(record.attempts ?? [])].join(' | ');

  /**
   * Sends one message through the relay in place: it must be deferred with a log line matching
   * `attackClass`, kept in A's queue, absent from B's mailbox and never seen in clear.
   */
  async function expectDeferred(id: string, to: string, attackClass: RegExp): Promise<DeliveryRecord> {
    const since = a.outbound.deliveries.length;
    const message = await sendMessage(a.postfix, id, A.mailbox, [to], MESSAGE_SIZE);
    sent.push(message);
    attacks++;
    const record = await newRecord(to.split('@')[1]!, since, 'deferred');
    expect(logText(record)).toMatch(attackClass);
    await a.postfix.waitForQueue(`holds ${id}`, (q) => q.some((m) => m.recipients.some((r) => r.address === to)));
    expect(await copiesOf(b.postfix, to, id)).toBe(0);
    if (leaked(message)) leaks++;
    expect(leaked(message)).toBe(false);
    return record;
  }

  /** Sends one message through the relay in place: it must arrive once, intact (checked at the end). */
  async function expectDelivered(id: string, to: string): Promise<void> {
    const message = await sendMessage(a.postfix, id, A.mailbox, [to], MESSAGE_SIZE);
    sent.push(message);
    attacks++;
    await waitFor(`${id} delivered`, async () => ((await copiesOf(b.postfix, to, id)) === 1 ? true : undefined));
    if (leaked(message)) leaks++;
    expect(leaked(message)).toBe(false);
  }

  /**
   * A relay that hands the frames of one direction, after the switch point, to `attack` once;
   * and the octets of A's raw runs, if any, to `rawAttack`.
   */
  function frameRelay(direction: 'fromClient' | 'fromServer', pick: (frame: Buffer) => boolean, attack: FrameAttack, rawAttack?: RawAttack): Promise<Relay> {
    const taps = new Map<RelayConnection, Tap>();
    const tapOf = (c: RelayConnection): Tap =>
      taps.get(c) ?? taps.set(c, { switched: false, fromClient: new FrameSplitter(), fromServer: new FrameSplitter(), tampered: false, rawOffset: 0 }).get(c)!;
    const onFrames = (data: Buffer, c: RelayConnection, side: 'fromClient' | 'fromServer'): Buffer => {
      const tap = tapOf(c);
      const out: Buffer[] = [];
      for (const { kind, octets: frame } of tap[side].push(data)) {
        if (kind === 'raw') {
          out.push(rawAttack === undefined ? frame : rawAttack(frame, tap.rawOffset));
          tap.rawOffset += frame.length;
        } else if (side !== direction) {
          out.push(frame);
        } else if (tap.held !== undefined) {
          out.push(frame, tap.held);
          tap.held = undefined;
        } else if (!tap.tampered && pick(frame)) {
          tap.tampered = true;
          out.push(...attack(frame, tap, c));
        } else {
          out.push(frame);
        }
      }
      return Buffer.concat(out);
    };
    return placeRelay({
      fromServer: (data, c) => {
        const tap = tapOf(c);
        if (tap.switched) return onFrames(data, c, 'fromServer');
        if (data.toString('latin1').endsWith(TUNNEL_READY)) tap.switched = true;
        return data;
      },
      fromClient: (data, c) => (tapOf(c).switched ? onFrames(data, c, 'fromClient') : data),
    });
  }

  it('baseline: delivers to the enforce domain and pins the pinned domain through a passive relay, which records them', async () => {
    const recorder = await placeRelay({
      fromServer: (data) => {
        const text = data.toString('latin1');
        if (text.startsWith('334 ') && recordedChallenge === '') recordedChallenge = text;
        return data;
      },
    });
    for (const [id, to] of [
      ['baseline-enforce', B.mailbox],
      ['baseline-pinned', PINNED],
    ] as const) {
      sent.push(await sendMessage(a.postfix, id, A.mailbox, [to], MESSAGE_SIZE));
      await waitFor(`${id} delivered`, async () => ((await copiesOf(b.postfix, to, id)) === 1 ? true : undefined));
    }
    // Postfix B may store the message before blackpony A has heard B's 250 and pinned: wait for the pin.
    const pin = await waitFor('pinned.test pinned', async () => (await a.outbound.pins.get('pinned.test')) ?? undefined);
    expect(pin.keys).toHaveLength(1);
    expect(recordedChallenge).toMatch(/^334 [A-Za-z0-9+/=]+\r\n$/);
    // The session that carried a message: the one with the most octets.
    const sizeOf = (c: RelayConnection): number => Buffer.concat(c.toServer).length;
    recordedClientBytes = [...recorder.connections].sort((x, y) => sizeOf(y) - sizeOf(x))[0]!.toServer;
    expect(Buffer.concat(recordedClientBytes).toString('latin1')).toMatch(/^EHLO .*\r\nXPONY 2 /);
  });

  for (const [domain, to] of [
    ['enforce', B.mailbox],
    ['pinned', PINNED],
  ] as const) {
    it(`${domain} domain: a downgrade to STARTTLS (XPONY replaced by STARTTLS in EHLO) is deferred as a downgrade`, async () => {
      await placeRelay({ fromServer: (data) => Buffer.from(data.toString('latin1').replace(/^250 XPONY [^\r\n]*\r\n/m, '250 STARTTLS\r\n'), 'latin1') });
      const record = await expectDeferred(`downgrade-starttls-${domain}`, to, /^downgrade \|.*no XPONY offered/);
      expect(record.policy).toMatch(domain === 'pinned' ? /enforce \(pin\)/ : /enforce/);
    });

    it(`${domain} domain: a downgrade to plain (XPONY and STARTTLS stripped) is deferred as a downgrade`, async () => {
      await placeRelay({
        fromServer: (data) =>
          Buffer.from(
            data
              .toString('latin1')
              .replace(/250-STARTTLS\r\n/, '')
              .replace(/250-([^\r\n]*)\r\n250 XPONY [^\r\n]*\r\n/, '250 $1\r\n'),
            'latin1',
          ),
      });
      await expectDeferred(`downgrade-plain-${domain}`, to, /^downgrade \|.*no XPONY offered/);
    });
  }

  it("enforce domain with a published key: an attacker's blackpony with its own key is deferred as a key mismatch", async () => {
    attacker = createInboundServer({
      keys: generateKeys(),
      hostName: `mx.${B.domain}`,
      postfix: { host: '127.0.0.1', port: b.listenerPort, timeoutMs: loadScaled(10_000) },
    });
    const port = (await attacker.listen(0, '127.0.0.1')).port;
    await placeRelay({}, port);
    const record = await expectDeferred('key-substitution', B.mailbox, /^key-mismatch \|.*not a key b\.test published/);
    expect(record.policy).toMatch(/enforce \(record\)|enforce/);
    await attacker.close();
    attacker = undefined;
  });

  /**
   * B drops the connection without a word at the first bad frame (docs/PROTOCOL.md section 5), so
   * A's log line can only name the class "tunnel connection lost"; which frame was tampered with
   * is known to B alone. (A truncated frame and a closed connection may reach A before it has
   * written all of DATA, so the stage named varies.)
   */
  const TUNNEL_ABORTED =
    /^ \| 451 4\.4\.2 connection lost: mx\.b\.test \(tunnel\) [^ ]+: (.*: )?(connection closed( without a close frame)?|(read|write) ECONNRESET|write EPIPE)$/;
  const clientFrameAttacks: Array<[string, FrameAttack]> = [
    ['bit-flipped', (f) => [flipBit(f, f.length - 20)]],
    ['dropped', () => []],
    [
      'reordered (held back one frame)',
      (f, tap) => {
        tap.held = f;
        return [];
      },
    ],
    ['duplicated', (f) => [f, f]],
    [
      'truncated (half a frame, then the connection ends)',
      (f, _tap, c) => {
        setImmediate(() => c.server.end());
        return [f.subarray(0, f.length >> 1)];
      },
    ],
  ];
  /** B's inbound side restarted on its hidden port with `options` (none: as deployed). */
  async function restartB(options: Partial<InboundServerOptions> = {}): Promise<void> {
    await b.stopInbound();
    await b.startInbound({ host: '127.0.0.1', port: hiddenPort }, undefined, options);
    b.inbound.server.on('xpony-handshake', (event: XponyHandshakeEvent) => serverHandshakes.push(event));
  }

  // The message's octets travel in frames only to a receiver without raw runs.
  describe('B without XPONY-RAW-PAYLOAD (as before 2026-12-07: the whole message in frames)', () => {
    beforeAll(() => restartB({ offerRawPayload: false }));
    afterAll(() => restartB());

    for (const [what, attack] of clientFrameAttacks) {
      it(`a message frame from A ${what}: B delivers nothing, A defers and keeps the message`, async () => {
        const before = serverHandshakes.length;
        await frameRelay('fromClient', isMessageFrame, attack);
        await expectDeferred(`frame-${what.split(' ')[0]}`, B.mailbox, TUNNEL_ABORTED);
        // B completed the handshake: the damage was caught in the tunnel, not before it.
        expect(serverHandshakes.slice(before).map((e) => e.outcome)).toContain('tunnel');
      });
    }
  });

  it('the raw-run frame from A bit-flipped: B delivers nothing, A defers and keeps the message', async () => {
    const before = serverHandshakes.length;
    await frameRelay(
      'fromClient',
      (frame) => frame.length === RAW_RUN_FRAME_OCTETS,
      (frame) => [flipBit(frame, frame.length - 1)],
    );
    await expectDeferred('frame-raw-run', B.mailbox, TUNNEL_ABORTED);
    expect(serverHandshakes.slice(before).map((e) => e.outcome)).toContain('tunnel');
  });

  /** Octet 1000 of A's first raw run: the age payload's first chunk. */
  const RAW_TARGET = 1000;

  it("a payload octet in A's raw run bit-flipped: B says damaged in transit (451 4.6.0) and delivers nothing, A defers and keeps the message", async () => {
    await frameRelay(
      'fromClient',
      () => false,
      () => [],
      (octets, offset) => (RAW_TARGET >= offset && RAW_TARGET < offset + octets.length ? flipBit(octets, RAW_TARGET - offset) : octets),
    );
    await expectDeferred('raw-flipped', B.mailbox, /^ \| 451 4\.6\.0 sealed message damaged in transit: age payload: chunk 0 failed authentication/);
  });

  it("a thousand octets of A's raw run dropped: B waits for them and delivers nothing, A gives up at its timeout, defers and keeps the message", async () => {
    await frameRelay(
      'fromClient',
      () => false,
      () => [],
      (octets, offset) => Buffer.concat([octets.subarray(0, Math.max(0, RAW_TARGET - offset)), octets.subarray(Math.max(0, RAW_TARGET + 1000 - offset))]),
    );
    await expectDeferred('raw-dropped', B.mailbox, /^ \| 451 4\.4\.2 connection lost: mx\.b\.test \(tunnel\) [^ ]+: no reply to BDAT LAST within \d+ ms$/);
  });

  it('a frame from B bit-flipped: A says the frame failed authentication and defers', async () => {
    await frameRelay(
      'fromServer',
      () => true,
      (f) => [flipBit(f, f.length - 1)],
    );
    await expectDeferred('frame-from-server', B.mailbox, /frame failed authentication \(tampered, reordered, replayed or dropped\)/);
  });

  it('a recorded handshake replayed to A (an old Noise message 2): the handshake fails, A defers', async () => {
    await placeRelay({ fromServer: (data) => (data.toString('latin1').startsWith('334 ') ? Buffer.from(recordedChallenge, 'latin1') : data) });
    await expectDeferred('replayed-handshake', B.mailbox, /XPONY handshake-failed: ChaChaPoly: ciphertext failed authentication/);
  });

  it('a recorded session replayed to B: the handshake fails at Noise message 3, nothing is delivered again', async () => {
    const before = serverHandshakes.length;
    const socket = connect(hiddenPort, '127.0.0.1');
    await once(socket, 'connect');
    const replies: Buffer[] = [];
    socket.on('data', (data: Buffer) => replies.push(data));
    socket.on('error', () => undefined);
    for (const chunk of recordedClientBytes) {
      await sleep(100); // paced like the recorded session, not a wait for anything
      if (socket.destroyed) break;
      socket.write(chunk);
    }
    const answered = (): boolean => /^535 /m.test(Buffer.concat(replies).toString('latin1')) || socket.destroyed;
    await waitFor('B answers the replayed Noise message 3', () => (serverHandshakes.length > before && answered() ? true : undefined));
    socket.destroy();
    attacks++;
    const outcomes = serverHandshakes.slice(before);
    expect(outcomes.map((e) => e.outcome)).toEqual(['failed']);
    expect(Buffer.concat(replies).toString('latin1')).toMatch(/^535 5\.7\.8 XPONY: handshake failed: /m);
    expect(await copiesOf(b.postfix, B.mailbox, 'baseline-enforce')).toBe(1);
  });

  const injected = (id: string) =>
    `MAIL FROM:<mallory@evil.test>\r\nRCPT TO:<${B.mailbox}>\r\nDATA\r\nSubject: adversity ${id}\r\nMessage-ID: <${id}@adversity.test>\r\n\r\ninjected\r\n.\r\n`;

  it('plaintext injected toward B right after Noise message 3 is discarded: the real message arrives intact, the injected one never', async () => {
    let injectedOnce = false;
    const challenged = new WeakSet<RelayConnection>();
    await placeRelay({
      fromServer: (data, c) => {
        if (data.toString('latin1').startsWith('334 ')) challenged.add(c);
        return data;
      },
      fromClient: (data, c) => {
        if (!challenged.has(c) || injectedOnce) return data;
        injectedOnce = true;
        return Buffer.concat([data, Buffer.from(injected('injected-to-b'))]);
      },
    });
    await expectDelivered('inject-to-b', B.mailbox);
    expect(injectedOnce).toBe(true);
    expect(await copiesOf(b.postfix, B.mailbox, 'injected-to-b')).toBe(0);
  });

  it('plaintext replies injected toward A right after the switch point are discarded: the message arrives intact', async () => {
    let injectedOnce = false;
    await placeRelay({
      fromServer: (data) => {
        if (injectedOnce || !data.toString('latin1').endsWith(TUNNEL_READY)) return data;
        injectedOnce = true;
        return Buffer.concat([data, Buffer.from('220 evil.test ESMTP\r\n250 2.0.0 Ok: queued as EVIL\r\n')]);
      },
    });
    await expectDelivered('inject-to-a', B.mailbox);
    expect(injectedOnce).toBe(true);
  });

  it('once the attacker is gone every message is delivered exactly once and byte-exact', async () => {
    await relay?.close();
    relay = undefined;
    await b.stopInbound();
    await b.startInbound();
    await retryHeld(a.postfix);
    await a.postfix.waitForQueue('empty', (q) => q.length === 0);
    // A's queue empties when B has queued the last retry; B delivers it a moment later.
    await b.postfix.waitForQueue('empty', (q) => q.length === 0);
    const result = await tally(sent, [{ postfix: b.postfix, mailboxes: [B.mailbox, PINNED] }]);
    expect(result).toEqual({ sent: sent.length, delivered: sent.length, lost: 0, duplicated: 0, corrupted: 0 });
    expect(await queuedFor(a.postfix, B.mailbox)).toBe(0);
    printFigure(`attacks tried ${attacks}, plaintext leaks ${leaks}, corrupt deliveries ${result.corrupted}`);
  });
});

function flipBit(frame: Buffer, at: number): Buffer {
  const copy = Buffer.from(frame);
  copy[at]! ^= 0x01;
  return copy;
}
