/** The global setup's test for a stale dist/ (scripts/build-stamp.ts): any change to what the build reads makes it build again. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildInputsHash, builtFromCurrentSources } from '../../scripts/build-stamp.js';

describe('build stamp', () => {
  let root: string;
  const write = (path: string, text: string): void => {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  const stampNow = (): void => write('dist/build-stamp', buildInputsHash(root));

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'blackpony-build-stamp-'));
    write('src/a.ts', 'export const a = 1;\n');
    write('test/unit/a.test.ts', 'import "../../src/a.js";\n');
    write('tsconfig.json', '{}\n');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('is fresh right after a build, and without a stamp is not', () => {
    expect(builtFromCurrentSources(root)).toBe(false);
    stampNow();
    expect(builtFromCurrentSources(root)).toBe(true);
  });

  it.each([
    ['a source changed', () => write('src/a.ts', 'export const a = 2;\n')],
    ['a source added', () => write('src/deep/b.ts', 'export const b = 1;\n')],
    ['a source removed', () => rmSync(join(root, 'test/unit/a.test.ts'))],
    ['a file renamed', () => (rmSync(join(root, 'src/a.ts')), write('src/b.ts', 'export const a = 1;\n'))],
    ['the compiler settings changed', () => write('tsconfig.json', '{"compilerOptions": {}}\n')],
    ['a dependency changed', () => write('package-lock.json', '{}\n')],
  ])('is stale once %s', (_, change) => {
    stampNow();
    change();
    expect(builtFromCurrentSources(root)).toBe(false);
  });

  it('stays fresh when only files the build does not read change', () => {
    stampNow();
    write('README.md', 'words\n');
    write('test/fuzz/corpus/age-header/x', 'bytes');
    write('dist/src/a.js', 'export const a = 1;\n');
    expect(builtFromCurrentSources(root)).toBe(true);
  });
});
