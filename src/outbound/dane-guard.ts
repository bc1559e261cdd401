/**
 * DANE keeps holding (docs/PROTOCOL.md section 11): a destination whose MX hosts have
 * DNSSEC-validated TLSA records gets DANE from Postfix, and an unsigned `_pony` record (or an
 * XPONY sighting) must not pull it away to a tunnel whose key nothing stronger vouches for. Only a
 * pin, HTTPS keys or a validated record may. Without a validating resolver nothing is known of
 * DNSSEC here, and nothing changes.
 */
import { keysVouched, type DeliveryPolicy } from './policy.js';
import type { ValidatingResolver } from './validated-dns.js';

/**
 * Whether the policy's tunnel rests on evidence no stronger than unsigned DNS or a sighting. A
 * local policy without keys is the operator's own word for the domain and is left alone.
 */
function unvouched(policy: DeliveryPolicy): boolean {
  return !keysVouched(policy) && !(policy.source === 'local' && policy.acceptableKeys === 'any');
}

/**
 * Why the domain must stay with Postfix's DANE, or null. Asks the validating resolver for the MX
 * hosts (or the domain itself, without MX: RFC 7672 section 2.2.1) and their `_25._tcp` TLSA; a
 * failed query throws ValidatedDnsError (the caller waits: it cannot tell).
 */
export async function daneHolds(domain: string, policy: DeliveryPolicy, validating: ValidatingResolver | undefined): Promise<string | null> {
  if (validating === undefined || !unvouched(policy)) return null;
  const mx = await validating.resolveMx(domain);
  if (!mx.authenticated) return null;
  const hosts = mx.hosts.length === 0 ? [domain] : mx.hosts.filter((host) => host !== '');
  for (const host of hosts) {
    if (await validating.hasValidatedTlsa(host)) return `DANE: ${host} has DNSSEC-validated TLSA records; an unvalidated _pony record does not outrank them: left to Postfix`;
  }
  return null;
}
