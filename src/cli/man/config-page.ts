import { isSection, yamlValue } from '../../daemon/config.js';
import { SCHEMA, type Section } from '../../daemon/config-schema.js';
import { bold, literalBlock, pageHeader, roffText, taggedParagraph } from './roff.js';

/** What a setting's entry says of its value: the default, or that it is required (with an example). */
function valueNote(field: { default?: unknown; example?: string }, optionalSection: boolean): string {
  if (field.default !== undefined) return `Default: ${yamlValue(field.default)}.`;
  const example = field.example === undefined ? '' : ` Example: ${field.example}.`;
  return `${optionalSection ? 'Required when the section is present.' : 'Required.'}${example}`;
}

/** A section's settings by dotted name (`inbound.listen`), nested sections as their own subsections. */
function sectionLines(section: Section, prefix: string, optional: boolean): string[] {
  const lines: string[] = [];
  const nested: string[] = [];
  for (const [key, node] of Object.entries(section.fields)) {
    const name = `${prefix}${key}`;
    if (isSection(node)) {
      const absent = optional || node.optional === true;
      nested.push(`.SS ${roffText(name)}`, roffText(node.description + (node.optional === true ? ' Optional: absent, or complete.' : '')));
      nested.push(...sectionLines(node, `${name}.`, absent));
    } else {
      lines.push(...taggedParagraph(bold(name), `${node.description} ${valueNote(node, optional)}`));
    }
  }
  return [...lines, ...nested];
}

/** blackpony.yaml(5): every setting of the configuration file, its default and description, from SCHEMA. */
export function configManPage(): string {
  return [
    ...pageHeader('blackpony.yaml', 5, 'blackpony configuration file'),
    '.SH SYNOPSIS',
    roffText('/etc/blackpony/config.yaml'),
    '.SH DESCRIPTION',
    roffText(
      'The configuration of blackpony(8), in YAML. Every setting is listed below by its dotted name: ' +
        'inbound.listen is the key listen in the map inbound. Relative paths resolve against the ' +
        "file's folder. The file holds no secrets, only paths to them.",
    ),
    '.PP',
    'A commented file with every default is printed by',
    ...literalBlock('blackpony default-config > /etc/blackpony/config.yaml\nblackpony check-config /etc/blackpony/config.yaml'),
    '.SH SETTINGS',
    ...sectionLines(SCHEMA, '', false),
    '.SH SEE ALSO',
    `${bold('blackpony')}(8)`,
    '',
  ].join('\n');
}
