import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createReadiness } from '../../src/daemon/readiness.js';
import { describeWith, executable } from '../harness/requirements.js';

/** A logger whose lines are kept, parsed. */
function capturingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }), lines };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blackpony-readiness-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readiness when telling the supervisor fails', () => {
  it('without NOTIFY_SOCKET runs no helper at all', async () => {
    const { logger, lines } = capturingLogger();
    const readiness = createReadiness({ logger, env: {}, notifyCommand: join(dir, 'no-such-helper') });
    await readiness.ready();
    await readiness.reloading();
    await readiness.stopping();
    expect(lines).toEqual([]);
  });

  it('a helper that cannot run is logged with the reason, and the daemon carries on', async () => {
    const { logger, lines } = capturingLogger();
    const readiness = createReadiness({ logger, env: { NOTIFY_SOCKET: join(dir, 'notify') }, notifyCommand: join(dir, 'no-such-helper') });
    await readiness.ready();
    expect(lines.map((line) => line.msg)).toEqual([
      `readiness: ${join(dir, 'no-such-helper')} could not tell systemd READY=1: spawn ${join(dir, 'no-such-helper')} ENOENT (it ships with systemd; the unit needs NotifyAccess=all)`,
    ]);
  });

  it('the ready file: a stale one goes at starting(), ready() writes the process id, stopping() removes it', async () => {
    const { logger, lines } = capturingLogger();
    const readyFile = join(dir, 'ready');
    await writeFile(readyFile, 'stale\n');
    const readiness = createReadiness({ logger, env: {}, readyFile });
    await readiness.starting();
    expect(existsSync(readyFile)).toBe(false);
    await readiness.ready();
    expect(await readFile(readyFile, 'utf8')).toBe(`${process.pid}\n`);
    await readiness.stopping();
    expect(existsSync(readyFile)).toBe(false);
    expect(lines).toEqual([]);
  });
});

describeWith([executable('systemd-notify', '/usr/bin/systemd-notify')], 'readiness through the real systemd-notify', () => {
  it('its failure (nobody listens on NOTIFY_SOCKET) is logged with its exit status', async () => {
    const { logger, lines } = capturingLogger();
    await createReadiness({ logger, env: { NOTIFY_SOCKET: join(dir, 'nobody-listens') } }).stopping();
    expect(String(lines[0]?.msg)).toMatch(/^readiness: systemd-notify could not tell systemd STOPPING=1: exit 1/);
  });
});
