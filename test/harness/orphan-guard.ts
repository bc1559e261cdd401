import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';

/**
 * A small shell that outlives this process only long enough to kill the process groups we
 * started: it reads "+PGID" / "-PGID" lines on stdin, and when stdin closes (this process ended,
 * even by SIGKILL, so no exit handler ran) it SIGKILLs every group still listed.
 */
const GUARD_SCRIPT = `
trap '' HUP INT TERM
groups=' '
while IFS= read -r line; do
  case "$line" in
    +*) groups="$groups\${line#+} " ;;
    -*) groups=$(printf '%s' "$groups" | sed "s/ \${line#-} / /") ;;
  esac
done
for group in $groups; do kill -KILL "-$group" 2>/dev/null; done
`;

let guard: ChildProcess | undefined;

export function guardProcessGroup(pgid: number): void {
  guardProcess().stdin?.write(`+${pgid}\n`);
}

export function releaseProcessGroup(pgid: number): void {
  guard?.stdin?.write(`-${pgid}\n`);
}

function guardProcess(): ChildProcess {
  if (guard === undefined) {
    guard = spawn('/bin/sh', ['-c', GUARD_SCRIPT], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    // The guard must never keep this process alive, nor crash it if it is gone.
    guard.unref();
    (guard.stdin as Socket | null)?.unref();
    guard.stdin?.on('error', () => undefined);
    guard.on('error', () => undefined);
  }
  return guard;
}
