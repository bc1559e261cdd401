/**
 * The Postfix snippets of deploy/postfix/, the very files users install, read for the tests and
 * the bench: a main.cf snippet as parameters, a master.cf snippet as its entries.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** deploy/postfix of the project, found from test/harness or from its build in dist/test/harness. */
const DEPLOY_POSTFIX = ((): string => {
  for (let dir = join(import.meta.dirname, '..', '..'); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'deploy', 'postfix'))) return join(dir, 'deploy', 'postfix');
  }
  throw new Error(`deploy/postfix: not found above ${import.meta.dirname}`);
})();

/** A main.cf snippet of deploy/postfix/ as parameters (default: the inbound one). */
export function mainCfSnippet(file = 'main.cf'): Record<string, string> {
  const parameters: Record<string, string> = {};
  for (const line of readFileSync(join(DEPLOY_POSTFIX, file), 'utf8').split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const match = /^([a-z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (match === null) throw new Error(`deploy/postfix/${file}: not a parameter line: ${line}`);
    parameters[match[1]!] = match[2]!;
  }
  return parameters;
}

/** A master.cf snippet of deploy/postfix/ without its comments. */
export function masterCfEntries(file: string): string {
  return readFileSync(join(DEPLOY_POSTFIX, file), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .join('\n');
}
