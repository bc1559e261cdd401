/**
 * The import direction of DEVELOPERS.md, checked on every source file: cli -> daemon (and demo)
 * -> inbound / outbound -> protocol -> crypto, never back, and never between inbound and
 * outbound. The files directly in src/ (log, version, dns) are shared and import no folder.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', '..', 'src');
const LAYERS: Record<string, number> = { crypto: 0, protocol: 1, inbound: 2, outbound: 2, daemon: 3, demo: 3, cli: 4 };

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

  it('imports flow one way: cli -> daemon, demo -> inbound, outbound -> protocol -> crypto', () => {
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

  it('finds the imports it checks', () => {
    expect(localImports(join(SRC, 'inbound', 'relay-session.ts'))).toContain(join(SRC, 'protocol', 'sealed-message.ts'));
  });
});
