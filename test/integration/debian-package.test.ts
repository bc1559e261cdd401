/**
 * The Debian package (scripts/build-deb.sh, `npm run deb`) installed into the real system with
 * dpkg -i, used as an administrator would, then purged: the system is left as it was found.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { VERSION } from '../../src/version.js';
import { PROJECT_ROOT } from '../harness/cli.js';
import { describeWith, executable, type Requirement } from '../harness/requirements.js';
import { waitBound } from '../harness/wait.js';

function run(command: string, args: readonly string[]) {
  const result = spawnSync(command, args, { cwd: dir, encoding: 'utf8', timeout: waitBound(300_000) });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A Debian package's status word ("installed", "config-files", ...), or null when dpkg has no record of it. */
function packageStatus(name: string): string | null {
  const query = spawnSync('dpkg-query', ['-W', '-f=${db:Status-Status}', name], { encoding: 'utf8' });
  return query.status === 0 && query.stdout !== 'not-installed' ? query.stdout : null;
}

const ROOT: Requirement = {
  name: 'root',
  check: () => (process.getuid?.() === 0 ? null : 'not running as root (dpkg -i installs into the system)'),
};

/** The package's Depends: nodejs must come from a Debian package, or dpkg -i refuses. */
const NODEJS_PACKAGE: Requirement = {
  name: 'nodejs (Debian package)',
  check: () => (packageStatus('nodejs') === 'installed' ? null : 'the Debian package nodejs is not installed (the .deb depends on it)'),
};

/** The test purges what it installed: never an administrator's own blackpony. */
const NOT_INSTALLED: Requirement = {
  name: 'no blackpony package installed',
  check: () =>
    packageStatus('blackpony') === null && !existsSync('/etc/blackpony')
      ? null
      : 'a blackpony package or /etc/blackpony is already on this system; the test would purge it',
};

/** The lines of /etc/passwd and /etc/group that name blackpony: what the purge must leave as found. */
function accountLines(): string[] {
  return ['/etc/passwd', '/etc/group'].flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('blackpony:')),
  );
}

const manifest = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };

let dir: string;
let deb: string;
let accountsBefore: string[];
let installed: ReturnType<typeof run>;

describeWith(
  [ROOT, executable('dpkg-deb', '/usr/bin/dpkg-deb'), executable('man (man-db)', '/usr/bin/man'), NODEJS_PACKAGE, NOT_INSTALLED],
  'the Debian package',
  () => {
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'blackpony-deb-'));
      accountsBefore = accountLines();
      // The build was made by the global setup (npm run build); npm run deb builds first, then this.
      const build = run('bash', [join(PROJECT_ROOT, 'scripts/build-deb.sh'), dir]);
      expect(build.stderr).toBe('');
      expect(build.status).toBe(0);
      deb = build.stdout.trim();
      installed = run('dpkg', ['-i', deb]);
    });

    afterAll(() => {
      if (packageStatus('blackpony') !== null) run('dpkg', ['--purge', 'blackpony']);
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    it('is named for its version and depends on nodejs 20.19 or later', () => {
      expect(deb).toBe(join(dir, `blackpony_${VERSION}_all.deb`));
      expect(run('dpkg-deb', ['-f', deb, 'Depends']).stdout).toMatch(/^nodejs \(>= 20\.19\)/);
    });

    it('installs with dpkg -i', () => {
      expect(installed.stderr).toBe('');
      expect(installed.status).toBe(0);
      expect(packageStatus('blackpony')).toBe('installed');
    });

    it('lays out the program, its production modules, the units, the man pages and a conffile', () => {
      expect(readFileSync('/lib/systemd/system/blackpony.service', 'utf8')).toBe(readFileSync(join(PROJECT_ROOT, 'systemd/blackpony.service'), 'utf8'));
      expect(readFileSync('/lib/systemd/system/blackpony.socket', 'utf8')).toBe(readFileSync(join(PROJECT_ROOT, 'systemd/blackpony.socket'), 'utf8'));
      for (const dependency of Object.keys(manifest.dependencies))
        expect(existsSync(`/usr/lib/blackpony/node_modules/${dependency}/package.json`), dependency).toBe(true);
      for (const absent of ['dist/test', 'dist/bench', 'dist/scripts', 'node_modules/typescript', 'node_modules/vitest'])
        expect(existsSync(`/usr/lib/blackpony/${absent}`), absent).toBe(false);
      expect(run('man', ['-w', '8', 'blackpony']).stdout.trim()).toBe('/usr/share/man/man8/blackpony.8.gz');
      expect(run('man', ['-w', '5', 'blackpony.yaml']).stdout.trim()).toBe('/usr/share/man/man5/blackpony.yaml.5.gz');
      expect(existsSync('/usr/share/doc/blackpony/systemd/README.md')).toBe(true);
      // README.md's Performance section refers to it for the measurements in full.
      expect(existsSync('/usr/share/doc/blackpony/PERFORMANCE.md')).toBe(true);
      expect(run('dpkg-query', ['-W', '-f=${Conffiles}', 'blackpony']).stdout).toMatch(/^ \/etc\/blackpony\/config\.yaml [0-9a-f]{32}$/);
    });

    it('has a system user blackpony and a key file only root may read', () => {
      expect(accountLines().some((line) => line.startsWith('blackpony:x:'))).toBe(true);
      const keys = statSync('/etc/blackpony/keys');
      expect(keys.mode & 0o777).toBe(0o600);
      expect(keys.uid).toBe(0);
    });

    it('blackpony --version prints the version', () => {
      const version = run('/usr/bin/blackpony', ['--version']);
      expect(version.stderr).toBe('');
      expect(version.stdout).toBe(`${VERSION}\n`);
    });

    it('blackpony check-config accepts the installed configuration with its key file and the systemd socket', () => {
      const check = run('/usr/bin/blackpony', ['check-config', '/etc/blackpony/config.yaml']);
      expect(check.stderr).toBe('');
      expect(check.stdout).toMatch(/^ok\n/);
      expect(check.stdout).toContain('inbound: listens on the systemd socket');
      expect(check.stdout).toContain('keys: /etc/blackpony/keys (fingerprint');
      expect(check.status).toBe(0);
    });

    it('purges without a trace: files, configuration, key file and the user it made', () => {
      const purge = run('dpkg', ['--purge', 'blackpony']);
      expect(purge.stderr).toBe('');
      expect(purge.status).toBe(0);
      expect(packageStatus('blackpony')).toBeNull();
      for (const path of [
        '/usr/lib/blackpony',
        '/usr/bin/blackpony',
        '/etc/blackpony',
        '/lib/systemd/system/blackpony.service',
        '/usr/share/man/man8/blackpony.8.gz',
      ]) {
        expect(existsSync(path), path).toBe(false);
      }
      expect(accountLines()).toEqual(accountsBefore);
    });
  },
);
