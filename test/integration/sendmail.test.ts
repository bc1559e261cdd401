/**
 * Debian's sendmail 8.17 with blackpony, as the deploy guide (deploy/README.md, "Beside sendmail")
 * sets them up, each `blackpony run` from a configuration file.
 * As blackpony's smart-host client, with the guide's sendmail.mc lines and no
 * RELAY_MAILER_FLAGS `k`, on a host of the same name as blackpony's: the message goes through
 * blackpony outbound, an XPONY tunnel and blackpony inbound to a real Postfix, byte for byte.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { identityToRecipient } from '../../src/crypto/age/index.js';
import { generateKeys } from '../../src/crypto/keyfile.js';
import { serializePonyRecord } from '../../src/crypto/pony-record.js';
import { startDaemon, type Daemon } from '../adversity/daemon.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { freePort } from '../harness/ports.js';
import { describeWith, DNSMASQ, POSTFIX, ROOT } from '../harness/requirements.js';
import { guideSmartHostLines, M4_REQUIREMENT, SENDMAIL_REQUIREMENT, startSendmail, type SendmailInstance } from '../harness/sendmail.js';
import { waitFor } from '../harness/wait.js';
import { MAILBOX, startPostfixBehind, type PostfixBehind } from './inbound-fixtures.js';
import { expectByteForByte, messageOf, withId } from './legacy-mta-messages.js';
import { sharedMxPort } from './outbound-fixtures.js';

const SENDMAIL_ADDRESS = '127.0.0.10';
/** The MX of d.test (MAILBOX's domain): blackpony inbound in front of Postfix. */
const MX = { host: 'mx.d.test', address: '127.0.0.2' };
/** sendmail's host, and the blackpony beside it: one name, as on one machine. */
const SENDER_HOST = 'mail.sender.test';

describeWith([ROOT, POSTFIX, DNSMASQ, M4_REQUIREMENT, SENDMAIL_REQUIREMENT], 'sendmail as the smart-host client of blackpony outbound, as the deploy guide sets it up', () => {
  let dns: TestDns;
  let behind: PostfixBehind;
  let receiving: Daemon;
  let sending: Daemon;
  let sendmail: SendmailInstance;

  beforeAll(async () => {
    const keys = generateKeys();
    const mxPort = await sharedMxPort([MX.address]);
    const record = serializePonyRecord({ noiseKeys: [keys.noise.publicKey], ageRecipient: identityToRecipient(keys.ageX25519Identity), policy: 'enforce', maxAge: 86_400 });
    dns = await startDns({ mx: [{ domain: 'd.test', host: MX.host, preference: 10 }], a: [{ host: MX.host, address: MX.address }], txt: [{ name: '_pony.d.test', value: record }] });
    behind = await startPostfixBehind({ hostname: MX.host });
    receiving = await startDaemon({ hostName: MX.host, keys, inbound: { listen: `${MX.address}:${mxPort}`, postfixPort: behind.listenerPort, dnsPort: dns.port } });
    // The guide's settings: protocol smtp, inbound off, a loopback listener.
    const outboundPort = await freePort();
    sending = await startDaemon({ hostName: SENDER_HOST, outbound: { port: outboundPort, protocol: 'smtp', dnsPort: dns.port, mxPort } });
    sendmail = await startSendmail({ address: SENDMAIL_ADDRESS, hostName: SENDER_HOST, role: { kind: 'sender', relayTo: { host: '127.0.0.1', port: outboundPort } } });
  }, 120_000);

  afterAll(async () => {
    await sendmail?.stop();
    await sending?.stop();
    await receiving?.stop();
    await behind?.postfix.stop();
    await dns?.stop();
  });

  it("the guide's lines need no RELAY_MAILER_FLAGS k: blackpony greets with a name that is not the host's own", () => {
    expect(guideSmartHostLines().join('\n')).not.toMatch(/RELAY_MAILER_FLAGS/);
  });

  it('delivers a submitted message through XPONY to Postfix behind blackpony inbound, byte for byte, on the first attempt', async () => {
    const message = messageOf('sendmail-smart-host', MAILBOX);
    const submitted = await sendmail.submit(message, 'alice@sender.test', [MAILBOX]);
    expect(submitted.exitCode, submitted.stdout + submitted.stderr + (await sendmail.readLog())).toBe(0);
    const delivered = await waitFor('the message in the Maildir behind blackpony', async () => withId(await behind.postfix.maildirMessages(MAILBOX), 'sendmail-smart-host')[0], {
      timeoutMs: 30_000,
      diagnostics: async () => (await sendmail.readLog()) + (await behind.postfix.readLog()),
    });
    expectByteForByte(delivered.bytes, message);
    expect(delivered.bytes.toString('latin1')).toMatch(/^X-Pony-Trace: .*via=xpony.*sealed=yes/m);
    const trace = await sendmail.readLog();
    // sendmail met blackpony's listener name, not its own, and blackpony's 250 came after Postfix's.
    expect(trace).toMatch(new RegExp(`<<< 220 blackpony\\.${SENDER_HOST.replaceAll('.', '\\.')} `));
    expect(trace).not.toMatch(/5\.3\.5|loops back/);
    expect(trace).toMatch(/<<< 250 2\.0\.0 .*queued as/);
    const [line] = await waitFor('the delivery log line', () => {
      const lines = sending.log('delivery delivered: d.test via xpony');
      return lines.length > 0 ? lines : undefined;
    }, { timeoutMs: 15_000 });
    expect(line).toMatchObject({ domain: 'd.test', mode: 'xpony', sealed: true, outcome: 'delivered', recipients: 1 });
  }, 60_000);
});
