/**
 * blackpony's inbound server alone in a process, so a test can measure its own memory.
 * Usage: node inbound-child.mjs <postfix-port>; prints {"port": N} once listening; runs until killed.
 */
import { generateKeys } from '../../src/crypto/keyfile.js';
import { createInboundServer } from '../../src/inbound/inbound-server.js';

const postfixPort = Number(process.argv[2]);
const inbound = createInboundServer({ keys: generateKeys(), hostName: 'mx.blackpony.test', postfix: { host: '127.0.0.1', port: postfixPort } });
const address = await inbound.listen(0, '127.0.0.1');
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
process.on('SIGTERM', () => void inbound.close().then(() => process.exit(0)));
