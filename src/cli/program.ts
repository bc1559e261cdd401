import { Command, Option } from 'commander';
import { DEFAULT_LOG_LEVEL, LOG_LEVELS } from '../log.js';
import { VERSION } from '../version.js';
import { checkConfigCommand } from './commands/check-config.js';
import { checkPostfixCommand } from './commands/check-postfix.js';
import { defaultConfigCommand } from './commands/default-config.js';
import { demoCommand } from './commands/demo.js';
import { dnsRecordCommand } from './commands/dns-record.js';
import { keygenCommand } from './commands/keygen.js';
import { pinsCommand } from './commands/pins.js';
import { probeCommand } from './commands/probe.js';
import { runCommand } from './commands/run.js';

/** The whole command line, built without running it (main.ts runs it; the man page is generated from it). */
export function blackponyProgram(): Command {
  const program = new Command();

  program
    .name('blackpony')
    .description(
      'SMTP-compatible encrypting sidecar for Postfix.\n' +
        'Between two blackpony hosts mail travels in a Noise tunnel and sealed with age;\n' +
        'with everyone else it falls back to ordinary SMTP with opportunistic STARTTLS.',
    )
    .version(VERSION, '-V, --version', 'print the version and exit')
    .option('--pretty', 'readable log lines instead of JSON (the default on a terminal)')
    .addOption(new Option('--log-level <level>', 'least severe log level written').choices(LOG_LEVELS).default(DEFAULT_LOG_LEVEL))
    .showHelpAfterError();

  program.addCommand(keygenCommand());
  program.addCommand(dnsRecordCommand());
  program.addCommand(defaultConfigCommand());
  program.addCommand(checkConfigCommand());
  program.addCommand(checkPostfixCommand());
  program.addCommand(pinsCommand());
  program.addCommand(runCommand());
  program.addCommand(probeCommand());
  program.addCommand(demoCommand());

  return program;
}
