/**
 * STARTTLS for legacy clients: offered only with a configured certificate; a message sent over
 * it reaches a real Postfix unchanged, with a trace header saying via=starttls.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runCommand } from '../harness/command.js';
import { describeWith, executable, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { BLACKPONY_HOST, MAILBOX, startBlackpony, startPostfixBehind, type Blackpony, type PostfixBehind } from './inbound-fixtures.js';

const OPENSSL = executable('openssl', '/usr/bin/openssl');

const ORIGINAL = ['From: a@sender.test', 'To: user@d.test', 'Subject: over STARTTLS', 'Date: Sun, 22 Nov 2026 00:00:00 +0000', 'Message-ID: <tls-1@sender.test>', '', 'sent encrypted', '.dot line', ''].join('\n');

async function openssl(args: string[]): Promise<void> {
  const result = await runCommand('/usr/bin/openssl', args);
  if (result.exitCode !== 0) throw new Error(`openssl ${args[0]}: exit ${result.exitCode}: ${result.stderr}`);
}

/** A throwaway CA and a certificate it signed for BLACKPONY_HOST and 127.0.0.1; returns the file names. */
async function makeCertificate(dir: string): Promise<{ ca: string; key: string; cert: string }> {
  const [ca, caKey, key, csr, cert, ext] = ['ca.pem', 'ca-key.pem', 'key.pem', 'req.pem', 'cert.pem', 'ext.cnf'].map((name) => join(dir, name)) as [string, string, string, string, string, string];
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=blackpony test CA']);
  await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${BLACKPONY_HOST}`]);
  await writeFile(ext, `subjectAltName=DNS:${BLACKPONY_HOST},IP:127.0.0.1\n`);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext]);
  return { ca, key, cert };
}

describeWith([ROOT, POSTFIX, SWAKS, OPENSSL], 'inbound: STARTTLS for legacy clients', () => {
  let behind: PostfixBehind;
  let withTls: Blackpony;
  let withoutTls: Blackpony;
  let dir: string;
  let ca: string;

  beforeAll(async () => {
    dir = await makeTempDir('starttls');
    const files = await makeCertificate(dir);
    ca = files.ca;
    behind = await startPostfixBehind();
    withTls = await startBlackpony(behind.listenerPort, { tls: { key: await readFile(files.key), cert: await readFile(files.cert) } });
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
    expect(text).toMatch(new RegExp(`^X-Pony-Trace: v=1; by=${BLACKPONY_HOST}; via=starttls; peer=none; sealed=no;\\n\\tclient=\\[127\\.0\\.0\\.1\\]:\\d+; helo=tls\\.sender\\.test;\\n`, 'm'));
  });

  it('advertises STARTTLS only with a certificate; XPONY stays offered beside it', async () => {
    const offered = await runSwaks({ server: `127.0.0.1:${withTls.port}`, from: 'a@sender.test', to: MAILBOX, quitAfter: 'EHLO' });
    expect(offered.transcript).toMatch(/<- {2}250-STARTTLS\r?\n/);
    expect(offered.transcript).toContain('XPONY 1');
    const notOffered = await runSwaks({ server: `127.0.0.1:${withoutTls.port}`, from: 'a@sender.test', to: MAILBOX, quitAfter: 'EHLO' });
    expect(notOffered.transcript).toContain('XPONY 1');
    expect(notOffered.transcript).not.toContain('STARTTLS');
  });
});
