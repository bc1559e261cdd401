/**
 * The age identities sealed messages are opened with: the current key file's, then those of the
 * key files before it, as many as a key file keeps previous Noise keys (MAX_PREVIOUS_NOISE_KEYS).
 * Mail sealed to an earlier key may still be on its way after a reload; a reload loop must not
 * grow the list, since every hybrid identity may cost an ML-KEM decapsulation per sealed message.
 */
import { parseIdentity, type Identity } from '../crypto/age/index.js';
import { MAX_PREVIOUS_NOISE_KEYS, type Keys } from '../crypto/keyfile.js';

/** Key files whose identities are kept: the current one and its predecessors. */
export const KEPT_KEY_FILES = 1 + MAX_PREVIOUS_NOISE_KEYS;

function identitiesOf(keys: Keys): string[] {
  return [keys.ageX25519Identity, keys.ageHybridIdentity];
}

export class AgeIdentities {
  /** Identity strings per key file, newest first. */
  private keyFiles: string[][];
  /** Shared with relay sessions, which read it per message; changed in place. */
  readonly list: Identity[] = [];

  constructor(keys: Keys) {
    this.keyFiles = [identitiesOf(keys)];
    this.rebuild();
  }

  /** `keys` become the current ones; the oldest beyond KEPT_KEY_FILES are dropped. Same keys again change nothing. */
  use(keys: Keys): void {
    const next = identitiesOf(keys);
    const same = (file: string[]): boolean => file.every((identity, i) => identity === next[i]);
    if (same(this.keyFiles[0]!)) return;
    this.keyFiles = [next, ...this.keyFiles.filter((file) => !same(file))].slice(0, KEPT_KEY_FILES);
    this.rebuild();
  }

  private rebuild(): void {
    this.list.splice(0, this.list.length, ...this.keyFiles.flat().map((identity) => parseIdentity(identity)));
  }
}
