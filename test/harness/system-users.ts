import { readFileSync } from 'node:fs';

/** A system user's uid and primary gid, from /etc/passwd. */
export function systemUser(name: string): { uid: number; gid: number } {
  const fields = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((line) => line.split(':'))
    .find((candidate) => candidate[0] === name);
  const [uid, gid] = [Number(fields?.[2]), Number(fields?.[3])];
  if (fields === undefined || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error(`/etc/passwd: no entry with numeric uid and gid for "${name}"`);
  }
  return { uid, gid };
}
