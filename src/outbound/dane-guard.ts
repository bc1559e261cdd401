/**
 * DANE keeps holding (docs/PROTOCOL.md section 11): a destination whose MX hosts have
 * DNSSEC-validated TLSA records gets DANE from Postfix, and an unsigned `_pony` record (or an
 * XPONY sighting) must not pull it away to a tunnel whose key nothing stronger vouches for. Only a
 * pin, HTTPS keys or a validated record may.
 *
 * Without a validating resolver blackpony cannot tell a signed zone from an unsigned one, so any
 * TLSA record the configured resolver names for an MX host keeps the domain with Postfix (which
 * judges the TLSA with its own resolver), and a failed TLSA lookup waits.
 */
import { keysVouched, type DeliveryPolicy, type PolicyOptions } from './policy.js';
import type { DnsStub, ValidatingResolver } from './validated-dns.js';

/** Where TLSA records are asked: the validating resolver (its AD bit trusted) or, without one, the configured resolver. */
export type TlsaSource = { validating: ValidatingResolver } | { unvalidated: DnsStub };

/** The TLSA source the policy options give: the validating resolver when there is one. */
export function tlsaSource(options: Pick<PolicyOptions, 'validating' | 'directDns'>): TlsaSource | undefined {
  if (options.validating !== undefined) return { validating: options.validating };
  return options.directDns === undefined ? undefined : { unvalidated: options.directDns };
}

/**
 * Whether the policy's tunnel rests on evidence no stronger than unsigned DNS or a sighting. A
 * local policy without keys is the operator's own word for the domain and is left alone.
 */
function unvouched(policy: DeliveryPolicy): boolean {
  return !keysVouched(policy) && !(policy.source === 'local' && policy.acceptableKeys === 'any');
}

/**
 * Why the domain must stay with Postfix's DANE, or null. Asks for the MX hosts (or the domain
 * itself, without MX: RFC 7672 section 2.2.1) and their `_25._tcp` TLSA; a failed query throws
 * ValidatedDnsError (the caller waits: it cannot tell).
 */
export async function daneHolds(domain: string, policy: DeliveryPolicy, source: TlsaSource | undefined): Promise<string | null> {
  if (source === undefined || !unvouched(policy)) return null;
  const validated = 'validating' in source;
  const dns = validated ? source.validating : source.unvalidated;
  const mx = await dns.resolveMx(domain);
  // Postfix does DANE only in a signed zone; a validating resolver says whether this one is.
  if (validated && !mx.authenticated) return null;
  const hosts = mx.hosts.length === 0 ? [domain] : mx.hosts.filter((host) => host !== '');
  for (const host of hosts) {
    const tlsa = await dns.tlsa(host);
    if (!tlsa.present) continue;
    if (validated && tlsa.authenticated)
      return `DANE: ${host} has DNSSEC-validated TLSA records; an unvalidated _pony record does not outrank them: left to Postfix`;
    if (!validated)
      return `DANE: ${host} has TLSA records, which blackpony cannot validate (no outbound.validating_resolver); an unvalidated _pony record does not outrank them: left to Postfix`;
  }
  return null;
}
