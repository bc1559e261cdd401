import { VERSION } from '../../version.js';

/**
 * The roff (man(7)) pieces both manual pages share. Text is escaped so that groff prints it as
 * written: backslashes, a leading dot or apostrophe (a request), and '-' as the ASCII hyphen-minus
 * (unescaped it may become a typographic hyphen, and options must be copyable).
 */
export function roffText(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join('\n');
}

/** Bold text, e.g. a command or option name. */
export function bold(text: string): string {
  return `\\fB${roffText(text)}\\fR`;
}

/** A page's header: title line, no hyphenation or justification (option names never break). */
export function pageHeader(name: string, section: number, title: string): string[] {
  return [`.TH ${name.toUpperCase()} ${section} "" "blackpony ${VERSION}" "${title}"`, '.nh', '.ad l', '.SH NAME', `${roffText(name)} \\- ${roffText(title)}`];
}

/** A tagged paragraph: `term` on its own line, `body` indented below it. */
export function taggedParagraph(term: string, body: string): string[] {
  return ['.TP', term, roffText(body)];
}

/** Text printed line for line (examples, usage), indented by less than a tagged paragraph's body so it stands apart from it. */
export function literalBlock(text: string): string[] {
  return ['.RS 4', '.nf', roffText(text), '.fi', '.RE'];
}
