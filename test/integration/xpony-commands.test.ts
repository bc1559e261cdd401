/**
 * The XPONY verb from a hand-driven client: every reply code of docs/PROTOCOL.md section 3, and
 * the session keeps serving in plaintext after each refusal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HandshakeState } from '../../src/crypto/noise/index.js';
import { x25519GenerateKeyPair } from '../../src/crypto/primitives.js';
import { NOISE_PROTOCOLS } from '../../src/xpony/limits.js';
import { RawSmtp, startXponyServer, type TestServer } from './xpony-fixtures.js';

function message1(): string {
  const state = new HandshakeState({ protocolName: NOISE_PROTOCOLS['1'], initiator: true, prologue: new Uint8Array(0), s: x25519GenerateKeyPair() });
  return Buffer.from(state.writeMessage(new Uint8Array(0))).toString('base64');
}

describe('XPONY command replies', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startXponyServer({ handshakeTimeoutMs: 400 });
  });
  afterAll(async () => {
    await srv.close();
  });

  async function afterEhlo(): Promise<RawSmtp> {
    const smtp = await RawSmtp.connect(srv.port);
    expect((await smtp.reply()).code).toBe(220);
    expect(await smtp.command('EHLO client.test')).toMatch(/^250 /);
    return smtp;
  }

  /** After a refusal the session is in the state right after EHLO: a transaction still works. */
  async function stillServes(smtp: RawSmtp): Promise<void> {
    expect(await smtp.command('MAIL FROM:<a@sender.test>')).toMatch(/^250 /);
    expect(await smtp.command('RSET')).toMatch(/^250 /);
    expect(await smtp.command('QUIT')).toMatch(/^221 /);
  }

  const malformed: Array<[string, string]> = [
    ['XPONY', '501 5.5.2 XPONY: expected "XPONY <version> <base64>"'],
    ['XPONY 1', '501 5.5.2 XPONY: expected "XPONY <version> <base64>"'],
    ['XPONY 1 QQ== extra', '501 5.5.2 XPONY: expected "XPONY <version> <base64>"'],
    ['XPONY  1 QQ==', '501 5.5.2 XPONY: expected "XPONY <version> <base64>"'],
    ['XPONY one QQ==', '501 5.5.2 XPONY: version must be 1 to 3 digits'],
    ['XPONY 3 QQ==', '504 5.5.4 XPONY: version 3 not supported'],
    ['XPONY 1 QQ', '501 5.5.2 XPONY: Noise message 1: not canonical base64'],
    ['XPONY 1 QR==', '501 5.5.2 XPONY: Noise message 1: not canonical base64'],
    ['XPONY 1 !!!!', '501 5.5.2 XPONY: Noise message 1: not canonical base64'],
    ['XPONY 1 ' + 'A'.repeat(4088), '501 5.5.2 XPONY: line longer than 4096 octets'],
    ['XPONY 1 QUFBQQ==', '535 5.7.8 XPONY: handshake failed'],
  ];
  for (const [line, expected] of malformed) {
    it(`answers ${JSON.stringify(line.slice(0, 30))} with ${expected.slice(0, 3)}`, async () => {
      const smtp = await afterEhlo();
      expect(await smtp.command(line)).toContain(expected);
      await stillServes(smtp);
    });
  }

  it('lets a line within 4096 octets past the length check', async () => {
    const smtp = await afterEhlo();
    // 4094 octets with CRLF (the longest canonical base64 that fits): fails on the Noise message instead.
    expect(await smtp.command('XPONY 1 ' + 'A'.repeat(4080) + 'AA==')).toMatch(/^535 5\.7\.8 /);
    await stillServes(smtp);
  });

  it('refuses a non-empty payload in Noise message 1 with 535', async () => {
    const state = new HandshakeState({ protocolName: NOISE_PROTOCOLS['1'], initiator: true, prologue: new Uint8Array(0), s: x25519GenerateKeyPair() });
    const withPayload = Buffer.from(state.writeMessage(new Uint8Array([1, 2, 3]))).toString('base64');
    const smtp = await afterEhlo();
    expect(await smtp.command(`XPONY 1 ${withPayload}`)).toBe('535 5.7.8 XPONY: handshake failed: Noise message 1 must carry an empty payload');
    await stillServes(smtp);
  });

  it('answers XPONY before EHLO, after HELO, after MAIL, and a second XPONY with 503', async () => {
    const smtp = await RawSmtp.connect(srv.port);
    await smtp.reply();
    expect(await smtp.command(`XPONY 1 ${message1()}`)).toBe('503 5.5.1 XPONY: must directly follow a successful EHLO');
    expect(await smtp.command('HELO client.test')).toMatch(/^250 /);
    expect(await smtp.command(`XPONY 1 ${message1()}`)).toMatch(/^503 5\.5\.1 /);
    expect(await smtp.command('EHLO client.test')).toMatch(/^250 /);
    expect(await smtp.command('MAIL FROM:<a@sender.test>')).toMatch(/^250 /);
    expect(await smtp.command(`XPONY 1 ${message1()}`)).toMatch(/^503 5\.5\.1 /);
    expect(await smtp.command('RSET')).toMatch(/^250 /);
    expect(await smtp.command('EHLO client.test')).toMatch(/^250 /);
    expect(await smtp.command('XPONY 3 QQ==')).toMatch(/^504 /);
    expect(await smtp.command(`XPONY 1 ${message1()}`)).toMatch(/^503 5\.5\.1 /);
    expect(await smtp.command('QUIT')).toMatch(/^221 /);
  });

  it('answers "*" with 501 5.7.0 and bad continuation lines with 501 or 535', async () => {
    const cases: Array<[string, RegExp]> = [
      ['*', /^501 5\.7\.0 XPONY: cancelled by client$/],
      ['not base64!', /^501 5\.5\.2 XPONY: Noise message 3: not canonical base64/],
      ['', /^501 5\.5\.2 XPONY: Noise message 3: empty/],
      [Buffer.alloc(64, 7).toString('base64'), /^535 5\.7\.8 XPONY: handshake failed: /],
      ['A'.repeat(4096), /^501 5\.5\.2 XPONY: line longer than 4096 octets$/],
    ];
    for (const [line, expected] of cases) {
      const smtp = await afterEhlo();
      expect(await smtp.command(`XPONY 1 ${message1()}`)).toMatch(/^334 [A-Za-z0-9+/]+=*$/);
      expect(await smtp.command(line)).toMatch(expected);
      await stillServes(smtp);
    }
    const outcomes = srv.handshakes.map((e) => e.outcome);
    expect(outcomes).toContain('cancelled');
    expect(outcomes).toContain('failed');
  });

  it('closes with 421 4.4.2 when the client stalls after the challenge', async () => {
    const smtp = await afterEhlo();
    expect(await smtp.command(`XPONY 1 ${message1()}`)).toMatch(/^334 /);
    const started = Date.now();
    const reply = await smtp.reply();
    expect(`${reply.code} ${reply.lines[0]}`).toBe('421 4.4.2 XPONY: handshake timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    await smtp.closed();
    expect(srv.handshakes.some((e) => e.outcome === 'timeout')).toBe(true);
  });

  it('still serves new sessions after all of this', async () => {
    const smtp = await afterEhlo();
    await stillServes(smtp);
    expect(srv.server.pendingHandshakes).toBe(0);
  });
});
