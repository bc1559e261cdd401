/**
 * What a recipient type and its identity type provide to the file format: recipients wrap a file
 * key into stanzas, identities find and unwrap the stanza addressed to them.
 */
import type { Stanza } from './format.js';

export interface Recipient {
  /** The recipient's string form ("age1..." or "age1pq1..."). */
  toString(): string;
  wrapFileKey(fileKey: Uint8Array): Stanza[];
}

/** Deliberately without toString(): an identity is a secret and must not end up in a log line. */
export interface Identity {
  recipient(): Recipient;
  /**
   * The file key from the first stanza addressed to this identity, or null when none is.
   * Throws AgeError('header') for a stanza of this identity's type that is malformed.
   */
  unwrapFileKey(stanzas: readonly Stanza[]): Uint8Array | null;
}
