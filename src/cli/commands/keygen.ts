import { Command } from 'commander';
import { base64 } from '@scure/base';
import { fingerprint } from '../../crypto/fingerprint.js';
import { generateKeys, writeKeyFile } from '../../crypto/keyfile.js';
import { commandLogger } from '../logger.js';
import { failCommand } from '../fail.js';

/** `blackpony keygen --out FILE`: creates a host's key file and prints its public half. */
export function keygenCommand(): Command {
  return new Command('keygen')
    .description('create a key file (Noise static key and age identities) and print its public half')
    .requiredOption('--out <file>', 'the key file to create (mode 0600); an existing file is never overwritten')
    .addHelpText(
      'after',
      '\nExample:\n' +
        '  blackpony keygen --out /etc/blackpony/keys\n' +
        '  blackpony dns-record --key /etc/blackpony/keys --domain example.org',
    )
    .action(async (options: { out: string }, command: Command) => {
      try {
        const keys = generateKeys();
        await writeKeyFile(options.out, keys);
        commandLogger(command).info({ event: 'keygen', path: options.out, fingerprint: fingerprint(keys.noise.publicKey) }, 'key file created');
        process.stdout.write(
          `wrote ${options.out} (mode 0600): keep it secret and back it up\n` +
            `noise public key:     ${base64.encode(keys.noise.publicKey)}\n` +
            `fingerprint:          ${fingerprint(keys.noise.publicKey)}\n` +
            `age recipient:        ${keys.ageX25519Recipient}\n` +
            `age hybrid recipient: ${keys.ageHybridRecipient}\n`,
        );
      } catch (error) {
        failCommand(command, 'keygen', error);
      }
    });
}
