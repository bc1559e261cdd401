/**
 * The import direction of DEVELOPERS.md, checked on every source file: cli -> daemon (and demo)
 * -> inbound / outbound -> xpony -> smtp -> crypto, never back, and never between inbound and
 * outbound. The files directly in src/ (log, version, dns) are shared and import no folder.
 * No two files import each other, however indirectly; a folder with an index.ts is entered
 * through it only.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', '..', 'src');
const LAYERS: Record<string, number> = { crypto: 0, smtp: 1, xpony: 2, inbound: 3, outbound: 3, daemon: 4, demo: 4, cli: 5 };

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

/** The folder under src/ a file belongs to; '' for the shared files directly in src/. */
function folderOf(file: string): string {
  const parts = relative(SRC, file).split('/');
  return parts.length === 1 ? '' : parts[0]!;
}

function localImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  // `from '...'`, a bare `import '...'` and `import('...')`: every way a module names another.
  return [...text.matchAll(/\b(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((m) => resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
}

describe('architecture', () => {
  const files = sourceFiles(SRC);

  it('knows every folder under src/', () => {
    expect([...new Set(files.map(folderOf))].filter((folder) => folder !== '' && !(folder in LAYERS))).toEqual([]);
  });

  it('imports flow one way: cli -> daemon, demo -> inbound, outbound -> xpony -> smtp -> crypto', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const from = folderOf(file);
      for (const target of localImports(file)) {
        const to = folderOf(target);
        const allowed = to === from || to === '' ? from !== '' || to === '' : from !== '' && LAYERS[to]! < LAYERS[from]!;
        if (!allowed) wrong.push(`${relative(SRC, file)} imports ${relative(SRC, target)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('has no import cycle between files', () => {
    const imports = new Map(files.map((file) => [file, localImports(file)]));
    const cycles: string[] = [];
    const done = new Set<string>();
    const visit = (file: string, path: string[]): void => {
      const seen = path.indexOf(file);
      if (seen >= 0) {
        cycles.push([...path.slice(seen), file].map((f) => relative(SRC, f)).join(' -> '));
        return;
      }
      if (done.has(file)) return;
      for (const target of imports.get(file) ?? []) visit(target, [...path, file]);
      done.add(file);
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('enters a folder with an index.ts through it only', () => {
    const wrong: string[] = [];
    for (const file of files) {
      for (const target of localImports(file)) {
        const folder = dirname(target);
        const inside = dirname(file) === folder || dirname(file).startsWith(`${folder}/`);
        if (!inside && !target.endsWith('/index.ts') && existsSync(join(folder, 'index.ts')))
          wrong.push(`${relative(SRC, file)} imports ${relative(SRC, target)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("reaches smtp-server's internals (its lib/ modules) from src/smtp/smtp-server-internals.ts only, types aside", () => {
    const owner = join(SRC, 'smtp', 'smtp-server-internals.ts');
    const reaching = files.filter((file) => file !== owner && /^import\s+(?!type\b)[^;]*from\s*'smtp-server\/lib\//m.test(readFileSync(file, 'utf8')));
    expect(reaching.map((file) => relative(SRC, file))).toEqual([]);
    expect(/^import\s+(?!type\b)[^;]*from\s*'smtp-server\/lib\//m.test(readFileSync(owner, 'utf8'))).toBe(true);
  });

  it('finds the imports it checks', () => {
    expect(localImports(join(SRC, 'inbound', 'relay-session.ts'))).toContain(join(SRC, 'xpony', 'index.ts'));
    expect(localImports(join(SRC, 'xpony', 'server.ts'))).toContain(join(SRC, 'xpony', 'server-connection.ts'));
  });
});
