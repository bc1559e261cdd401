/**
 * Every failure of the age library is an AgeError. Its kind says which layer refused the input, so
 * callers (and the CCTV vector tests) can tell a malformed header from a wrong key or a forged chunk.
 */
export type AgeErrorKind =
  /** The ASCII armor around the file is malformed. */
  | 'armor'
  /** The header does not parse, breaks a limit, or a stanza meant for one of our identities is malformed. */
  | 'header'
  /** The header parsed, but none of the identities could unwrap the file key. */
  | 'no-match'
  /** A file key was unwrapped, but the header MAC does not verify. */
  | 'hmac'
  /** The STREAM payload is truncated, forged, reordered or followed by trailing data. */
  | 'payload'
  /** A recipient or identity string is malformed or of an unsupported type. */
  | 'key'
  /** The library was called wrongly (e.g. no recipients). */
  | 'usage';

export class AgeError extends Error {
  override readonly name = 'AgeError';
  constructor(
    readonly kind: AgeErrorKind,
    message: string,
  ) {
    super(message);
  }
}
