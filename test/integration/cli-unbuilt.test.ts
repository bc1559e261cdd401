/** `bin/blackpony.js` in a checkout where `npm ci` never ran: one line saying what to do, no stack. */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliWorkDir, PROJECT_ROOT } from '../harness/cli.js';

const checkout = cliWorkDir('cli-unbuilt');

afterAll(() => rmSync(checkout, { recursive: true, force: true }));

describe('blackpony without dist/', () => {
  it('says it is not built and to run npm ci, in one line, exit 1', () => {
    mkdirSync(join(checkout, 'bin'));
    copyFileSync(join(PROJECT_ROOT, 'bin/blackpony.js'), join(checkout, 'bin/blackpony.js'));
    const run = spawnSync(process.execPath, [join(checkout, 'bin/blackpony.js'), '--version'], { encoding: 'utf8' });
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`blackpony: not built or not installed (${join(checkout, 'dist/src/cli/main.js')} is missing): run \`npm ci\` in ${checkout}/\n`);
    expect(run.status).toBe(1);
  });
});
