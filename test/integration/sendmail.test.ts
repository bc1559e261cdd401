/**
 * Debian's sendmail 8.17 with blackpony, as the deploy guide (deploy/README.md, "Beside sendmail")
 * sets them up, each `blackpony run` from a configuration file (and blackpony's inbound side in
 * this process for the client identities the guide warns against).
 * As blackpony's smart-host client, with the guide's sendmail.mc lines and no
 * RELAY_MAILER_FLAGS `k`, on a host of the same name as blackpony's: the message goes through
 * blackpony outbound, an XPONY tunnel and blackpony inbound to a real Postfix, byte for byte.
 * Behind blackpony inbound (blackpony owns the port and relays each session command by command,
 * as the 1990s blackpony ran in front of sendmail): sendmail takes neither XCLIENT nor a PROXY
 * line, so with client_identity none it judges the address blackpony connects from. From
 * source_address 127.0.0.25 it delivers for its own domain and refuses to relay; from 127.0.0.1
 * (which the configuration refuses) it would relay for anyone. The default, XCLIENT, fails closed.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { identityToRecipient } from '../../src/crypto/age/index.js';
import { generateKeys } from '../../src/crypto/keyfile.js';
import { serializePonyRecord } from '../../src/crypto/pony-record.js';
import { createInboundServer, type InboundServer, type PostfixFailureEvent } from '../../src/inbound/inbound-server.js';
import type { ClientIdentity } from '../../src/inbound/relay-session.js';
import { startDaemon, type Daemon } from '../adversity/daemon.js';
import { startDns, type TestDns } from '../harness/dnsmasq.js';
import { freePort } from '../harness/ports.js';
import { describeWith, DNSMASQ, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { runSwaks } from '../harness/swaks.js';
import { guideSmartHostLines, M4_REQUIREMENT, SENDMAIL_REQUIREMENT, startSendmail, type SendmailInstance } from '../harness/sendmail.js';
import { loadScaled, waitFor } from '../harness/wait.js';
import { MAILBOX, startPostfixBehind, type PostfixBehind } from './inbound-fixtures.js';
import { expectByteForByte, messageOf, withId } from './legacy-mta-messages.js';
import { sharedMxPort } from './outbound-fixtures.js';

const SENDMAIL_ADDRESS = '127.0.0.10';
/** The MX of d.test (MAILBOX's domain): blackpony inbound in front of Postfix. */
const MX = { host: 'mx.d.test', address: '127.0.0.2' };
/** sendmail's host, and the blackpony beside it: one name, as on one machine. */
const SENDER_HOST = 'mail.sender.test';

describeWith(
  [ROOT, POSTFIX, DNSMASQ, M4_REQUIREMENT, SENDMAIL_REQUIREMENT],
  'sendmail as the smart-host client of blackpony outbound, as the deploy guide sets it up',
  () => {
    let dns: TestDns;
    let behind: PostfixBehind;
    let receiving: Daemon;
    let sending: Daemon;
    let sendmail: SendmailInstance;

    beforeAll(async () => {
      const keys = generateKeys();
      const mxPort = await sharedMxPort([MX.address]);
      const record = serializePonyRecord({
        noiseKeys: [keys.noise.publicKey],
        ageRecipient: identityToRecipient(keys.ageX25519Identity),
        policy: 'enforce',
        maxAge: 86_400,
      });
      dns = await startDns({
        mx: [{ domain: 'd.test', host: MX.host, preference: 10 }],
        a: [{ host: MX.host, address: MX.address }],
        txt: [{ name: '_pony.d.test', value: record }],
      });
      behind = await startPostfixBehind({ hostname: MX.host });
      receiving = await startDaemon({
        hostName: MX.host,
        keys,
        inbound: { listen: `${MX.address}:${mxPort}`, postfixPort: behind.listenerPort, dnsPort: dns.port },
      });
      // The guide's settings: protocol smtp, inbound off, a loopback listener.
      const outboundPort = await freePort();
      sending = await startDaemon({ hostName: SENDER_HOST, outbound: { port: outboundPort, protocol: 'smtp', dnsPort: dns.port, mxPort } });
      sendmail = await startSendmail({
        address: SENDMAIL_ADDRESS,
        hostName: SENDER_HOST,
        role: { kind: 'sender', relayTo: { host: '127.0.0.1', port: outboundPort } },
      });
    });

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
      const delivered = await waitFor(
        'the message in the Maildir behind blackpony',
        async () => withId(await behind.postfix.maildirMessages(MAILBOX), 'sendmail-smart-host')[0],
        {
          diagnostics: async () => (await sendmail.readLog()) + (await behind.postfix.readLog()),
        },
      );
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
      });
      expect(line).toMatchObject({ domain: 'd.test', mode: 'xpony', sealed: true, outcome: 'delivered', recipients: 1 });
    });
  },
);

