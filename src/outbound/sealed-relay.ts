/**
 * Sealed relay (docs/PROTOCOL.md section 13): a domain under `enforce` whose record says
 * `relay=sealed`, vouched for as strongly as its keys (policy.ts), lets a sender that reaches
 * none of its MX hosts offering XPONY deliver the message sealed through its other MX hosts (a
 * backup MX at a provider, which queues it and relays it to the blackpony MX later). Those hosts
 * are legacy MTAs: they get the armored form in DATA (7-bit, never the binary BDAT form), sealed
 * to the record's `a=` recipient (a pinned domain's: the one stored with the pin, policy.ts), and
 * see the envelope but never the header or the body.
 */
import { parseRecipient, type Recipient } from '../crypto/age/index.js';
import { armoredSealedSize } from '../xpony/index.js';
import type { DeliveryPolicy } from './policy.js';

/** The recipient a relayed message is sealed to; undefined when the policy allows no sealed relay. */
export function sealedRelayRecipients(policy: DeliveryPolicy): Recipient[] | undefined {
  if (policy.mode !== 'enforce' || policy.sealedRelay !== true || policy.ageRecipient === undefined) return undefined;
  return [parseRecipient(policy.ageRecipient)];
}

/**
 * Postfix's MAIL parameters as they apply to the form sealed to `recipients`: SIZE grows to the
 * armored size (so a relay that cannot take it says so at MAIL), and BODY goes (it is 7-bit).
 */
export function sealedRelayMailParameters(given: Readonly<Record<string, string | true>>, recipients: readonly Recipient[]): Record<string, string | true> {
  const { BODY: _sevenBit, SIZE: size, ...parameters } = given;
  if (typeof size !== 'string' || !/^[0-9]{1,15}$/.test(size)) return parameters;
  return { ...parameters, SIZE: String(armoredSealedSize(Number(size), recipients)) };
}
