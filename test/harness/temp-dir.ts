import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const created = new Set<string>();

/**
 * A fresh directory under os.tmpdir() for one component. Mode 0755: Postfix daemons (user postfix)
 * and programs that drop to nobody must be able to traverse it.
 */
export async function makeTempDir(component: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `blackpony-${component}-`));
  created.add(dir);
  await chmod(dir, 0o755);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  created.delete(dir);
  await rm(dir, { recursive: true, force: true });
}

/** Removes every directory made by makeTempDir that is still there. */
export async function removeAllTempDirs(): Promise<void> {
  await Promise.all([...created].map(removeTempDir));
}
