/**
 * STARTTLS for legacy clients: offered only with a configured certificate; a message sent over
 * it reaches a real Postfix unchanged, with a trace header saying via=starttls.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeTestCa, OPENSSL } from '../harness/certificates.js';
import { RawSmtp } from './xpony-fixtures.js';
import { describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { BLACKPONY_HOST, MAILBOX, startBlackpony, startPostfixBehind, type Blackpony, type PostfixBehind } from './inbound-fixtures.js';

const ORIGINAL = [
  'From: a@sender.test',
  'To: user@d.test',
  'Subject: over STARTTLS',
  'Date: Sun, 22 Nov 2026 00:00:00 +0000',
  'Message-ID: <tls-1@sender.test>',
  '',
  'sent encrypted',
  '.dot line',
  '',
].join('\n');

describeWith([ROOT, POSTFIX, SWAKS, OPENSSL], 'inbound: STARTTLS for legacy clients', () => {
  let behind: PostfixBehind;
  let withTls: Blackpony;
  let withoutTls: Blackpony;
  let dir: string;
  let ca: string;

  beforeAll(async () => {
    dir = await makeTempDir('starttls');
    const testCa = await makeTestCa(dir);
    const files = await testCa.issue('mx', [BLACKPONY_HOST, '127.0.0.1']);
    ca = testCa.file;
    behind = await startPostfixBehind();
    withTls = await startBlackpony(behind.listenerPort, { tls: { key: files.key, cert: files.cert } });
    withoutTls = await startBlackpony(behind.listenerPort);
  });
  afterAll(async () => {
    await withTls?.inbound.close();
    await withoutTls?.inbound.close();
    await behind?.postfix.stop();
    if (dir !== undefined) await removeTempDir(dir);
  });

  it('delivers a message sent over STARTTLS (certificate verified) unchanged, traced via=starttls', async () => {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    const result = await runSwaks({
      server: `127.0.0.1:${withTls.port}`,
      from: 'a@sender.test',
      to: MAILBOX,
      ehlo: 'tls.sender.test',
      tls: true,
      data: ORIGINAL,
      extraArgs: ['--tls-verify', '--tls-ca-path', ca],
    });
    expect(result.exitCode, result.transcript).toBe(0);
    expect(result.transcript).toMatch(/STARTTLS/);
    expect(result.transcript).toMatch(/TLS started with cipher/);
    const text = (await behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('utf8');
    expect(text.endsWith(ORIGINAL)).toBe(true);
    expect(text).toMatch(
      new RegExp(
        `^X-Pony-Trace: v=1; by=${BLACKPONY_HOST}; via=starttls; peer=none; sealed=no;\\n\\tclient=\\[127\\.0\\.0\\.1\\]:\\d+; helo=tls\\.sender\\.test;\\n`,
        'm',
      ),
    );
  });

  it('advertises STARTTLS only with a certificate; XPONY stays offered beside it', async () => {
    const offered = await runSwaks({ server: `127.0.0.1:${withTls.port}`, from: 'a@sender.test', to: MAILBOX, quitAfter: 'EHLO' });
    expect(offered.transcript).toMatch(/<- {2}250-STARTTLS\r?\n/);
    expect(offered.transcript).toContain('XPONY 1 2');
    const notOffered = await runSwaks({ server: `127.0.0.1:${withoutTls.port}`, from: 'a@sender.test', to: MAILBOX, quitAfter: 'EHLO' });
    expect(notOffered.transcript).toContain('XPONY 1 2');
    expect(notOffered.transcript).not.toContain('STARTTLS');
    // Nor run when asked: smtp-server would otherwise use its built-in, publicly known certificate.
    const smtp = await RawSmtp.connect(withoutTls.port);
    expect((await smtp.reply()).code).toBe(220);
    expect(await smtp.command('EHLO client.test')).toMatch(/^250 /);
    expect(await smtp.command('STARTTLS')).toMatch(/^5\d\d /);
    expect(await smtp.command('QUIT')).toMatch(/^221 /);
  });
});
