import { Command } from 'commander';
import { VERSION } from '../version.js';
import { dnsRecordCommand } from './commands/dns-record.js';
import { keygenCommand } from './commands/keygen.js';

const program = new Command();

program
  .name('blackpony')
  .description(
    'SMTP-compatible encrypting sidecar for Postfix.\n' +
      'Between two blackpony hosts mail travels in a Noise tunnel and sealed with age;\n' +
      'with everyone else it falls back to ordinary SMTP with opportunistic STARTTLS.',
  )
  .version(VERSION, '-V, --version', 'print the version and exit')
  .option('--pretty', 'human-readable log lines instead of JSON')
  .option('--log-level <level>', 'trace, debug, info, warn, error or fatal', 'info')
  .showHelpAfterError();

program.addCommand(keygenCommand());
program.addCommand(dnsRecordCommand());

await program.parseAsync(process.argv);
