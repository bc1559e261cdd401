import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { literalBlock, pageHeader, roffText } from '../../src/cli/man/roff.js';
import { blackponyProgram } from '../../src/cli/program.js';
import { isSection, yamlValue } from '../../src/daemon/config.js';
import { SCHEMA, type Section } from '../../src/daemon/config-schema.js';
import { describeWith, executable } from '../harness/requirements.js';

const GROFF = executable('groff (groff-base)', '/usr/bin/groff');
const ROOT = resolve(import.meta.dirname, '../..');

/**
 * A page as groff renders it for a terminal (man(1)'s pipeline: tbl, the man macros, -Tutf8) in plain
 * text (-P-cbou: no bold, underline or overstrike), whitespace collapsed (wrapping moves words
 * between lines), and every warning groff has (-ww). man -l is not used: man-db does not pass groff's
 * warnings through to its caller.
 */
function render(page: string): { text: string; warnings: string } {
  const run = spawnSync('/usr/bin/groff', ['-t', '-mandoc', '-Tutf8', '-ww', '-P-cbou', '-rLL=100n', page], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C.UTF-8' },
    timeout: 60_000,
  });
  expect(run.status).toBe(0);
  return { text: run.stdout.replace(/\s+/g, ' '), warnings: run.stderr };
}

function commandsOf(command: Command): Command[] {
  return [command, ...command.commands.flatMap(commandsOf)];
}

function commandName(command: Command): string {
  return command.parent === null ? command.name() : `${commandName(command.parent)} ${command.name()}`;
}

/** Every setting by dotted name with its default in the file's form (undefined when required). */
function settingsOf(section: Section, prefix = ''): [string, unknown][] {
  return Object.entries(section.fields).flatMap(([key, node]) =>
    isSection(node) ? settingsOf(node, `${prefix}${key}.`) : [[`${prefix}${key}`, node.default] as [string, unknown]],
  );
}

let dir: string;

describeWith([GROFF], 'man pages', () => {
  beforeAll(() => {
    // The build's own generator (dist/scripts/man-pages.js, built by the global setup), into a temporary folder.
    dir = mkdtempSync(join(tmpdir(), 'blackpony-man-'));
    const run = spawnSync(process.execPath, [join(ROOT, 'dist/scripts/man-pages.js'), dir], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('blackpony(8) names every command and every option, and groff renders it without a warning', () => {
    const { text, warnings } = render(join(dir, 'blackpony.8'));
    expect(warnings).toBe('');
    const commands = commandsOf(blackponyProgram()).filter((command) => command.name() !== 'help');
    expect(commands.length).toBeGreaterThan(8);
    for (const command of commands) {
      expect(text, commandName(command)).toContain(commandName(command));
      for (const option of command.options) expect(text, `${commandName(command)} ${option.flags}`).toContain(option.flags);
    }
  });

  it('blackpony.yaml(5) names every setting with its default, and groff renders it without a warning', () => {
    const { text, warnings } = render(join(dir, 'blackpony.yaml.5'));
    expect(warnings).toBe('');
    const settings = settingsOf(SCHEMA);
    expect(settings.length).toBeGreaterThan(20);
    for (const [name, value] of settings) {
      const entry = value === undefined ? `${name} ` : `Default: ${yamlValue(value)}.`.replace(/\s+/g, ' ');
      expect(text, name).toContain(` ${name} `);
      if (value !== undefined) expect(text, name).toContain(entry);
    }
  });

  it('the warning check has teeth: groff warns about an undefined macro and string', () => {
    const broken = join(dir, 'broken.5');
    writeFileSync(broken, readFileSync(join(dir, 'blackpony.yaml.5'), 'utf8').replace('.SH SETTINGS', '.SH SETTINGS\n.XX bad\n\\*[nonesuch]'));
    expect(render(broken).warnings).not.toBe('');
  });

  it('text that looks like roff prints as written: leading dots and quotes, backslashes, double hyphens', () => {
    const tricky = ".br is a request\n'also one\nC:\\path\\n --flag";
    const page = join(dir, 'tricky.1');
    writeFileSync(page, [...pageHeader('tricky', 1, 'escaping'), '.SH TEXT', ...literalBlock(tricky), roffText(tricky), ''].join('\n'));
    const { text, warnings } = render(page);
    expect(warnings).toBe('');
    expect(text).toContain(`${tricky.replace(/\s+/g, ' ')} ${tricky.replace(/\s+/g, ' ')}`);
  });
});
