/**
 * The npm package as a user installs it without a git checkout: `npm pack`, then
 * `npm install -g ./blackpony-X.tgz` into a temporary prefix, with no network and an empty npm
 * cache. The production dependencies travel inside the tarball (bundleDependencies), so the
 * install needs neither the registry nor the project's node_modules.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../src/version.js';
import { PROJECT_ROOT } from '../harness/cli.js';
import { waitBound } from '../harness/wait.js';

/** What the package may hold of the project's own files: the code that runs, its man pages and documents. */
const SHIPPED = /^(bin\/blackpony\.js|dist\/src\/.+\.js|dist\/man\/blackpony(\.yaml)?\.[58]|systemd\/.+|deploy\/.+|docs\/.+\.md|README\.md|package\.json)$/;

const manifest = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };

/** The top-level package a path under node_modules/ belongs to: `pino`, `@noble/curves`. */
function bundledPackage(path: string): string {
  const [, first = '', second = ''] = path.split('/');
  return first.startsWith('@') ? `${first}/${second}` : first;
}

function run(command: string, args: readonly string[], cwd: string) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: waitBound(170_000) });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

let dir: string;
let tarball: string;
let installed: ReturnType<typeof run>;

describe('the npm package', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'blackpony-npm-package-'));
    // --ignore-scripts: pack what the global setup built (npm run build); building again here
    // would rewrite dist/ under the other test files.
    const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], PROJECT_ROOT);
    expect(pack.status, pack.stderr).toBe(0);
    tarball = join(dir, (JSON.parse(pack.stdout) as [{ filename: string }])[0].filename);
    // --offline with an empty cache and an unreachable registry: nothing may come from elsewhere.
    installed = run(
      'npm',
      [
        'install',
        '-g',
        '--offline',
        '--cache',
        join(dir, 'cache'),
        '--registry',
        'http://127.0.0.1:9/',
        '--no-audit',
        '--no-fund',
        '--prefix',
        join(dir, 'prefix'),
        tarball,
      ],
      dir,
    );
  });

  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('holds only what runs: no sources, source maps, tests, benchmarks or scripts, and no build or test tool', () => {
    const listing = run('tar', ['-tzf', tarball], dir);
    expect(listing.status).toBe(0);
    const paths = listing.stdout
      .split('\n')
      .filter((line) => line !== '' && !line.endsWith('/'))
      .map((line) => line.replace(/^package\//, ''));
    const own = paths.filter((path) => !path.startsWith('node_modules/'));
    expect(own.filter((path) => !SHIPPED.test(path))).toEqual([]);
    expect(own).toContain('dist/man/blackpony.8');
    expect(own).toContain('dist/man/blackpony.yaml.5');
    expect(own).toContain('dist/src/cli/main.js');
    const bundled = new Set(paths.filter((path) => path.startsWith('node_modules/')).map(bundledPackage));
    for (const dependency of Object.keys(manifest.dependencies)) expect(bundled, dependency).toContain(dependency);
    // (A dev dependency may still be bundled as a production package's own: smtp-server needs nodemailer.)
    for (const tool of ['typescript', 'vitest', 'fast-check', 'rolldown']) expect(bundled, tool).not.toContain(tool);
  });

  it('installs globally with no network and an empty npm cache', () => {
    expect(installed.stderr).not.toMatch(/ERR!/);
    expect(installed.status).toBe(0);
    expect(existsSync(join(dir, 'prefix/bin/blackpony'))).toBe(true);
  });

  it('blackpony --version prints the version', () => {
    const version = run(join(dir, 'prefix/bin/blackpony'), ['--version'], dir);
    expect(version.stderr).toBe('');
    expect(version.stdout).toBe(`${VERSION}\n`);
  });

  it('blackpony demo delivers its three messages', () => {
    const demo = run(join(dir, 'prefix/bin/blackpony'), ['demo', '--dir', join(dir, 'demo')], dir);
    expect(demo.stderr).toBe('');
    expect(demo.stdout).toContain('All 3 messages arrived.');
    expect(demo.status).toBe(0);
  });

  it('puts the man pages where man(1) finds them under the prefix', () => {
    expect(readFileSync(join(dir, 'prefix/share/man/man8/blackpony.8'), 'utf8')).toMatch(/^\.TH BLACKPONY 8 /);
    expect(readFileSync(join(dir, 'prefix/share/man/man5/blackpony.yaml.5'), 'utf8')).toMatch(/^\.TH BLACKPONY\.YAML 5 /);
  });
});
