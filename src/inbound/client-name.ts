/**
 * The client's host name for Postfix's XCLIENT, found the way Postfix's smtpd finds it for a
 * client it accepts itself (smtpd_peer.c): the PTR name of the address is REVERSE_NAME, and that
 * name is NAME only when it resolves back to the address. Without this, XCLIENT would make every
 * client "unknown", and reject_unknown_client_hostname, reject_unknown_reverse_client_hostname
 * and access rules by name would turn against all mail.
 */
import { BlockList, isIP } from 'node:net';
import { dnsFailure, type ClientNameResolver } from '../dns.js';

/** XCLIENT's values for "no name" (a permanent answer) and "no name for now" (DNS failed). */
export const NAME_UNAVAILABLE = '[UNAVAILABLE]';
export const NAME_TEMPORARILY_UNAVAILABLE = '[TEMPUNAVAIL]';

export interface ClientName {
  /** The forward-confirmed name, or one of the two values above. */
  name: string;
  /** The PTR name as found, or one of the two values above. */
  reverseName: string;
}

export const UNNAMED: ClientName = { name: NAME_UNAVAILABLE, reverseName: NAME_UNAVAILABLE };

const LABEL = /^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$/;

/** A host name Postfix takes in XCLIENT (valid_hostname): labels of letters, digits, "-" and "_", not numeric. */
function hostName(ptr: string): string | null {
  const name = ptr.replace(/\.$/, '');
  const labels = name.split('.');
  if (name.length > 255 || !labels.every((label) => LABEL.test(label)) || /^[0-9]+$/.test(labels.at(-1)!)) return null;
  return name;
}

function sameAddress(a: string, b: string): boolean {
  const family = isIP(a) === 6 ? 'ipv6' : 'ipv4';
  const list = new BlockList();
  list.addAddress(a, family);
  return list.check(b, family);
}

/** Never throws: a failed lookup is a name that is (temporarily) unavailable. */
export async function lookupClientName(address: string, resolver: ClientNameResolver): Promise<ClientName> {
  const unavailable = (error: unknown): string => (dnsFailure('', error).kind === 'temporary' ? NAME_TEMPORARILY_UNAVAILABLE : NAME_UNAVAILABLE);
  let ptr: string | null;
  try {
    ptr = (await resolver.reverse(address)).map(hostName).find((name) => name !== null) ?? null;
  } catch (error) {
    const reverseName = unavailable(error);
    return { name: reverseName, reverseName };
  }
  if (ptr === null) return UNNAMED;
  try {
    const addresses = await (isIP(address) === 6 ? resolver.resolve6(ptr) : resolver.resolve4(ptr));
    return { name: addresses.some((found) => sameAddress(found, address)) ? ptr : NAME_UNAVAILABLE, reverseName: ptr };
  } catch (error) {
    return { name: unavailable(error), reverseName: ptr };
  }
}
