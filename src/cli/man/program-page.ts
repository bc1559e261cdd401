import type { Command } from 'commander';
import { bold, literalBlock, pageHeader, roffText, taggedParagraph } from './roff.js';

/** The text a command's `--help` prints after the generated help (its examples), captured without printing. */
function helpAfterText(command: Command): string {
  let printed = '';
  const previous = { ...command.configureOutput() };
  command.configureOutput({ writeOut: (text) => (printed += text) });
  command.outputHelp();
  command.configureOutput(previous);
  const generated = command.helpInformation();
  return printed.slice(printed.indexOf(generated) + generated.length).trim();
}

/** `blackpony pins list`: a command's name with its parents'. */
function fullName(command: Command): string {
  return command.parent === null ? command.name() : `${fullName(command.parent)} ${command.name()}`;
}

/** A command's section: usage, description, arguments, options, examples, then its subcommands. */
function commandLines(command: Command): string[] {
  const help = command.createHelp();
  const lines = [`.SS ${roffText(fullName(command))}`, ...literalBlock(help.commandUsage(command))];
  lines.push('.PP', roffText(help.commandDescription(command)));
  for (const argument of help.visibleArguments(command)) {
    lines.push(...taggedParagraph(bold(help.argumentTerm(argument)), help.argumentDescription(argument)));
  }
  for (const option of help.visibleOptions(command)) {
    lines.push(...taggedParagraph(bold(help.optionTerm(option)), help.optionDescription(option)));
  }
  const after = helpAfterText(command);
  if (after !== '') lines.push('.PP', ...literalBlock(after));
  for (const subcommand of help.visibleCommands(command)) {
    if (subcommand.name() !== 'help') lines.push(...commandLines(subcommand));
  }
  return lines;
}

/** blackpony(8): every command and option of `program`, from its commander definition. */
export function programManPage(program: Command): string {
  const help = program.createHelp();
  const commands = help.visibleCommands(program).filter((command) => command.name() !== 'help');
  return [
    ...pageHeader(program.name(), 8, 'encrypting SMTP sidecar for Postfix'),
    '.SH SYNOPSIS',
    ...literalBlock(help.commandUsage(program)),
    '.SH DESCRIPTION',
    roffText(help.commandDescription(program)),
    '.PP',
    `The configuration file is described in ${bold('blackpony.yaml')}(5).`,
    '.SH GLOBAL OPTIONS',
    ...help.visibleOptions(program).flatMap((option) => taggedParagraph(bold(help.optionTerm(option)), help.optionDescription(option))),
    '.SH COMMANDS',
    ...commands.flatMap(commandLines),
    '.SH EXIT STATUS',
    '0 on success, non\\-zero on a failure; the codes of probe are listed in its examples above.',
    '.SH SEE ALSO',
    `${bold('blackpony.yaml')}(5), ${bold('postconf')}(5), ${bold('master')}(5)`,
    '',
  ].join('\n');
}
