/**
 * blackpony in front of Postfix's postscreen (deploy/postfix/postscreen-master.cf): blackpony on
 * port 25 -> postscreen with `postscreen_upstream_proxy_protocol = haproxy` -> smtpd. Each relayed
 * session opens with a PROXY line naming the real client, so postscreen's access list and tests
 * judge that client, never blackpony; blackpony waits for postscreen's whole greeting (the pregreet
 * test sends "220-" and pauses), and passes postscreen's own replies on, including the 4xx with
 * which its "after 220" tests send a client that passed them away to come back.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { makeTempDir } from '../harness/temp-dir.js';
import { loadScaled, waitFor } from '../harness/wait.js';
import { MAILBOX, startBlackpony, startPostfixBehind, type Blackpony, type PostfixBehind } from './inbound-fixtures.js';

const DENYLISTED = '127.0.0.2';
const NEW_CLIENT = '127.0.0.3';

describeWith([ROOT, POSTFIX, SWAKS], 'inbound relay to a real Postfix postscreen over the PROXY protocol', () => {
  let behind: PostfixBehind;
  let pony: Blackpony;

  beforeAll(async () => {
    const dir = await makeTempDir('postscreen-access');
    const accessList = join(dir, 'postscreen_access.cidr');
    await writeFile(accessList, `${DENYLISTED}/32 reject\n`);
    behind = await startPostfixBehind({
      postscreen: true,
      mynetworks: '127.0.0.1/32',
      mainCf: {
        postscreen_access_list: `permit_mynetworks, cidr:${accessList}`,
        postscreen_denylist_action: 'enforce',
        // The pregreet test: "220-", a pause, then the rest; a client that talks early is a bot.
        postscreen_greet_action: 'enforce',
        postscreen_greet_wait: '2s',
        // The "after 220" tests: postscreen plays the server itself, then sends the client away with a 4xx.
        postscreen_pipelining_enable: 'yes',
        postscreen_non_smtp_command_enable: 'yes',
        postscreen_bare_newline_enable: 'yes',
        message_size_limit: '300000',
      },
    });
    pony = await startBlackpony(behind.listenerPort, { clientIdentity: 'proxy', timeoutMs: loadScaled(15_000) });
  });
  afterAll(async () => {
    await pony?.inbound.close();
    await behind?.postfix.stop();
  });

  it("learns smtpd's SIZE through postscreen (blackpony's own address is in mynetworks, which the access list permits)", async () => {
    const ehlo = await runSwaks({ server: `127.0.0.1:${pony.port}`, from: 'a@sender.test', to: MAILBOX, quitAfter: 'EHLO' });
    expect(ehlo.transcript).toMatch(/<- {2}250-SIZE 300000\r?\n/);
  });

  it('a new client passes the pregreet test, is sent away by the "after 220" tests with postscreen\'s 4xx, and is delivered when it comes back', async () => {
    const before = (await behind.postfix.maildirMessages(MAILBOX)).length;
    const send = () =>
      runSwaks({
        server: `127.0.0.1:${pony.port}`,
        from: 'a@sender.test',
        to: MAILBOX,
        ehlo: 'new.sender.test',
        headers: { Subject: 'past postscreen' },
        extraArgs: ['--local-interface', NEW_CLIENT],
      });
    const first = await send();
    expect(first.transcript).toMatch(/<\*\* +450 4\.3\.2 Service currently unavailable/);
    expect(await behind.postfix.maildirMessages(MAILBOX)).toHaveLength(before);
    // postscreen logs its verdict once blackpony has hung up; the PROXY line named the client and the port it reached (blackpony's).
    const passed = new RegExp(`postscreen\\[\\d+\\]: PASS NEW \\[${NEW_CLIENT.replaceAll('.', '\\.')}\\]:\\d+`);
    const log = await waitFor(
      'postscreen: PASS NEW for the client',
      async () => {
        const text = await behind.postfix.readLog();
        return passed.test(text) ? text : undefined;
      },
      { diagnostics: () => behind.postfix.readLog() },
    );
    expect(log).toMatch(
      new RegExp(`postfix/blackpony/postscreen\\[\\d+\\]: CONNECT from \\[${NEW_CLIENT.replaceAll('.', '\\.')}\\]:\\d+ to \\[127\\.0\\.0\\.1\\]:${pony.port}`),
    );
    // blackpony waited for the whole greeting: no PREGREET, and none of the "after 220" violations.
    expect(log).not.toMatch(/PREGREET|COMMAND PIPELINING|NON-SMTP COMMAND|BARE NEWLINE/);

    const second = await send();
    expect(second.exitCode, second.transcript).toBe(0);
    const text = (await behind.postfix.waitForDelivery(MAILBOX, before + 1)).at(-1)!.bytes.toString('utf8');
    expect(text).toMatch(new RegExp(`^Received: from new\\.sender\\.test \\(unknown \\[${NEW_CLIENT.replaceAll('.', '\\.')}\\]\\)`, 'm'));
    await behind.postfix.waitForLog(new RegExp(`postfix/blackpony/smtpd\\[\\d+\\]: connect from unknown\\[${NEW_CLIENT.replaceAll('.', '\\.')}\\]`));
  });

  it("rejects a client on the access list's deny side through blackpony, by its real address", async () => {
    const result = await runSwaks({
      server: `127.0.0.1:${pony.port}`,
      from: 'a@spammer.test',
      to: MAILBOX,
      quitAfter: 'RCPT',
      extraArgs: ['--local-interface', DENYLISTED],
    });
    expect(result.transcript).toMatch(/<\*\* +550 5\.3\.2 Service currently unavailable/);
    await behind.postfix.waitForLog(new RegExp(`postscreen\\[\\d+\\]: DENYLISTED \\[${DENYLISTED.replaceAll('.', '\\.')}\\]:\\d+`));
  });

  // Last: it restarts Postfix with the other way to refuse denylisted clients.
  it('passes postscreen\'s 5xx greeting for a denylisted client ("drop") on as it is, not as a 4xx of its own', async () => {
    await behind.postfix.postconf(['-e', 'postscreen_denylist_action=drop']);
    await behind.postfix.restart();
    const result = await runSwaks({
      server: `127.0.0.1:${pony.port}`,
      from: 'a@spammer.test',
      to: MAILBOX,
      quitAfter: 'RCPT',
      extraArgs: ['--local-interface', DENYLISTED],
    });
    expect(result.transcript).toMatch(/MAIL FROM:<a@spammer\.test>\r?\n<\*\* +521 5\.3\.2 Service currently unavailable/);
    const other = await runSwaks({
      server: `127.0.0.1:${pony.port}`,
      from: 'a@sender.test',
      to: MAILBOX,
      quitAfter: 'RCPT',
      extraArgs: ['--local-interface', NEW_CLIENT],
    });
    expect(other.transcript).toMatch(/RCPT TO:<user@d\.test>\r?\n<- +250 2\.1\.5 Ok/);
  });
});
