/**
 * ML-KEM-768 (FIPS 203) in JavaScript, for a Node without native ML-KEM (Node 20, which Debian 13
 * ships): the lattice arithmetic here, every SHA-3 and SHAKE call in node:crypto (OpenSSL).
 *
 * Why not @noble/post-quantum, which this replaced and which the tests keep as the cross-check:
 * about half of noble's time is its Keccak in JavaScript, and OpenSSL's is several times faster
 * (measured here: the hashes of one encapsulation 53 µs natively against ~250 µs in noble).
 * Also, a key made from a seed keeps its public matrix, so the re-encryption inside a
 * decapsulation does not expand it again, and a key used many times (`encapsulationKey`) expands
 * it once. A fresh Noise handshake on Node 20 spends most of its CPU in ML-KEM; this halves it.
 *
 * Polynomials are 256 coefficients in [0, q), in plain (not Montgomery) form. Like noble, this is
 * not constant-time arithmetic in the strict sense (JavaScript gives no such guarantee); the
 * implicit rejection, where a timing difference would matter most, selects without a branch.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { MlKem768, MlKem768DecapsulationKey } from './mlkem-interface.js';
import { MLKEM768_CIPHERTEXT_LENGTH, MLKEM768_ENCAPSULATION_RANDOMNESS_LENGTH, MLKEM768_PUBLIC_KEY_LENGTH, MLKEM768_SEED_LENGTH } from './mlkem-interface.js';

const N = 256;
const Q = 3329;
/** ML-KEM-768: k = 3, η1 = η2 = 2, du = 10, dv = 4 (FIPS 203 table 2). */
const K = 3;
const DU = 10;
const DV = 4;
/** 0 .. k-1: the polynomials of a vector. */
const RANKS = Array.from({ length: K }, (_, i) => i);
/** 128^-1 mod q, the scale of the inverse NTT. */
const INVERSE_128 = 3303;
const POLY_BYTES = 384;
const T_BYTES = K * POLY_BYTES;
const U_BYTES = (N * DU) / 8;
/** PRF_η output for η = 2: 64η octets. */
const CBD_BYTES = 128;
/** SHAKE128 output asked for one matrix entry: three blocks, enough about 99% of the time. */
const XOF_BYTES = 3 * 168;

function bitReverse7(i: number): number {
  let r = 0;
  for (let bit = 0; bit < 7; bit++) r |= ((i >> bit) & 1) << (6 - bit);
  return r;
}

function power17(exponent: number): number {
  let r = 1;
  for (let i = 0; i < exponent; i++) r = (r * 17) % Q;
  return r;
}

/** ζ^BitRev7(i), the NTT's twiddle factors (ζ = 17). */
const ZETAS = Uint16Array.from({ length: 128 }, (_, i) => power17(bitReverse7(i)));
/** ζ^(2·BitRev7(i)+1), the moduli of the base-case products (FIPS 203 algorithm 11). */
const GAMMAS = Uint16Array.from({ length: 128 }, (_, i) => power17(2 * bitReverse7(i) + 1));

type Poly = Uint16Array;

/** FIPS 203 algorithm 9, in place. */
function ntt(f: Poly): Poly {
  let k = 1;
  for (let len = 128; len >= 2; len >>= 1) {
    for (let start = 0; start < N; start += 2 * len) {
      const zeta = ZETAS[k++]!;
      for (let j = start; j < start + len; j++) {
        const t = (zeta * f[j + len]!) % Q;
        const a = f[j]!;
        f[j + len] = a >= t ? a - t : a - t + Q;
        f[j] = a + t >= Q ? a + t - Q : a + t;
      }
    }
  }
  return f;
}

/** FIPS 203 algorithm 10, in place. */
function inverseNtt(f: Poly): Poly {
  let k = 127;
  for (let len = 2; len <= 128; len <<= 1) {
    for (let start = 0; start < N; start += 2 * len) {
      const zeta = ZETAS[k--]!;
      for (let j = start; j < start + len; j++) {
        const t = f[j]!;
        const u = f[j + len]!;
        f[j] = t + u >= Q ? t + u - Q : t + u;
        f[j + len] = (zeta * (u - t + Q)) % Q;
      }
    }
  }
  for (let j = 0; j < N; j++) f[j] = (f[j]! * INVERSE_128) % Q;
  return f;
}

/**
 * Σ a[i]·b[i] in the NTT domain (FIPS 203 algorithm 11 for each product), reduced once at the end:
 * each base-case product is below 2·q², so three of them fit an Int32 with room to spare.
 */
