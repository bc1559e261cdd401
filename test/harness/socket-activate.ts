/**
 * A command under the real systemd-socket-activate, as blackpony.socket would start it: the tool
 * binds every `listens` address, then (non-accept mode) execs the command at the first connection
 * with the sockets as fds 3, 4, ... Resolves once every socket is bound: a client that connects
 * earlier is refused, so a test must not race the binding.
 */
import { startProcess, type ManagedProcess, type ProcessOptions } from './processes.js';
import { executable } from './requirements.js';
import { waitFor } from './wait.js';

const PATH = '/usr/bin/systemd-socket-activate';
export const SYSTEMD_SOCKET_ACTIVATE = executable('systemd-socket-activate', PATH);

export async function startSocketActivated(
  name: string,
  listens: readonly string[],
  command: readonly string[],
  options: ProcessOptions & { fdNames?: string } = {},
): Promise<ManagedProcess> {
  const { fdNames, ...processOptions } = options;
  const args = [...listens.flatMap((listen) => ['-l', listen]), ...(fdNames === undefined ? [] : [`--fdname=${fdNames}`]), ...command];
  const activator = await startProcess(name, PATH, args, processOptions);
  // It says "Listening on <address> as <fd>." for each socket once bound.
  await waitFor(
    `${name}: systemd-socket-activate listening on ${listens.join(', ')}`,
    () => (listens.every((listen) => activator.stderr().includes(`Listening on ${listen} as `)) ? true : undefined),
    { diagnostics: () => activator.output() },
  );
  return activator;
}
