/**
 * The Node options the systemd unit runs the daemon with (its Environment=NODE_OPTIONS= line), so
 * that memory measured by tests and the bench is memory as deployed.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

const UNIT_PATH = join('systemd', 'blackpony.service');

/** The unit file, found upwards from here: this file runs from test/harness/ and, in the bench, from dist/test/harness/. */
function unitFile(): string {
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, UNIT_PATH))) return join(dir, UNIT_PATH);
    if (dirname(dir) === dir) throw new Error(`${UNIT_PATH} not found above ${import.meta.dirname}`);
  }
}

async function deployedNodeOptions(): Promise<string> {
  const unit = unitFile();
  const line = /^Environment=NODE_OPTIONS=(.*)$/m.exec(await readFile(unit, 'utf8'));
  if (line === null) throw new Error(`${unit}: no Environment=NODE_OPTIONS= line`);
  return line[1]!;
}

/** This process's environment with the unit's NODE_OPTIONS, for a daemon started by a test. */
export async function deployedEnvironment(): Promise<NodeJS.ProcessEnv> {
  return { ...process.env, NODE_OPTIONS: await deployedNodeOptions() };
}
