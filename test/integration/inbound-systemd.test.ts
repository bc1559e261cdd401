/**
 * Under systemd socket activation the inbound server still asks Postfix what to advertise
 * (SIZE etc.) before it takes the first client from the passed socket.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../harness/ports.js';
import type { ManagedProcess } from '../harness/processes.js';
import { describeWith, POSTFIX, ROOT, SWAKS } from '../harness/requirements.js';
import { startSocketActivated, SYSTEMD_SOCKET_ACTIVATE } from '../harness/socket-activate.js';
import { runSwaks } from '../harness/swaks.js';
import { makeTempDir, removeTempDir } from '../harness/temp-dir.js';
import { bundleTypeScript } from '../harness/typescript-child.js';
import { MAILBOX, startPostfixBehind, type PostfixBehind } from './inbound-fixtures.js';

describeWith([ROOT, POSTFIX, SWAKS, SYSTEMD_SOCKET_ACTIVATE], 'inbound under systemd socket activation', () => {
  let behind: PostfixBehind;
  let child: ManagedProcess;
  let bundleDir: string;
  let port: number;

  beforeAll(async () => {
    behind = await startPostfixBehind({ mainCf: { message_size_limit: '123456' } });
    bundleDir = await makeTempDir('inbound-systemd');
    const bundle = await bundleTypeScript('test/integration/inbound-child.ts', bundleDir);
    port = await freePort();
    // Non-accept mode: the child starts at the first connection and gets the listening socket as fd 3.
    child = await startSocketActivated(
      'blackpony inbound (socket-activated)',
      [`127.0.0.1:${port}`],
      [process.execPath, bundle, String(behind.listenerPort), 'systemd'],
    );
  });
  afterAll(async () => {
    await child?.stop();
    if (bundleDir !== undefined) await removeTempDir(bundleDir);
    await behind?.postfix.stop();
  });

  it("advertises Postfix's SIZE to the very first client", async () => {
    const ehlo = await runSwaks({ server: `127.0.0.1:${port}`, from: 'a@sender.test', to: MAILBOX, quitAfter: 'EHLO' });
    expect(ehlo.transcript, child.output()).toMatch(/<- {2}250-SIZE 123456\r?\n/);
    expect(child.output()).toContain(`{"addresses":["127.0.0.1:${port}"]}`);
  });
});
