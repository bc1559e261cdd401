import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { stopAll } from '../harness/cleanup.js';
import { startDns } from '../harness/dnsmasq.js';
import { ComponentStartError, HarnessUsageError } from '../harness/errors.js';
import { freePort } from '../harness/ports.js';
import { startPostfix } from '../harness/postfix.js';
import { runningProcessCount } from '../harness/processes.js';
import { DNSMASQ, POSTFIX, ROOT, SMTP_SINK, SMTP_SOURCE, SWAKS, describeWith } from '../harness/requirements.js';
import { readSmtpGreeting } from '../harness/smtp-greeting.js';
import { startSmtpSink } from '../harness/smtp-sink.js';
import { runSmtpSource } from '../harness/smtp-source.js';
import { runSwaks } from '../harness/swaks.js';

describeWith([ROOT, POSTFIX], 'harness: Postfix instances', () => {
  afterAll(stopAll);

  it('rejects a broken master.cf with the error text Postfix printed', async () => {
    const attempt = startPostfix({ masterCf: ['bogus inet x - n - - smtpd'] });
    await expect(attempt).rejects.toThrow(ComponentStartError);
    await expect(attempt).rejects.toThrow('postconf: fatal: invalid private field "x" in "bogus inet x - n - - smtpd"');
    expect(runningProcessCount()).toBe(0);
  });

  it('rejects when master exits at startup (its extra listener port is taken) and leaves nothing running', async () => {
    const busy = await listeningServer();
    try {
      const attempt = startPostfix({ masterCf: [`127.0.0.1:${port(busy)} inet n - n - - smtpd`] });
      await expect(attempt).rejects.toThrow('postfix: master exited ({"code":1,"signal":null}) before 127.0.0.1:');
      await expect(attempt).rejects.toThrow(`(in use by another process: 127.0.0.1:${port(busy)})`);
      expect(runningProcessCount()).toBe(0);
    } finally {
      busy.close();
    }
  });

  it('runs two instances at once, each with its own port, directory and hostname', async () => {
    const [one, two] = await Promise.all([startPostfix({ hostname: 'one.test' }), startPostfix({ hostname: 'two.test' })]);
    expect(one.port).not.toBe(two.port);
    expect(one.queueDir).not.toBe(two.queueDir);
    expect(await readSmtpGreeting(one.port)).toMatch(/^220 one\.test ESMTP/);
    expect(await readSmtpGreeting(two.port)).toMatch(/^220 two\.test ESMTP/);
    expect(await one.postconf(['-h', 'syslog_name'])).not.toBe(await two.postconf(['-h', 'syslog_name']));

    const masterPid = one.masterPid!;
    await one.stop();
    expect(() => process.kill(masterPid, 0)).toThrow(/ESRCH/);
    expect(existsSync(one.dir)).toBe(false);
    await expect(readSmtpGreeting(one.port)).rejects.toThrow(/ECONNREFUSED/);
    expect(await readSmtpGreeting(two.port)).toMatch(/^220 two\.test ESMTP/);
    await two.stop();
  });

  it('restarts with a configuration changed through postconf', async () => {
    const postfix = await startPostfix({ hostname: 'before.test' });
    await postfix.postconf(['-e', 'smtpd_banner = $myhostname ESMTP restarted']);
    await postfix.restart();
    expect(await readSmtpGreeting(postfix.port)).toBe('220 before.test ESMTP restarted');
    await postfix.stop();
  });
});

describeWith([ROOT, POSTFIX, SWAKS, SMTP_SINK], 'harness: Postfix queue, defer and flush', () => {
  afterAll(stopAll);

  it('defers while the relayhost is down and delivers on flush once it is up', async () => {
    const relayPort = await freePort();
    const postfix = await startPostfix({ hostname: 'a.test', relayhost: `[127.0.0.1]:${relayPort}` });
    const swaks = await runSwaks({ server: `127.0.0.1:${postfix.port}`, from: 'sender@a.test', to: 'someone@elsewhere.test', body: 'queued' });
    expect(swaks.exitCode, swaks.transcript).toBe(0);

    // Deferred at least once: with the harness's short retry times the message may already be
    // back in the incoming or active queue for its next try when the queue is listed.
    const [deferred] = await postfix.waitForQueue('has the message deferred', (queue) => queue[0]?.recipients[0]?.delayReason !== undefined);
    expect(deferred?.recipients).toEqual([{ address: 'someone@elsewhere.test', delayReason: expect.stringMatching(/Connection refused/) }]);

    const sink = await startSmtpSink({ port: relayPort });
    await postfix.flush();
    expect(await sink.waitForMessages(1)).toBe(1);
    expect(await postfix.waitForQueue('is empty', (queue) => queue.length === 0)).toEqual([]);
    await postfix.stop();
    await sink.stop();
  });
});