function innerProduct(a: readonly Poly[], b: readonly Poly[]): Poly {
  const acc = new Int32Array(N);
  for (let term = 0; term < a.length; term++) {
    const f = a[term]!;
    const g = b[term]!;
    for (let i = 0; i < 128; i++) {
      const a0 = f[2 * i]!;
      const a1 = f[2 * i + 1]!;
      const b0 = g[2 * i]!;
      const b1 = g[2 * i + 1]!;
      acc[2 * i]! += a0 * b0 + ((a1 * b1) % Q) * GAMMAS[i]!;
      acc[2 * i + 1]! += a0 * b1 + a1 * b0;
    }
  }
  const out = new Uint16Array(N);
  for (let j = 0; j < N; j++) out[j] = acc[j]! % Q;
  return out;
}

/** a += b, in place. */
function add(a: Poly, b: Poly): Poly {
  for (let j = 0; j < N; j++) {
    const r = a[j]! + b[j]!;
    a[j] = r >= Q ? r - Q : r;
  }
  return a;
}

function shake(algorithm: 'shake128' | 'shake256', input: Uint8Array, outputLength: number): Buffer {
  return createHash(algorithm, { outputLength }).update(input).digest();
}

/** FIPS 203 algorithm 7: the matrix entry of seed ρ || j || i, sampled from SHAKE128. */
function sampleNtt(seed: Uint8Array): Poly {
  const a = new Uint16Array(N);
  let stream = shake('shake128', seed, XOF_BYTES);
  let count = 0;
  for (let pos = 0; count < N; pos += 3) {
    // The XOF's output is a prefix of any longer one: asking for more continues the same stream.
    if (pos === stream.length) stream = shake('shake128', seed, stream.length + XOF_BYTES);
    const c0 = stream[pos]!;
    const c1 = stream[pos + 1]!;
    const c2 = stream[pos + 2]!;
    const d1 = c0 | ((c1 & 0x0f) << 8);
    const d2 = (c1 >> 4) | (c2 << 4);
    if (d1 < Q) a[count++] = d1;
    if (d2 < Q && count < N) a[count++] = d2;
  }
  return a;
}

/** Â from ρ: entry [i·k + j] is SampleNTT(ρ || j || i). */
function expandMatrix(rho: Uint8Array): Poly[] {
  const seed = new Uint8Array(34);
  seed.set(rho);
  const matrix: Poly[] = [];
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < K; j++) {
      seed[32] = j;
      seed[33] = i;
      matrix.push(sampleNtt(seed));
    }
  }
  return matrix;
}

/** FIPS 203 algorithm 8 for η = 2 over PRF_2(s, nonce) = SHAKE256(s || nonce, 128 octets). */
function sampleCbd(s: Uint8Array, nonce: number): Poly {
  const input = new Uint8Array(33);
  input.set(s);
  input[32] = nonce;
  const bytes = shake('shake256', input, CBD_BYTES);
  const f = new Uint16Array(N);
  for (let i = 0; i < CBD_BYTES; i++) {
    const b = bytes[i]!;
    f[2 * i] = (b & 1) + ((b >> 1) & 1) - ((b >> 2) & 1) - ((b >> 3) & 1) + Q;
    f[2 * i + 1] = ((b >> 4) & 1) + ((b >> 5) & 1) - ((b >> 6) & 1) - ((b >> 7) & 1) + Q;
  }
  for (let j = 0; j < N; j++) if (f[j]! >= Q) f[j] = f[j]! - Q;
  return f;
}

/** ByteEncode12 of each polynomial, concatenated. */
function encode12(polys: readonly Poly[], out: Uint8Array): void {
  polys.forEach((f, p) => {
    const base = p * POLY_BYTES;
    for (let i = 0; i < N / 2; i++) {
      const a = f[2 * i]!;
      const b = f[2 * i + 1]!;
      out[base + 3 * i] = a & 0xff;
      out[base + 3 * i + 1] = (a >> 8) | ((b & 0x0f) << 4);
      out[base + 3 * i + 2] = b >> 4;
    }
  });
}

/**
 * ByteDecode12 of k polynomials; null when a coefficient is not below q (FIPS 203's modulus check
 * of an encapsulation key: ByteEncode12(ByteDecode12(ek)) must give ek back).
 */
function decode12Checked(bytes: Uint8Array): Poly[] | null {
  const polys: Poly[] = [];
  for (let p = 0; p < K; p++) {
    const f = new Uint16Array(N);
    const base = p * POLY_BYTES;
    for (let i = 0; i < N / 2; i++) {
      const b0 = bytes[base + 3 * i]!;
      const b1 = bytes[base + 3 * i + 1]!;
      const b2 = bytes[base + 3 * i + 2]!;
      const a = b0 | ((b1 & 0x0f) << 8);
      const b = (b1 >> 4) | (b2 << 4);
      if (a >= Q || b >= Q) return null;
      f[2 * i] = a;
      f[2 * i + 1] = b;
    }
    polys.push(f);
  }
  return polys;
}

