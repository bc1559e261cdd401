import { join, resolve } from 'node:path';
import { runCommand } from './command.js';

const PROJECT = resolve(import.meta.dirname, '../..');

/**
 * Node 20 runs no TypeScript, so a test that needs a child process of its own (a daemon whose RSS
 * is measured, a second writer) bundles the child's entry point and what it imports into one ES
 * module file with rolldown (a pinned devDependency) and runs that with node.
 */
export async function bundleTypeScript(entry: string, outDir: string): Promise<string> {
  const bundle = join(outDir, entry.replace(/^.*\//, '').replace(/\.ts$/, '.mjs'));
  const built = await runCommand(
    join(PROJECT, 'node_modules/.bin/rolldown'),
    [resolve(PROJECT, entry), '--platform', 'node', '--format', 'esm', '--file', bundle],
    { cwd: PROJECT },
  );
  if (built.exitCode !== 0) throw new Error(`rolldown ${entry}: ${built.stdout}${built.stderr}`);
  return bundle;
}
