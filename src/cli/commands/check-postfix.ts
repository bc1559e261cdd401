import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { loadConfig } from '../../daemon/config.js';
import { checkPostfix } from '../../daemon/postfix-check.js';
import { PostfixSettings } from '../../daemon/postfix-settings.js';
import { failCommand } from '../fail.js';
import { errorMessage } from '../../error-message.js';

/** Exit statuses: all is well, something is wrong, the check could not run. */
export const CHECK_POSTFIX_EXIT = { ok: 0, problems: 1, usage: 3 } as const;

const DEFAULT_CONFIG = '/etc/blackpony/config.yaml';
/** postconf lives in /usr/sbin, which a non-root PATH often lacks. */
const SEARCH_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;

interface CheckPostfixOptions {
  configDir?: string;
  config: string;
}

/** Runs postconf with `-c DIR` when given; rejects with postconf's own error. */
async function postconf(configDir: string | undefined, args: readonly string[]): Promise<string> {
  const argv = [...(configDir === undefined ? [] : ['-c', configDir]), ...args];
  try {
    const { stdout } = await promisify(execFile)('postconf', argv, { env: { ...process.env, PATH: SEARCH_PATH }, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const detail = (error as { stderr?: string }).stderr?.trim().split('\n').at(-1) ?? errorMessage(error);
    throw new Error(`postconf ${argv.join(' ')}: ${detail}`, { cause: error });
  }
}

/** `blackpony check-postfix [-c DIR]`: says what in Postfix's configuration does not fit blackpony's. */
export function checkPostfixCommand(): Command {
  return new Command('check-postfix')
    .description("check that Postfix's configuration (postconf) fits blackpony's: one line per thing to change")
    .option('-c, --config-dir <dir>', "Postfix's configuration directory, as postconf -c (default: postconf's own)")
    .option('--config <file>', "blackpony's configuration file", DEFAULT_CONFIG)
    .addHelpText(
      'after',
      '\nChecks: port 25 left to blackpony; a loopback or unix-socket listener for blackpony that takes\n' +
        'XCLIENT (or PROXY lines) from blackpony and from nobody else; mynetworks; transport_maps or\n' +
        'default_transport leading to blackpony.\n' +
        '\nExit status:\n' +
        '  0  all is well (notes, if any, name documented trade-offs)\n' +
        '  1  something is wrong: each "problem:" line says what to change\n' +
        '  3  usage error, or a configuration that cannot be read\n' +
        '\nExample:\n' +
        '  blackpony check-postfix --config /etc/blackpony/config.yaml\n' +
        '  problem: port 25: master.cf service smtp/inet (smtpd) still listens on port 25, ...',
    )
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : CHECK_POSTFIX_EXIT.usage))
    .action(async (options: CheckPostfixOptions, command: Command) => {
      let findings;
      try {
        const config = await loadConfig(options.config);
        // Run together; a failure is reported in this order (main.cf first), not by which ends first.
        const settled = await Promise.allSettled([
          postconf(options.configDir, ['-x']),
          postconf(options.configDir, ['-M']),
          postconf(options.configDir, ['-Px']),
        ]);
        const [parameters, services, overrides] = settled.map((outcome) => {
          if (outcome.status === 'rejected') throw outcome.reason;
          return outcome.value;
        }) as [string, string, string];
        const settings = PostfixSettings.parse({ parameters, services, overrides });
        findings = checkPostfix(settings, config, { postconf: options.configDir === undefined ? 'postconf' : `postconf -c ${options.configDir}` });
      } catch (error) {
        return failCommand(command, 'check-postfix', error);
      }
      const problems = findings.filter((finding) => finding.severity === 'problem');
      const lines = [...problems, ...findings.filter((finding) => finding.severity === 'note')].map(
        (finding) => `${finding.severity}: ${finding.topic}: ${finding.text}`,
      );
      const where = options.configDir ?? "postconf's default";
      lines.push(
        problems.length === 0
          ? `ok: Postfix (${where}) fits blackpony (${options.config})`
          : `${problems.length} problem${problems.length === 1 ? '' : 's'}: Postfix (${where}) does not fit blackpony (${options.config}) yet`,
      );
      process.stdout.write(`${lines.join('\n')}\n`);
      process.exitCode = problems.length === 0 ? CHECK_POSTFIX_EXIT.ok : CHECK_POSTFIX_EXIT.problems;
    });
}
