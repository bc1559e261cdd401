/**
 * Whether dist/ was built from the sources as they are now. `npm run build` ends by writing the
 * hash of what it compiled into dist/build-stamp (`node dist/scripts/build-stamp.js`, from the
 * project root); the tests' global setup (test/harness/global-build.ts) builds again only when
 * the hash differs. So `npm test`, and CI after `npm ci` has built, compile the TypeScript once.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

/** tsconfig.json's include (what the build compiles and type-checks), its settings, and the dependencies' types. */
const INPUT_FOLDERS = ['src', 'scripts', 'bench', 'test'];
const INPUT_FILES = ['tsconfig.json', 'vitest.config.ts', 'package.json', 'package-lock.json'];
const STAMP = join('dist', 'build-stamp');

/** SHA-256 over the path and content of every TypeScript file the build reads under `root`. */
export function buildInputsHash(root: string): string {
  const hash = createHash('sha256');
  const files = [...INPUT_FOLDERS.flatMap((folder) => typeScriptFiles(join(root, folder))), ...INPUT_FILES.map((file) => join(root, file))];
  for (const file of files.filter((file) => existsSync(file)).sort()) {
    const content = readFileSync(file);
    hash.update(`${relative(root, file)}\0${content.length}\0`).update(content);
  }
  return hash.digest('hex');
}

/** True when dist/ under `root` holds a complete build of the current sources. */
export function builtFromCurrentSources(root: string): boolean {
  const stamp = join(root, STAMP);
  return existsSync(stamp) && readFileSync(stamp, 'utf8') === buildInputsHash(root);
}

function typeScriptFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? typeScriptFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

// Run as the build's last step: the stamp exists only once every earlier step has succeeded.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(join(process.cwd(), STAMP), buildInputsHash(process.cwd()));
}