/** Compress_d (round(2^d·x / q) mod 2^d; q is odd, so there are no ties). */
function compress(x: number, d: number): number {
  return Math.floor((x * (1 << d) + (Q >> 1)) / Q) & ((1 << d) - 1);
}

/** Decompress_d (round(q·y / 2^d), halves rounded up). */
function decompress(y: number, d: number): number {
  return (y * Q + (1 << (d - 1))) >> d;
}

/** ByteEncode_d(Compress_d(f)) for d = 10 (u) or 4 (v), written at `offset`. */
function encodeCompressed(f: Poly, d: number, out: Uint8Array, offset: number): void {
  let acc = 0;
  let bits = 0;
  let o = offset;
  for (let j = 0; j < N; j++) {
    acc |= compress(f[j]!, d) << bits;
    bits += d;
    while (bits >= 8) {
      out[o++] = acc & 0xff;
      acc >>>= 8;
      bits -= 8;
    }
  }
}

/** Decompress_d(ByteDecode_d(bytes)) for d = 10 or 4. */
function decodeDecompressed(bytes: Uint8Array, d: number): Poly {
  const f = new Uint16Array(N);
  const mask = (1 << d) - 1;
  let acc = 0;
  let bits = 0;
  let i = 0;
  for (let j = 0; j < N; j++) {
    while (bits < d) {
      acc |= bytes[i++]! << bits;
      bits += 8;
    }
    f[j] = decompress(acc & mask, d);
    acc >>>= d;
    bits -= d;
  }
  return f;
}

/** The public half every encryption needs: t̂, Â, and H(ek) for the FO transform. */
interface EncryptionKey {
  readonly t: readonly Poly[];
  readonly matrix: readonly Poly[];
  readonly publicKeyHash: Uint8Array;
}

/** FIPS 203 algorithm 14, K-PKE.Encrypt(ek, m, r). */
function encrypt(key: EncryptionKey, m: Uint8Array, r: Uint8Array): Uint8Array {
  const y = RANKS.map((i) => ntt(sampleCbd(r, i)));
  const ciphertext = new Uint8Array(MLKEM768_CIPHERTEXT_LENGTH);
  for (let i = 0; i < K; i++) {
    const column = RANKS.map((j) => key.matrix[j * K + i]!);
    const u = add(inverseNtt(innerProduct(column, y)), sampleCbd(r, K + i));
    encodeCompressed(u, DU, ciphertext, i * U_BYTES);
  }
  const v = add(inverseNtt(innerProduct(key.t, y)), sampleCbd(r, 2 * K));
  for (let j = 0; j < N; j++) {
    if ((m[j >> 3]! >> (j & 7)) & 1) v[j] = v[j]! + 1665 >= Q ? v[j]! + 1665 - Q : v[j]! + 1665;
  }
  encodeCompressed(v, DV, ciphertext, K * U_BYTES);
  return ciphertext;
}

/** FIPS 203 algorithm 15, K-PKE.Decrypt(dk, c): the message m'. */
function decrypt(s: readonly Poly[], ciphertext: Uint8Array): Uint8Array {
  const u = RANKS.map((i) => ntt(decodeDecompressed(ciphertext.subarray(i * U_BYTES, (i + 1) * U_BYTES), DU)));
  const v = decodeDecompressed(ciphertext.subarray(K * U_BYTES), DV);
  const su = inverseNtt(innerProduct(s, u));
  const m = new Uint8Array(32);
  for (let j = 0; j < N; j++) {
    const w = v[j]! >= su[j]! ? v[j]! - su[j]! : v[j]! - su[j]! + Q;
    m[j >> 3]! |= compress(w, 1) << (j & 7);
  }
  return m;
}

/** G(m || H(ek)) = (K, r), FIPS 203 algorithm 17 line 1. */
function sharedSecretAndCoins(m: Uint8Array, publicKeyHash: Uint8Array): { sharedSecret: Uint8Array; coins: Uint8Array } {
  const kr = createHash('sha3-512').update(m).update(publicKeyHash).digest();
  return { sharedSecret: new Uint8Array(kr.subarray(0, 32)), coins: kr.subarray(32) };
}

/** ML-KEM.Encaps_internal(ek, m), FIPS 203 algorithm 17. */
function encapsulateWith(key: EncryptionKey, m: Uint8Array): { ciphertext: Uint8Array; sharedSecret: Uint8Array } {
  const { sharedSecret, coins } = sharedSecretAndCoins(m, key.publicKeyHash);
  return { ciphertext: encrypt(key, m, coins), sharedSecret };
}

