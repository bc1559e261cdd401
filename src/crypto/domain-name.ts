import { domainToASCII } from 'node:url';

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
// domainToASCII parses a URL host, so "a/b.test" would come back as "a": only letters, digits,
// dots, hyphens and non-ASCII (IDN) characters may reach it.
// eslint-disable-next-line no-control-regex -- control characters are among what it refuses
const NOT_IN_A_DOMAIN = /[\x00-\x2c\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]/;

/**
 * A mail domain as lower-case ASCII (A-labels, no trailing dot), or null when it is not a plain
 * domain name: at least two labels of letters, digits and inner hyphens, 253 characters at most.
 */
export function normalizeDomain(domain: string): string | null {
  if (NOT_IN_A_DOMAIN.test(domain)) return null;
  const ascii = domainToASCII(domain.replace(/\.$/, ''));
  const labels = ascii.split('.');
  if (ascii === '' || ascii.length > 253 || labels.length < 2 || !labels.every((label) => LABEL.test(label))) return null;
  return ascii;
}
