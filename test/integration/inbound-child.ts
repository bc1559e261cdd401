/**
 * blackpony's inbound server alone in a process, so a test can measure its own memory or pass it
 * systemd's sockets. Usage: node inbound-child.mjs <postfix-port> [systemd]; prints {"port": N}
 * (or {"addresses": [...]} with systemd) once listening; runs until killed.
 */
import { generateKeys } from '../../src/crypto/keyfile.js';
import { listen } from '../../src/daemon/listen.js';
import { createInboundServer } from '../../src/inbound/inbound-server.js';

const postfixPort = Number(process.argv[2]);
const inbound = createInboundServer({ keys: generateKeys(), hostName: 'mx.blackpony.test', postfix: { host: '127.0.0.1', port: postfixPort } });
if (process.argv[3] === 'systemd') {
  const listening = await listen(inbound, 'systemd');
  process.stdout.write(`${JSON.stringify({ addresses: listening.addresses })}\n`);
} else {
  const address = await inbound.listen(0, '127.0.0.1');
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
}
process.on('SIGTERM', () => void inbound.close().then(() => process.exit(0)));
