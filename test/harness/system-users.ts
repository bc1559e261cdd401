import { readFileSync } from 'node:fs';
import { runCommand } from './command.js';
import { CommandFailedError } from './errors.js';

/** A system user's uid and primary gid, from /etc/passwd. */
export function systemUser(name: string): { uid: number; gid: number } {
  const fields = passwdEntry(name);
  const [uid, gid] = [Number(fields?.[2]), Number(fields?.[3])];
  if (fields === undefined || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error(`/etc/passwd: no entry with numeric uid and gid for "${name}"`);
  }
  return { uid, gid };
}

/** A group's gid, from /etc/group. */
export function systemGroup(name: string): number {
  const gid = Number(
    readFileSync('/etc/group', 'utf8')
      .split('\n')
      .map((line) => line.split(':'))
      .find((candidate) => candidate[0] === name)?.[2],
  );
  if (!Number.isInteger(gid)) throw new Error(`/etc/group: no entry with a numeric gid for "${name}"`);
  return gid;
}

/**
 * A system user without a home or login shell, in exactly these supplementary groups: a local
 * user for tests that check who may reach a socket. Made once (useradd), kept for later runs.
 */
export async function ensureSystemUser(name: string, groups: readonly string[] = []): Promise<{ uid: number; gid: number }> {
  const [command, args] =
    passwdEntry(name) === undefined
      ? [
          '/usr/sbin/useradd',
          [
            '--system',
            '--no-create-home',
            '--shell',
            '/usr/sbin/nologin',
            '--user-group',
            ...(groups.length === 0 ? [] : ['--groups', groups.join(',')]),
            name,
          ],
        ]
      : ['/usr/sbin/usermod', ['--groups', groups.join(','), name]];
  const result = await runCommand(command, args);
  if (result.exitCode !== 0) throw new CommandFailedError(`${command} ${args.join(' ')}`, result.exitCode, result.stderr + result.stdout);
  return systemUser(name);
}

function passwdEntry(name: string): string[] | undefined {
  return readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((line) => line.split(':'))
    .find((candidate) => candidate[0] === name);
}
