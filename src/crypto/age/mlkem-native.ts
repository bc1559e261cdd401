/**
 * ML-KEM-768 from node:crypto (OpenSSL), present from Node 24.7. Keys cross the API as DER: the
 * encapsulation key as SubjectPublicKeyInfo, the seed as PKCS#8 with the seed CHOICE of
 * draft-ietf-lamps-kyber-certificates ([0] IMPLICIT OCTET STRING (SIZE 64)); both forms import on
 * every Node that has the API, unlike the later "raw-public" / "raw-seed" formats.
 */
import * as nodeCrypto from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import type { MlKem768 } from './mlkem-interface.js';

/** The part of node:crypto used here; encapsulate/decapsulate are absent before Node 24.7. */
export interface NativeKemApi {
  createPrivateKey: typeof nodeCrypto.createPrivateKey;
  createPublicKey: typeof nodeCrypto.createPublicKey;
  encapsulate?: unknown;
  decapsulate?: unknown;
}

type Encapsulate = (key: KeyObject) => { sharedKey: Buffer; ciphertext: Buffer };
type Decapsulate = (key: KeyObject, ciphertext: Uint8Array) => Buffer;

// id-alg-ml-kem-768, 2.16.840.1.101.3.4.4.2.
const ALGORITHM = '300b0609608648016503040402';
// SEQUENCE { AlgorithmIdentifier, BIT STRING (0 unused bits) of the 1184-byte key }.
const SPKI_PREFIX = Buffer.from(`308204b2${ALGORITHM}038204a100`, 'hex');
// SEQUENCE { version 0, AlgorithmIdentifier, OCTET STRING { [0] the 64-byte seed } }.
const PKCS8_SEED_PREFIX = Buffer.from(`3054020100${ALGORITHM}04428040`, 'hex');

/**
 * The native implementation, or null when this Node lacks it: no encapsulate/decapsulate, no
 * ml-kem-768 keys in its OpenSSL, or a round trip that does not agree (checked once, here).
 */
export function loadNativeMlKem768(api: NativeKemApi = nodeCrypto): MlKem768 | null {
  if (typeof api.encapsulate !== 'function' || typeof api.decapsulate !== 'function') return null;
  const encapsulateKey = api.encapsulate as Encapsulate;
  const decapsulateKey = api.decapsulate as Decapsulate;
  const kem: MlKem768 = {
    implementation: 'node:crypto',
    fromSeed(seed) {
      const privateKey = api.createPrivateKey({ key: Buffer.concat([PKCS8_SEED_PREFIX, seed]), format: 'der', type: 'pkcs8' });
      const spki = api.createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
      return {
        publicKey: new Uint8Array(spki.subarray(SPKI_PREFIX.length)),
        decapsulate: (ciphertext) => new Uint8Array(decapsulateKey(privateKey, ciphertext)),
      };
    },
    encapsulate(publicKey) {
      return kem.encapsulationKey(publicKey).encapsulate();
    },
    encapsulationKey(publicKey) {
      const key = api.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
      return {
        encapsulate() {
          const { ciphertext, sharedKey } = encapsulateKey(key);
          return { ciphertext: new Uint8Array(ciphertext), sharedSecret: new Uint8Array(sharedKey) };
        },
      };
    },
  };
  try {
    const key = kem.fromSeed(new Uint8Array(64));
    const { ciphertext, sharedSecret } = kem.encapsulate(key.publicKey);
    return Buffer.from(key.decapsulate(ciphertext)).equals(sharedSecret) ? kem : null;
  } catch {
    return null;
  }
}
