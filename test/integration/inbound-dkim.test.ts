/**
 * A DKIM signature survives blackpony: a message signed by an independent implementation (Perl's
 * Mail::DKIM) goes through blackpony into a real Postfix's Maildir, sealed inside an XPONY tunnel
 * and in plain SMTP, and Mail::DKIM then verifies the delivered file against the public key the
 * test DNS serves.
 */
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectXpony } from '../../src/xpony/index.js';
import { openInnerSmtp } from './inner-smtp.js';
import { createWrapStream } from '../../src/xpony/sealed-message.js';
import { runCommand } from '../harness/command.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { DNSMASQ, describeWith, executable, POSTFIX, ROOT, SWAKS, type Requirement } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { MAILBOX, startBlackpony, startPostfixBehind, type Blackpony, type PostfixBehind } from './inbound-fixtures.js';
import { clientKeys, serverKeys } from './xpony-fixtures.js';

const OPENSSL = executable('openssl', '/usr/bin/openssl');
const PERL_MAIL_DKIM: Requirement = {
  name: 'perl Mail::DKIM',
  check: () =>
    spawnSync('perl', ['-MMail::DKIM', '-MNet::DNS', '-e1']).status === 0 ? null : 'perl Mail::DKIM not installed (Debian package libmail-dkim-perl)',
};

const DOMAIN = 'sender.test';
const SELECTOR = 'sel';

/** Signs the message in file ARGV[1] with the PEM key ARGV[0]; writes signature and message to file ARGV[2]. */
const SIGN_PL = `
use strict; use warnings;
use Mail::DKIM::Signer; use Mail::DKIM::TextWrap;
my ($key, $in, $out) = @ARGV;
open(my $fh, '<:raw', $in) or die "$in: $!";
my $message = do { local $/; <$fh> };
my $signer = Mail::DKIM::Signer->new(Algorithm => 'rsa-sha256', Method => 'relaxed/relaxed', Domain => '${DOMAIN}', Selector => '${SELECTOR}', KeyFile => $key);
$signer->PRINT($message);
$signer->CLOSE;
open(my $signed, '>:raw', $out) or die "$out: $!";
print $signed $signer->signature->as_string, "\\r\\n", $message;
close($signed) or die "$out: $!";
`;

/** Verifies the stored message ARGV[1] (LF line ends, as in a Maildir) with keys from the DNS server on 127.0.0.1:ARGV[0]. */
const VERIFY_PL = `
use strict; use warnings;
use Mail::DKIM::Verifier; use Mail::DKIM::DNS; use Net::DNS::Resolver;
my ($port, $in) = @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $port, recurse => 0));
open(my $fh, '<:raw', $in) or die "$in: $!";
my $message = do { local $/; <$fh> };
$message =~ s/\\r?\\n/\\r\\n/g;
my $verifier = Mail::DKIM::Verifier->new();
$verifier->PRINT($message);
$verifier->CLOSE;
print $verifier->result_detail, "\\n";
`;

/** CRLF line ends, as DATA carries them: 8-bit text, dot lines, a folded header. */
const ORIGINAL = Buffer.from(
  [
    'From: Alice <alice@sender.test>',
    'To: user@d.test',
    'Subject: signed, and',
    '  folded',
    'Date: Sun, 22 Nov 2026 00:00:00 +0000',
    'Message-ID: <dkim-1@sender.test>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'signed body',
    '.',
    '..two dots',
    'caf\u00e9 8-bit',
    '',
  ].join('\r\n'),
  'utf8',
);

