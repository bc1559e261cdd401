import type { SMTPServerAddress } from 'smtp-server';
import { xtext } from './xtext.js';

/**
 * MAIL or RCPT parameters re-encoded for the next hop, in the order of `names`: ` NAME` for a
 * parameter without a value, ` NAME=value` (xtext) for one with; those not given are left out.
 */
export function encodeParameters(given: Readonly<Record<string, string | boolean | undefined>>, names: readonly string[]): string {
  let text = '';
  for (const name of names) {
    const value = given[name];
    if (value === undefined || value === false) continue;
    text += value === true ? ` ${name}` : ` ${name}=${xtext(value)}`;
  }
  return text;
}

/** smtp-server's parsed MAIL or RCPT parameters (values xtext-decoded), by upper-case name. */
export function parametersOf(address: SMTPServerAddress): Record<string, string | true> {
  const args = (address.args || {}) as Record<string, string | boolean>;
  const out: Record<string, string | true> = {};
  for (const [name, value] of Object.entries(args)) if (value !== false) out[name.toUpperCase()] = value;
  return out;
}
