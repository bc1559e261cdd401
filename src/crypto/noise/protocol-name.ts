/**
 * Protocol names (section 8): Noise_<pattern>_<dh>_<cipher>_<hash>, e.g.
 * Noise_XX_25519_ChaChaPoly_SHA256; with the hfs modifier the DH part also names the KEM,
 * Noise_XXhfs_25519+MLKEM768_ChaChaPoly_SHA256 (Noise HFS section 5). Parsing resolves each part to its implementation, or raises
 * NoiseUnsupportedError for a well-formed name this implementation does not cover.
 */
import type { HashName } from '../primitives.js';
import { CIPHER_FUNCTIONS, type CipherFunction } from './cipher-functions.js';
import { NoiseProtocolNameError, NoiseUnsupportedError } from './errors.js';
import { KEM_NAMES } from './kem.js';
import { handshakePattern, type HandshakePattern } from './patterns.js';

export interface NoiseProtocol {
  readonly name: string;
  readonly pattern: HandshakePattern;
  readonly cipher: CipherFunction;
  readonly hash: HashName;
  /** The KEM of an hfs pattern (e.g. "MLKEM768"); undefined without hfs. */
  readonly kem: string | undefined;
}

const HASHES: readonly HashName[] = ['SHA256', 'SHA512', 'BLAKE2s', 'BLAKE2b'];
const SUPPORTED_DH = '25519';

export function parseProtocolName(name: string): NoiseProtocol {
  const parts = name.split('_');
  if (parts.length !== 5 || parts[0] !== 'Noise' || parts.some((p) => p === '')) {
    throw new NoiseProtocolNameError(`protocol name "${name}": expected Noise_<pattern>_<dh>_<cipher>_<hash>`);
  }
  const [, patternName = '', dhName = '', cipherName = '', hashName = ''] = parts;
  const pattern = handshakePattern(patternName);
  const [dhPart = '', kem, ...extra] = dhName.split('+');
  if (pattern.hfs !== (kem !== undefined) || extra.length > 0) {
    const expected = pattern.hfs ? 'DH+KEM, e.g. 25519+MLKEM768, for an hfs pattern' : 'one DH function (a KEM is named only with hfs)';
    throw new NoiseProtocolNameError(`protocol name "${name}": "${dhName}": expected ${expected}`);
  }
  if (kem !== undefined && !KEM_NAMES.includes(kem)) {
    throw new NoiseUnsupportedError(`protocol name "${name}": KEM "${kem}" is not supported (only ${KEM_NAMES.join(', ')})`);
  }
  if (dhPart !== SUPPORTED_DH) throw new NoiseUnsupportedError(`protocol name "${name}": DH function "${dhPart}" is not supported (only ${SUPPORTED_DH})`);
  const cipher = CIPHER_FUNCTIONS.get(cipherName);
  if (cipher === undefined) {
    throw new NoiseUnsupportedError(`protocol name "${name}": cipher "${cipherName}" is not supported (only ${[...CIPHER_FUNCTIONS.keys()].join(', ')})`);
  }
  const hash = HASHES.find((h) => h === hashName);
  if (hash === undefined) throw new NoiseUnsupportedError(`protocol name "${name}": hash "${hashName}" is not supported (only ${HASHES.join(', ')})`);
  return { name, pattern, cipher, hash, kem };
}