describeWith([ROOT, POSTFIX, SWAKS, DNSMASQ, OPENSSL, PERL_MAIL_DKIM], 'inbound: a DKIM signature survives the relay', () => {
  let behind: PostfixBehind;
  let pony: Blackpony;
  let dns: TestDns;
  let dir: string;
  let signed: Buffer;

  async function perl(name: string, script: string, args: string[]): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, script);
    const result = await runCommand('perl', [file, ...args]);
    if (result.exitCode !== 0) throw new Error(`perl ${file}: exit ${result.exitCode}: ${result.stderr}`);
    return result.stdout;
  }

  /** Mail::DKIM's verdict on the Maildir file's bytes, e.g. "pass" or "fail (body has been altered)". */
  async function verify(bytes: Buffer, name: string): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, bytes);
    return (await perl('verify.pl', VERIFY_PL, [String(dns.port), file])).trim();
  }

  async function delivered(send: () => Promise<void>): Promise<Buffer> {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    await send();
    return (await behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes;
  }

  beforeAll(async () => {
    dir = await makeTempDir('dkim');
    const key = join(dir, 'dkim.pem');
    const made = await runCommand('/usr/bin/openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key]);
    if (made.exitCode !== 0) throw new Error(`openssl genpkey: ${made.stderr}`);
    const publicPem = await runCommand('/usr/bin/openssl', ['pkey', '-in', key, '-pubout']);
    const publicKey = publicPem.stdout.replace(/-----[A-Z ]+-----|\s/g, '');
    dns = await startDns({ txt: [{ name: `${SELECTOR}._domainkey.${DOMAIN}`, value: `v=DKIM1; k=rsa; p=${publicKey}` }] });
    const message = join(dir, 'original.eml');
    await writeFile(message, ORIGINAL);
    await perl('sign.pl', SIGN_PL, [key, message, join(dir, 'signed.eml')]);
    signed = await readFile(join(dir, 'signed.eml'));
    expect(signed.subarray(0, 16).toString('latin1')).toBe('DKIM-Signature: ');
    expect(await verify(signed, 'signed.eml.check')).toBe('pass');
    behind = await startPostfixBehind();
    pony = await startBlackpony(behind.listenerPort);
  });
  afterAll(async () => {
    await pony?.inbound.close();
    await behind?.postfix.stop();
    await dns?.stop();
    if (dir !== undefined) await removeTempDir(dir);
  });

  it('verifies ("pass") after a plain SMTP relay, and fails for a copy with one byte altered', async () => {
    const bytes = await delivered(async () => {
      const result = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: `alice@${DOMAIN}`, to: MAILBOX, ehlo: `mta.${DOMAIN}`, data: signed });
      expect(result.exitCode, result.transcript).toBe(0);
    });
    expect(bytes.toString('latin1')).toMatch(/^X-Pony-Trace: v=1; [^\n]*via=plain; peer=none; sealed=no;/m);
    expect(await verify(bytes, 'plain.eml')).toBe('pass');
    const altered = Buffer.from(bytes);
    const at = altered.indexOf('signed body');
    altered[at] = 'S'.charCodeAt(0);
    expect(await verify(altered, 'altered.eml')).toMatch(/^fail\b/);
  });

  it('verifies ("pass") after an XPONY tunnel with the message sealed', async () => {
    const sealed = await buffer(
      Readable.from([signed]).pipe(createWrapStream([serverKeys().ageX25519Recipient])) as NodeJS.ReadableStream & AsyncIterable<Buffer>,
    );
    const bytes = await delivered(async () => {
      const result = await connectXpony({ host: '127.0.0.1', port: pony.port, localHostName: `mta.${DOMAIN}`, keys: clientKeys() });
      if (result.kind !== 'tunnel') throw new Error(`no tunnel: ${result.kind}`);
      const inner = await openInnerSmtp(result.tunnel, { localHostName: `mta.${DOMAIN}` });
      const info = await inner.send({ from: `alice@${DOMAIN}`, to: [MAILBOX] }, sealed);
      expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
      await inner.quit();
    });
    expect(bytes.toString('latin1')).toMatch(/^X-Pony-Trace: v=1; [^\n]*via=xpony\/2; peer=\S+; sealed=yes;/m);
    expect(await verify(bytes, 'sealed.eml')).toBe('pass');
  });
});
