/**
 * Counts write system calls of every TCP and unix socket in this process: each _write or _writev
 * of a net.Socket is one (issue 17: each is a system call, and wakes the reading process).
 */
import { Socket } from 'node:net';

export function countSocketWrites(): { count: number; stop(): void } {
  const prototype = Socket.prototype as unknown as { _writeGeneric: (this: Socket, ...args: unknown[]) => unknown };
  const original = prototype._writeGeneric;
  const counter = {
    count: 0,
    stop: () => {
      prototype._writeGeneric = original;
    },
  };
  prototype._writeGeneric = function (this: Socket, ...args: unknown[]) {
    counter.count++;
    return original.apply(this, args);
  };
  return counter;
}