describeWith(
  [ROOT, SWAKS, M4_REQUIREMENT, SENDMAIL_REQUIREMENT],
  'sendmail behind blackpony inbound (client_identity none), as the 1990s blackpony ran',
  () => {
    const SENDMAIL_MX = '127.0.0.11';
    /**
     * blackpony's address towards sendmail (inbound.source_address), named in sendmail's /etc/hosts
     * outside d.test: sendmail relays for clients whose name is in a relay domain, and without a
     * name it answers a relay attempt with a 450 (no PTR record) instead of a 550.
     */
    const LEG = { address: '127.0.0.25', name: 'blackpony-inbound.invalid' };
    const CLIENT = '127.0.0.7';
    let sendmail: SendmailInstance;
    let pony: Daemon;
    let ponyPort: number;

    beforeAll(async () => {
      sendmail = await startSendmail({
        address: SENDMAIL_MX,
        hostName: 'mx.d.test',
        hosts: { [LEG.address]: LEG.name },
        role: { kind: 'receiver', mailboxes: [MAILBOX] },
      });
      ponyPort = await freePort();
      pony = await startDaemon({
        hostName: 'mx.d.test',
        inbound: { listen: `127.0.0.1:${ponyPort}`, postfixHost: SENDMAIL_MX, postfixPort: sendmail.port, clientIdentity: 'none', sourceAddress: LEG.address },
      });
    });

    afterAll(async () => {
      await pony?.stop();
      await sendmail?.stop();
    });

    /** A plain SMTP client on its own address, as from the Internet. */
    function fromClient(port: number, to: string, more: { data?: string; quitAfter?: string } = {}) {
      return runSwaks({
        server: `127.0.0.1:${port}`,
        from: 'alice@sender.test',
        to,
        ehlo: 'client.sender.test',
        extraArgs: ['--local-interface', CLIENT],
        ...more,
      });
    }

    it("delivers a client's message to sendmail byte for byte; sendmail learns only blackpony's address, blackpony's trace header the client's", async () => {
      const message = messageOf('behind-sendmail', MAILBOX);
      const sent = await fromClient(ponyPort, MAILBOX, { data: message.replaceAll('\n', '\r\n') });
      expect(sent.exitCode, sent.transcript).toBe(0);
      expect(sent.transcript).toMatch(/<- {2}250 2\.0\.0 \w+ Message accepted for delivery/);
      const delivered = await waitFor("the message in sendmail's Maildir", async () => withId(await sendmail.maildirMessages(), 'behind-sendmail')[0], {
        diagnostics: () => sendmail.readLog(),
      });
      expectByteForByte(delivered.bytes, message);
      const text = delivered.bytes.toString('latin1');
      // sendmail's Received: the client's HELO, but blackpony's address where the client's should be.
      expect(text).toMatch(
        new RegExp(`^Received: from client\\.sender\\.test \\(${LEG.name.replaceAll('.', '\\.')} \\[${LEG.address.replaceAll('.', '\\.')}\\]\\)`, 'm'),
      );
      expect(text).not.toMatch(new RegExp(`^Received: .*\\[${CLIENT.replaceAll('.', '\\.')}\\]`, 'm'));
      // The only record of the real client: blackpony's trace header.
      expect(text).toMatch(new RegExp(`^\\s+client=\\[${CLIENT.replaceAll('.', '\\.')}\\]:\\d+; helo=client\\.sender\\.test;`, 'm'));
    });

    it("passes on sendmail's own relay refusal: from source_address it relays nothing for others", async () => {
      const sent = await fromClient(ponyPort, 'someone@elsewhere.test', { quitAfter: 'RCPT' });
      expect(sent.transcript).toMatch(/<\*\* +550 5\.7\.1 <someone@elsewhere\.test>\.\.\. Relaying denied/);
      expect(await sendmail.readLog()).toMatch(/>>> 550 5\.7\.1 <someone@elsewhere\.test>\.\.\. Relaying denied/);
    });

    /** blackpony's inbound side in this process, in front of sendmail, connecting from the system's choice (127.0.0.1). */
    async function inboundFromLoopback(clientIdentity: ClientIdentity, failures: PostfixFailureEvent[] = []): Promise<{ server: InboundServer; port: number }> {
      const server = createInboundServer({
        keys: generateKeys(),
        hostName: 'mx.d.test',
        clientIdentity,
        postfix: { host: SENDMAIL_MX, port: sendmail.port, timeoutMs: loadScaled(10_000) },
        onPostfixFailure: (failure) => failures.push(failure),
      });
      return { server, port: (await server.listen(0, '127.0.0.1')).port };
    }

    it('from 127.0.0.1, which the configuration refuses with client_identity none, sendmail would relay for anyone', async () => {
      // The relay session without the configuration's check: what that check is for.
      const { server, port } = await inboundFromLoopback('none');
      try {
        const sent = await fromClient(port, 'someone@elsewhere.test', { quitAfter: 'RCPT' });
        expect(sent.transcript).toMatch(/<- {2}250 2\.1\.5 <someone@elsewhere\.test>\.\.\. Recipient ok/);
      } finally {
        await server.close();
      }
    });

    it('the default, XCLIENT, fails closed: sendmail does not offer it, so the client gets a 4xx and nothing is relayed', async () => {
      const failures: PostfixFailureEvent[] = [];
      const { server, port } = await inboundFromLoopback('xclient', failures);
      try {
        const sent = await fromClient(port, 'someone@elsewhere.test', { quitAfter: 'RCPT' });
        expect(sent.transcript).toMatch(/<\*\* +451 4\.3\.0 mail system temporarily unavailable/);
        expect(failures).toContainEqual(expect.objectContaining({ kind: 'refused', reason: expect.stringMatching(/^XCLIENT not offered/) }));
      } finally {
        await server.close();
      }
    });

    it('client_identity proxy fails closed too: sendmail takes the PROXY line for an unknown command, and the client gets a 4xx', async () => {
      const failures: PostfixFailureEvent[] = [];
      const { server, port } = await inboundFromLoopback('proxy', failures);
      try {
        const sent = await fromClient(port, 'someone@elsewhere.test', { quitAfter: 'RCPT' });
        expect(sent.transcript).toMatch(/<\*\* +451 4\.3\.0 mail system temporarily unavailable/);
        expect(failures).toContainEqual(
          expect.objectContaining({ kind: 'refused', reason: expect.stringMatching(/^PROXY line not taken \(500 5\.5\.1 Command unrecognized/) }),
        );
      } finally {
        await server.close();
      }
    });

    it('sendmail 8.17 has no PROXY protocol support: it answers the line as an unknown command', async () => {
      const replies = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: SENDMAIL_MX, port: sendmail.port });
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        socket.once('connect', () => socket.end(`PROXY TCP4 192.0.2.7 ${SENDMAIL_MX} 40000 ${sendmail.port}\r\nQUIT\r\n`));
        socket.once('close', () => resolve(text));
        socket.once('error', reject);
      });
      expect(replies).toMatch(/^220 mx\.d\.test ESMTP Sendmail 8\.17/);
      expect(replies).toMatch(/^500 5\.5\.1 Command unrecognized: "PROXY TCP4 /m);
    });
  },
);
