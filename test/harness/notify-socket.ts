import { join } from 'node:path';
import { startProcess, type ManagedProcess } from './processes.js';
import { executable } from './requirements.js';
import { waitFor } from './wait.js';

/** Debian's python3 (python3-minimal), not a user's shim: it receives the datagrams Node cannot. */
export const PYTHON3 = executable('python3', '/usr/bin/python3');

/**
 * systemd's side of sd_notify(3): a unix datagram socket that prints each notification as a JSON
 * line, with whether each target accepted a connection at the moment the notification arrived.
 * The file descriptor of a BARRIER=1 is closed only after that, so the sender (systemd-notify) is
 * held until the targets were tried, as systemd holds it until it has acted on the message.
 */
const RECEIVER = `
import json, os, socket, sys
path, targets = sys.argv[1], sys.argv[2:]
def accepting(target):
    kind, _, where = target.partition(':')
    family = socket.AF_UNIX if kind == 'unix' else socket.AF_INET
    address = where if kind == 'unix' else (where.rsplit(':', 1)[0], int(where.rsplit(':', 1)[1]))
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.connect(address)
        return True
    except OSError:
        return False
    finally:
        probe.close()
receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
receiver.bind(path)
print(json.dumps({'bound': path}), flush=True)
while True:
    data, ancillary, _, _ = receiver.recvmsg(4096, socket.CMSG_SPACE(64 * 4))
    fds = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += [int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, len(payload) - len(payload) % 4, 4)]
    fields = data.decode().split('\\n')
    print(json.dumps({'fields': [f for f in fields if f], 'accepting': {t: accepting(t) for t in targets}}), flush=True)
    for fd in fds:
        os.close(fd)
`;

export interface Notification {
  /** The message's VARIABLE=VALUE lines. */
  fields: string[];
  /** Each target (`tcp:HOST:PORT` or `unix:PATH`): whether it accepted a connection when the message came. */
  accepting: Record<string, boolean>;
}

export interface NotifyReceiver {
  /** The NOTIFY_SOCKET to give the daemon. */
  readonly path: string;
  /** Every notification so far, barriers left out. */
  notifications(): Notification[];
  /** Waits until `count` notifications carry `field` (e.g. READY=1); returns them all. */
  waitFor(field: string, count?: number): Promise<Notification[]>;
  stop(): Promise<void>;
}

/** Starts a receiver on `dir`/notify, trying `targets` at each notification. */
export async function startNotifyReceiver(dir: string, targets: readonly string[]): Promise<NotifyReceiver> {
  const path = join(dir, 'notify');
  const child: ManagedProcess = await startProcess('NOTIFY_SOCKET receiver', '/usr/bin/python3', ['-c', RECEIVER, path, ...targets]);
  const lines = (): Array<Record<string, unknown>> =>
    child
      .stdout()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  await waitFor('NOTIFY_SOCKET receiver bound', () => (lines().some((line) => 'bound' in line) ? true : undefined), { diagnostics: () => child.output() });
  const notifications = (): Notification[] =>
    lines()
      .filter((line): line is Record<string, unknown> & Notification => Array.isArray(line.fields))
      .filter((line) => !line.fields.includes('BARRIER=1'));
  return {
    path,
    notifications,
    waitFor: (field, count = 1) =>
      waitFor(
        `${count} notification(s) with ${field}`,
        () => (notifications().filter((n) => n.fields.includes(field)).length >= count ? notifications() : undefined),
        {
          diagnostics: () => child.output(),
        },
      ),
    stop: async () => {
      await child.stop();
    },
  };
}
