/**
 * Where the outbound side listens for Postfix: a loopback address, a unix socket file
 * (socket-file.ts), or the socket systemd passes named "outbound" (blackpony-outbound.socket).
 * It relays to anywhere, so whoever can connect could relay: a passed socket must be loopback, or
 * a unix socket other users cannot connect to (listen.ts).
 */
import type { OutboundServer } from '../outbound/outbound-server.js';
import type { Config } from './config.js';
import { formatHostPort, type Endpoint } from './config-values.js';
import { OPEN_RELAY } from './config-schema.js';
import { listenOnNamedSocket, ListenError, SOCKET_NAMES, type LoopbackLeg } from './listen.js';
import { listenOnSocketFile } from './socket-file.js';
import { errorMessage } from '../error-message.js';

const SETTING = 'outbound.listen';
/** The socket systemd passes for outbound.listen "systemd". */
export const OUTBOUND_LEG: LoopbackLeg = { setting: SETTING, name: SOCKET_NAMES.outbound, why: OPEN_RELAY };

/** Makes the outbound server listen as configured; returns where it listens. */
export async function listenOutbound(server: OutboundServer, outbound: Config['outbound']): Promise<Endpoint> {
  const target = outbound.listen;
  if (target === 'systemd') return listenOnNamedSocket(server.server.server, OUTBOUND_LEG);
  if ('path' in target) {
    await listenOnSocketFile(server.server.server, target.path, { mode: outbound.listenMode, group: outbound.listenGroup }, 'outbound');
    return target;
  }
  try {
    const address = await server.listen(target.port, target.host);
    return { host: address.address, port: address.port };
  } catch (error) {
    throw new ListenError(`${SETTING}: ${formatHostPort(target)}: ${errorMessage(error)}`);
  }
}
