/**
 * How the client of a tunnel knew the server's key (docs/PROTOCOL.md section 5, "The key's
 * evidence"): a server inside a tunnel offers the EHLO keyword XPONY-EVIDENCE; a client then
 * says on MAIL FROM `XPONY-EVIDENCE=<evidence>`, and the server's trace header records it
 * (section 12). The client's claim, unverified, for the receiving administrator to read.
 */

/** The EHLO keyword, and the MAIL FROM parameter's name. */
export const EVIDENCE_KEYWORD = 'XPONY-EVIDENCE';

/**
 * Strongest first: a DNSSEC-validated `_pony` record, keys in the MTA-STS policy file (HTTPS), a
 * pin, an unsigned `_pony` record; none: any key was accepted (opportunistic, first contact).
 */
export const KEY_EVIDENCE = ['dnssec', 'https', 'pin', 'record', 'none'] as const;
export type KeyEvidence = (typeof KEY_EVIDENCE)[number];

export function isKeyEvidence(value: unknown): value is KeyEvidence {
  return typeof value === 'string' && (KEY_EVIDENCE as readonly string[]).includes(value);
}