/** An encapsulation key after FIPS 203's input checks (section 7.2); throws for one that fails. */
function importEncryptionKey(publicKey: Uint8Array): EncryptionKey {
  if (publicKey.length !== MLKEM768_PUBLIC_KEY_LENGTH) {
    throw new Error(`ML-KEM-768 encapsulation key: expected ${MLKEM768_PUBLIC_KEY_LENGTH} bytes, got ${publicKey.length}`);
  }
  const t = decode12Checked(publicKey);
  if (t === null) throw new Error('ML-KEM-768 encapsulation key: a coefficient is not reduced modulo q');
  return { t, matrix: expandMatrix(publicKey.subarray(T_BYTES)), publicKeyHash: createHash('sha3-256').update(publicKey).digest() };
}

/** 0xff when a and b (equal lengths) are equal, else 0, with no branch on their contents. */
function equalMask(a: Uint8Array, b: Uint8Array): number {
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!;
  return ((difference - 1) >> 8) & 0xff;
}

/** ML-KEM.KeyGen_internal(d, z), FIPS 203 algorithms 13 and 16, keeping what decapsulation needs. */
function keyFromSeed(seed: Uint8Array): MlKem768DecapsulationKey {
  if (seed.length !== MLKEM768_SEED_LENGTH) throw new Error(`ML-KEM-768 seed: expected ${MLKEM768_SEED_LENGTH} bytes, got ${seed.length}`);
  const g = createHash('sha3-512').update(seed.subarray(0, 32)).update(Uint8Array.of(K)).digest();
  const rho = g.subarray(0, 32);
  const sigma = g.subarray(32);
  const z = seed.slice(32);
  const matrix = expandMatrix(rho);
  const s = RANKS.map((i) => ntt(sampleCbd(sigma, i)));
  const t = RANKS.map((i) => add(innerProduct(matrix.slice(i * K, (i + 1) * K), s), ntt(sampleCbd(sigma, K + i))));
  const publicKey = new Uint8Array(MLKEM768_PUBLIC_KEY_LENGTH);
  encode12(t, publicKey);
  publicKey.set(rho, T_BYTES);
  const key: EncryptionKey = { t, matrix, publicKeyHash: createHash('sha3-256').update(publicKey).digest() };
  return {
    publicKey,
    // FIPS 203 algorithm 18: re-encrypt to check, and on a mismatch the implicit rejection J(z || c).
    decapsulate(ciphertext) {
      if (ciphertext.length !== MLKEM768_CIPHERTEXT_LENGTH) {
        throw new Error(`ML-KEM-768 ciphertext: expected ${MLKEM768_CIPHERTEXT_LENGTH} bytes, got ${ciphertext.length}`);
      }
      const m = decrypt(s, ciphertext);
      const { ciphertext: again, sharedSecret } = encapsulateWith(key, m);
      const rejection = createHash('shake256', { outputLength: 32 }).update(z).update(ciphertext).digest();
      const mask = equalMask(ciphertext, again);
      for (let i = 0; i < 32; i++) sharedSecret[i] = rejection[i]! ^ ((rejection[i]! ^ sharedSecret[i]!) & mask);
      return sharedSecret;
    },
  };
}

export const javascriptMlKem768: MlKem768 = {
  implementation: 'JS + OpenSSL SHA-3',
  fromSeed: keyFromSeed,
  encapsulate(publicKey) {
    return encapsulateWith(importEncryptionKey(publicKey), randomBytes(MLKEM768_ENCAPSULATION_RANDOMNESS_LENGTH));
  },
  encapsulationKey(publicKey) {
    const key = importEncryptionKey(publicKey);
    return { encapsulate: () => encapsulateWith(key, randomBytes(MLKEM768_ENCAPSULATION_RANDOMNESS_LENGTH)) };
  },
};

/**
 * FIPS 203 encapsulation with the 32-byte message m given instead of drawn: for test vectors only
 * (node:crypto's native ML-KEM takes no randomness).
 */
export function encapsulateDerandomized(publicKey: Uint8Array, m: Uint8Array): { ciphertext: Uint8Array; sharedSecret: Uint8Array } {
  if (m.length !== MLKEM768_ENCAPSULATION_RANDOMNESS_LENGTH) {
    throw new Error(`ML-KEM-768 encapsulation message: expected ${MLKEM768_ENCAPSULATION_RANDOMNESS_LENGTH} bytes, got ${m.length}`);
  }
  return encapsulateWith(importEncryptionKey(publicKey), m);
}
