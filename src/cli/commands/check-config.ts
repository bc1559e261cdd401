import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { Command } from 'commander';
import { fingerprint } from '../../crypto/fingerprint.js';
import { loadKeyFile } from '../../crypto/keyfile.js';
import { formatEndpoint as address } from '../../daemon/config-values.js';
import { loadConfig, type Config } from '../../daemon/config.js';
import { failCommand } from '../fail.js';
import { errorMessage } from '../../error-message.js';

/** Where the inbound side relays to, and who the MTA there is told the client is. */
function inboundHop(inbound: Config['inbound']): string {
  if (inbound.clientIdentity !== 'none') return `delivers to Postfix at ${address(inbound.postfix)}`;
  return `delivers to ${address(inbound.postfix)} from ${inbound.sourceAddress} without the client's address (client_identity none: that MTA judges ${inbound.sourceAddress})`;
}

/** A few lines saying what the configuration turns on and where it listens. */
function summary(config: Config): string[] {
  const inbound = config.inbound;
  const outbound = config.outbound;
  return [
    `hostname: ${config.hostname}`,
    inbound.enabled
      ? `inbound: listens on ${inbound.listen === 'systemd' ? 'the systemd socket' : address(inbound.listen)}, ${inboundHop(inbound)}`
      : 'inbound: disabled',
    outbound.enabled
      ? `outbound: listens on ${outbound.listen === 'systemd' ? 'the systemd socket named "outbound"' : address(outbound.listen)} (${outbound.protocol})`
      : 'outbound: disabled',
    `metrics: ${config.metrics.listen === '' ? 'off' : address(config.metrics.listen)}`,
    `state dir: ${config.stateDir}`,
  ];
}

/** Loads the STARTTLS certificate and key as the daemon will, so a mismatched pair fails here. */
async function checkTls(tls: { cert: string; key: string }): Promise<void> {
  try {
    createSecureContext({ cert: await readFile(tls.cert), key: await readFile(tls.key) });
  } catch (error) {
    throw new Error(`inbound.tls: ${errorMessage(error)}`, { cause: error });
  }
}

/** `blackpony check-config FILE`: validates a configuration file and its key file. */
export function checkConfigCommand(): Command {
  return new Command('check-config')
    .description('check a configuration file and the key and TLS files it names; print a summary or every problem')
    .argument('<file>', 'the configuration file')
    .option('--no-keys', 'do not check the key file')
    .addHelpText('after', '\nExample:\n' + '  blackpony check-config /etc/blackpony/config.yaml\n' + '  ok\n' + '  hostname: mail.example.org\n' + '  ...')
    .action(async (file: string, options: { keys: boolean }, command: Command) => {
      try {
        const config = await loadConfig(file);
        const lines = ['ok', ...summary(config)];
        if (config.inbound.tls !== undefined) {
          await checkTls(config.inbound.tls);
          lines.push(`tls: ${config.inbound.tls.cert}`);
        }
        if (options.keys) {
          const keys = await loadKeyFile(config.keys);
          lines.push(`keys: ${config.keys} (fingerprint ${fingerprint(keys.noise.publicKey)})`);
        }
        process.stdout.write(`${lines.join('\n')}\n`);
      } catch (error) {
        failCommand(command, 'check-config', error);
      }
    });
}
