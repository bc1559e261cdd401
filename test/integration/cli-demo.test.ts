/** `blackpony demo` from the built CLI: two blackpony hosts and a legacy MX on loopback, three messages. */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliWorkDir, runCli, type CliRun } from '../harness/cli.js';
import { maildirMessages } from '../harness/maildir.js';

let dir: string;

beforeAll(() => {
  dir = cliWorkDir('cli-demo');
});

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** The header of a stored message (LF line ends, as Postfix's local delivery writes), folded lines joined. */
function header(message: Buffer): string {
  return message
    .toString('latin1')
    .split('\n\n', 1)[0]!
    .replace(/\n[ \t]+/g, ' ');
}

describe('blackpony demo', () => {
  it('has help with the exit status and an example', () => {
    const help = runCli(dir, ['demo', '--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--dir <dir>');
    expect(help.stdout).toContain('--keep');
    expect(help.stdout).toContain('Exit status: 0 when all three messages arrived');
    expect(help.stdout).toContain('blackpony demo --dir ./pony-demo --keep');
    expect(runCli(dir, ['--help']).stdout).toMatch(/\bdemo\b/);
  });

  describe('a run with --dir', () => {
    let run: CliRun;

    beforeAll(() => {
      run = runCli(dir, ['demo', '--dir', 'mail']);
    });

    it('exits 0 and says all three messages arrived', () => {
      expect(run.stderr).toBe('');
      expect(run.stdout).toContain(`All 3 messages arrived. Read them in ${join(dir, 'mail')}/*/Maildir/new`);
      expect(run.status).toBe(0);
    });

    it('delivers alpha -> beta through a tunnel, sealed: the body arrives with an X-Pony-Trace saying so', async () => {
      const [message, ...others] = await maildirMessages(join(dir, 'mail', 'beta.demo', 'Maildir'));
      expect(others).toHaveLength(0);
      const text = message!.bytes.toString('utf8');
      expect(text).toContain('\n\nHello Bob, this message travelled in a Noise tunnel, sealed to your age key.\n');
      expect(text).not.toContain('\r');
      expect(header(message!.bytes)).toMatch(/^X-Pony-Trace: v=1; by=mx\.beta\.demo; via=xpony\/2; peer=[a-z2-7-]{39}; sealed=yes;/m);
      expect(run.stdout).toContain(`file:   ${message!.path}`);
      expect(run.stdout).toMatch(
        /alice@alpha\.demo -> bob@beta\.demo: delivered\n {2}mode: {3}XPONY tunnel, sealed with age; server key [a-z2-7-]{39}, handshake [\d.]+ ms/,
      );
    });

    it('delivers beta -> alpha the same way', async () => {
      const [message] = await maildirMessages(join(dir, 'mail', 'alpha.demo', 'Maildir'));
      expect(message!.bytes.toString('utf8')).toContain('Hello Alice, and this one came back the same way.');
      expect(header(message!.bytes)).toMatch(/^X-Pony-Trace: v=1; by=mx\.alpha\.demo; via=xpony\/2; .*sealed=yes;/m);
    });

    it('delivers alpha -> legacy without a tunnel, and says how', async () => {
      const [message] = await maildirMessages(join(dir, 'mail', 'legacy.demo', 'Maildir'));
      expect(message!.bytes.toString('utf8')).toContain('Hello Carol, your server speaks no XPONY');
      expect(header(message!.bytes)).not.toContain('X-Pony-Trace');
      expect(run.stdout).toMatch(/alice@alpha\.demo -> carol@legacy\.demo: delivered\n {2}mode: {3}legacy SMTP (over STARTTLS|in plaintext)/);
      expect(run.stdout).toContain('trace:  no X-Pony-Trace (the legacy MX runs no blackpony)');
    });
  });

  it('a second run in the same --dir delivers all three again and leaves no key or pin behind', () => {
    const temporary = join(dir, 'tmp');
    mkdirSync(temporary);
    for (const round of [1, 2]) {
      const again = runCli(dir, ['demo', '--dir', 'again'], { TMPDIR: temporary });
      expect(again.stdout, `run ${round}`).toContain('All 3 messages arrived.');
      expect(again.status).toBe(0);
    }
    // The pins and the legacy MX's private key lived in a temporary folder, gone after each run.
    expect(readdirSync(temporary)).toEqual([]);
    const kept = readdirSync(join(dir, 'again'), { recursive: true }).map(String);
    expect(kept.filter((path) => /\.pem$|state/.test(path))).toEqual([]);
  });
});
