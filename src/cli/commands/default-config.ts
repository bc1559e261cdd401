import { Command } from 'commander';
import { defaultConfigText } from '../../daemon/config.js';

/** `blackpony default-config`: prints the commented configuration with every setting's default. */
export function defaultConfigCommand(): Command {
  return new Command('default-config')
    .description('print the commented default configuration (fill in hostname and keys)')
    .addHelpText('after', '\nExample:\n' + '  blackpony default-config > /etc/blackpony/config.yaml\n' + '  blackpony check-config /etc/blackpony/config.yaml')
    .action(() => {
      process.stdout.write(defaultConfigText());
    });
}
