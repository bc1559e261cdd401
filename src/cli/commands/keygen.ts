import { Command } from 'commander';
import { base64 } from '@scure/base';
import { fingerprint } from '../../crypto/fingerprint.js';
import { generateKeys, loadKeyFile, rotateKeys, writeKeyFile } from '../../crypto/keyfile.js';
import { commandLogger } from '../logger.js';
import { failCommand } from '../fail.js';

/**
 * `blackpony keygen --out FILE [--rotate OLD]`: creates a host's key file and prints its public
 * half. With --rotate the new file keeps OLD's Noise key as a previous key, which vouches for the
 * new one in handshakes, so peers that pinned the old key accept the new one.
 */
export function keygenCommand(): Command {
  return new Command('keygen')
    .description('create a key file (Noise static key and age identities) and print its public half')
    .requiredOption('--out <file>', 'the key file to create (mode 0600); an existing file is never overwritten')
    .option('--rotate <old-file>', "replace this key file: its Noise key (and its previous ones, up to 2) become the new file's previous keys")
    .addHelpText(
      'after',
      '\nExample:\n' +
        '  blackpony keygen --out /etc/blackpony/keys\n' +
        '  blackpony dns-record --key /etc/blackpony/keys --domain example.org\n' +
        '  blackpony keygen --out /etc/blackpony/keys.new --rotate /etc/blackpony/keys',
    )
    .action(async (options: { out: string; rotate?: string }, command: Command) => {
      try {
        const keys = options.rotate === undefined ? generateKeys() : rotateKeys(await loadKeyFile(options.rotate));
        await writeKeyFile(options.out, keys);
        commandLogger(command).info(
          {
            event: 'keygen',
            path: options.out,
            fingerprint: fingerprint(keys.noise.publicKey),
            previous: keys.previousNoise.map((key) => fingerprint(key.publicKey)),
          },
          'key file created',
        );
        process.stdout.write(
          `wrote ${options.out} (mode 0600): keep it secret and back it up\n` +
            `noise public key:     ${base64.encode(keys.noise.publicKey)}\n` +
            `fingerprint:          ${fingerprint(keys.noise.publicKey)}\n` +
            `age recipient:        ${keys.ageX25519Recipient}\n` +
            `age hybrid recipient: ${keys.ageHybridRecipient}\n` +
            keys.previousNoise
              .map((key) => `previous noise key:   ${base64.encode(key.publicKey)} (${fingerprint(key.publicKey)}), vouches for the new key\n`)
              .join(''),
        );
      } catch (error) {
        failCommand(command, 'keygen', error);
      }
    });
}