describeWith([SWAKS], 'harness: swaks', () => {
  it('refuses message data that swaks would rewrite instead of sending it altered', async () => {
    const send = (data: string) => runSwaks({ server: '127.0.0.1:1', from: 'a@a.test', to: 'b@b.test', data });
    await expect(send('Subject: %DATE%\n\nbody\n')).rejects.toThrow('swaks data: contains "%DATE%"');
    await expect(send('Subject: x\n\nC:\\new\n')).rejects.toThrow('swaks data: contains "\\\\n"');
    await expect(send('Subject: x\n\nbody\n.\n')).rejects.toThrow(HarnessUsageError);
  });
});

describeWith([ROOT, DNSMASQ], 'harness: test DNS (dnsmasq)', () => {
  afterAll(stopAll);

  it('serves MX, A, AAAA and a 600-byte TXT byte for byte, and new records after restart', async () => {
    const longTxt = Array.from({ length: 600 }, (_, index) => 'v=pony1; k="\\ab'[index % 15]).join('');
    const dns = await startDns({
      mx: [
        { domain: 'd.test', host: 'mx1.d.test', preference: 10 },
        { domain: 'd.test', host: 'mx2.d.test', preference: 20 },
      ],
      a: [{ host: 'mx1.d.test', address: '127.0.0.1' }],
      aaaa: [{ host: 'mx1.d.test', address: '::1' }],
      txt: [{ name: '_pony.d.test', value: longTxt }],
    });
    const resolver = dns.resolver();
    expect((await resolver.resolveMx('d.test')).sort((a, b) => a.priority - b.priority)).toEqual([
      { exchange: 'mx1.d.test', priority: 10 },
      { exchange: 'mx2.d.test', priority: 20 },
    ]);
    expect(await resolver.resolve4('mx1.d.test')).toEqual(['127.0.0.1']);
    expect(await resolver.resolve6('mx1.d.test')).toEqual(['::1']);
    const txt = await resolver.resolveTxt('_pony.d.test');
    expect(txt).toHaveLength(1);
    expect(txt[0]!.length).toBeGreaterThan(1); // split into <= 255-byte strings on the wire
    expect(txt[0]!.join('')).toBe(longTxt);
    await expect(resolver.resolve4('unknown.d.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });

    await expect(dns.restart({ txt: [{ name: 'x.d.test', value: 'a,b' }] })).rejects.toThrow(HarnessUsageError);
    expect(await resolver.resolve4('mx1.d.test')).toEqual(['127.0.0.1']); // still serving the old records

    await dns.restart({ a: [{ host: 'mx1.d.test', address: '127.0.0.2' }] });
    expect(await resolver.resolve4('mx1.d.test')).toEqual(['127.0.0.2']);
    await expect(resolver.resolveTxt('_pony.d.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await dns.stop();
  });
});

describeWith([ROOT, SMTP_SINK, SMTP_SOURCE], 'harness: smtp-source -> smtp-sink', () => {
  afterAll(stopAll);

  it('counts every message smtp-source sends', async () => {
    const sink = await startSmtpSink();
    const source = await runSmtpSource({ port: sink.port, sessions: 4, messages: 200, size: 4096 });
    expect(source.exitCode, source.stderr).toBe(0);
    expect(await sink.waitForMessages(200)).toBe(200);
    await sink.stop();
  });

  it('saves each message with its envelope', async () => {
    const sink = await startSmtpSink({ save: true });
    const source = await runSmtpSource({ port: sink.port, messages: 3, size: 2000, reuse: true, from: 'a@s.test', to: 'b@s.test' });
    expect(source.exitCode, source.stderr).toBe(0);
    await sink.waitForMessages(3);
    const saved = await sink.savedMessages();
    expect(saved).toHaveLength(3);
    for (const message of saved) {
      expect(message.mailFrom).toBe('<a@s.test>');
      expect(message.rcptTo).toEqual(['<b@s.test>']);
      expect(message.message.toString('latin1')).toMatch(/^From: <a@s\.test>\n/);
    }
    await sink.stop();
  });
});

async function listeningServer(): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function port(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('test server has no TCP port');
  return address.port;
}
