/**
 * `npm run bench:crypto`: blackpony's crypto against node:crypto's raw ChaCha20-Poly1305 on the same
 * buffers, measured in one run (interleaved repetitions, medians) because the machine is shared.
 * Bars (issue 3): transport and sealing >= 50% of the raw ceiling; >= 2,000 XX handshakes/s.
 * ML-KEM-768 (issue 17): each implementation this Node has against noble's (the project's
 * JavaScript one everywhere, the native one where present, bar >= 5x noble); the hybrid
 * recipient's 4 KiB seal and open run on the implementation the daemon would choose here
 * (`npm run bench:crypto:node24` shows them on Node 24's native ML-KEM). XXhfs (issue 20, XPONY
 * version 2's hybrid handshake) on the ML-KEM the daemon would choose, as a share of XX's rate.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { HandshakeState, prepareDhKey } from '../src/crypto/noise/index.js';
import { x25519GenerateKeyPair } from '../src/crypto/primitives.js';
import { generateHybridIdentity, generateX25519Identity, identityToRecipient, openBytes, parseIdentity, sealBytes } from '../src/crypto/age/index.js';
import { mlkem768, MLKEM768_SEED_LENGTH, type MlKem768 } from '../src/crypto/age/mlkem.js';
import { javascriptMlKem768 } from '../src/crypto/age/mlkem-js.js';
import { loadNativeMlKem768 } from '../src/crypto/age/mlkem-native.js';
import { nobleMlKem768 } from '../test/harness/noble-mlkem.js';
import { FrameReader, FrameType, sealFrame } from '../src/xpony/frames.js';
import { MAX_FRAME_CONTENT, NOISE_PROTOCOLS } from '../src/xpony/limits.js';
import { median } from './statistics.js';

const REPETITIONS = 3;
const MIN_SECONDS = 0.4;
const XX = NOISE_PROTOCOLS['1'];
const XXHFS = NOISE_PROTOCOLS['2'];

/** Runs `op` repeatedly for at least MIN_SECONDS; returns operations per second. */
function rate(op: () => void): number {
  op(); // warm-up
  let count = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < MIN_SECONDS) {
    op();
    count++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return count / elapsed;
}

const ZERO_NONCE = Buffer.alloc(12);
const KEY = randomBytes(32);

function rawSealOpen(buffer: Buffer): void {
  const cipher = createCipheriv('chacha20-poly1305', KEY, ZERO_NONCE, { authTagLength: 16 });
  const ciphertext = Buffer.concat([cipher.update(buffer), cipher.final()]);
  const decipher = createDecipheriv('chacha20-poly1305', KEY, ZERO_NONCE, { authTagLength: 16 });
  decipher.setAuthTag(cipher.getAuthTag());
  decipher.update(ciphertext);
  decipher.final();
}

function rawSeal(buffer: Buffer): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', KEY, ZERO_NONCE, { authTagLength: 16 });
  return Buffer.concat([cipher.update(buffer), cipher.final(), cipher.getAuthTag()]);
}

function rawOpen(sealed: Buffer): void {
  const decipher = createDecipheriv('chacha20-poly1305', KEY, ZERO_NONCE, { authTagLength: 16 });
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  decipher.update(sealed.subarray(0, sealed.length - 16));
  decipher.final();
}

// A daemon prepares its static key once (OpenSSL key import) and reuses it for every handshake.
const initiatorStatic = prepareDhKey(x25519GenerateKeyPair(), 'bench initiator');
const responderStatic = prepareDhKey(x25519GenerateKeyPair(), 'bench responder');

function xxHandshake(protocolName = XX): { initiator: HandshakeState; responder: HandshakeState } {
  const initiator = new HandshakeState({ protocolName, initiator: true, s: initiatorStatic });
  const responder = new HandshakeState({ protocolName, initiator: false, s: responderStatic });
  responder.readMessage(initiator.writeMessage(new Uint8Array(0)));
  initiator.readMessage(responder.writeMessage(new Uint8Array(0)));
  responder.readMessage(initiator.writeMessage(new Uint8Array(0)));
  return { initiator, responder };
}

/** One tunnel frame of `frameSize` content octets sealed and opened as the tunnel does it (frames.ts). */
function transportRoundTrip(frameSize: number): () => void {
  const { initiator, responder } = xxHandshake();
  const send = initiator.split().send;
  const reader = new FrameReader(responder.split().receive);
  const content = randomBytes(frameSize);
  return () => {
    // The frame's pieces arrive as the reads of a socket would, one each.
    for (const piece of sealFrame(send, FrameType.data, [content])) reader.push(Buffer.from(piece.buffer, piece.byteOffset, piece.length));
  };
}

interface Row {
  what: string;
  unit: string;
  ours: number;
  ceiling: number | null;
  bar: string;
  /** null for a row that only informs. */
  pass: boolean | null;
}

const MiB = 1024 * 1024;
const identity = generateX25519Identity();
const recipient = identityToRecipient(identity);
const rows: Row[] = [];

function measure(
  what: string,
  samples: () => { ours: number; ceiling: number | null },
  unit: string,
  bar: (ours: number, ceiling: number | null) => [string, boolean | null],
): void {
  const ours: number[] = [];
  const ceiling: number[] = [];
  for (let i = 0; i < REPETITIONS; i++) {
    const sample = samples();
    ours.push(sample.ours);
    if (sample.ceiling !== null) ceiling.push(sample.ceiling);
  }
  const o = median(ours);
  const c = ceiling.length > 0 ? median(ceiling) : null;
  const [text, pass] = bar(o, c);
  rows.push({ what, unit, ours: o, ceiling: c, bar: text, pass });
}

const halfOfCeiling = (ours: number, ceiling: number | null): [string, boolean] => {
  const ratio = ours / ceiling!;
  return [`${(ratio * 100).toFixed(0)}% of raw (bar 50%)`, ratio >= 0.5];
};

measure(
  'Noise XX handshakes (both ends)',
  () => ({ ours: rate(() => xxHandshake()), ceiling: null }),
  'handshakes/s',
  (o) => [`bar 2,000/s`, o >= 2000],
);
const xxRate = rows.at(-1)!.ours;
measure(
  'Noise XXhfs handshakes (both ends)',
  () => ({ ours: rate(() => xxHandshake(XXHFS)), ceiling: null }),
  'handshakes/s',
  (o) => [`${((o / xxRate) * 100).toFixed(0)}% of XX's rate (ML-KEM: ${mlkem768.implementation})`, null],
);

for (const size of [16 * 1024, MAX_FRAME_CONTENT]) {
  const buffer = randomBytes(size);
  const ours = transportRoundTrip(size);
  measure(
    `tunnel frames sealed+opened, ${size === 16 * 1024 ? '16 KiB' : '64 KiB'}`,
    () => ({ ours: (rate(ours) * size) / 1e6, ceiling: (rate(() => rawSealOpen(buffer)) * size) / 1e6 }),
    'MB/s',
    halfOfCeiling,
  );
}

for (const size of [1 * MiB, 50 * MiB]) {
  const plaintext = randomBytes(size);
  const sealed = Buffer.from(sealBytes(plaintext, [recipient]));
  const rawSealed = rawSeal(plaintext);
  const label = size === MiB ? '1 MiB' : '50 MiB';
  measure(
    `age seal, ${label}`,
    () => ({
      ours: (rate(() => sealBytes(plaintext, [recipient])) * size) / 1e6,
      ceiling: (rate(() => rawSeal(plaintext)) * size) / 1e6,
    }),
    'MB/s',
    halfOfCeiling,
  );
  measure(
    `age open, ${label}`,
    () => ({
      ours: (rate(() => openBytes(sealed, [identity])) * size) / 1e6,
      ceiling: (rate(() => rawOpen(rawSealed)) * size) / 1e6,
    }),
    'MB/s',
    halfOfCeiling,
  );
}

const KEM_SPEEDUP_BAR = 5;
const noble = kemRates(nobleMlKem768);
const javascript = kemRates(javascriptMlKem768);
const native = loadNativeMlKem768();
const info = (): [string, null] => ['', null];
for (const op of ['encapsulate', 'encapsulate, kept key', 'decapsulate, kept key'] as const) {
  measure(`ML-KEM-768 ${op}, ${nobleMlKem768.implementation}`, () => ({ ours: noble[op](), ceiling: null }), 'ops/s', info);
  const nobleRate = rows.at(-1)!.ours;
  measure(
    `ML-KEM-768 ${op}, ${javascriptMlKem768.implementation}`,
    () => ({ ours: javascript[op](), ceiling: null }),
    'ops/s',
    (o) => [`${(o / nobleRate).toFixed(1)}x noble`, null],
  );
  if (native === null) continue;
  const nativeRates = kemRates(native);
  measure(
    `ML-KEM-768 ${op}, ${native.implementation}`,
    () => ({ ours: nativeRates[op](), ceiling: null }),
    'ops/s',
    (o) => [`${(o / nobleRate).toFixed(1)}x noble (bar ${KEM_SPEEDUP_BAR}x)`, o / nobleRate >= KEM_SPEEDUP_BAR],
  );
}

/**
 * Operations per second with `kem`: encapsulations to a key seen once (a Noise ephemeral), and to
 * and with a key kept for many (an age recipient, an identity), which is what sealing mail does.
 */
function kemRates(kem: MlKem768): Record<'encapsulate' | 'encapsulate, kept key' | 'decapsulate, kept key', () => number> {
  const key = kem.fromSeed(randomBytes(MLKEM768_SEED_LENGTH));
  const kept = kem.encapsulationKey(key.publicKey);
  const { ciphertext } = kept.encapsulate();
  return {
    encapsulate: () => rate(() => kem.encapsulate(key.publicKey)),
    'encapsulate, kept key': () => rate(() => kept.encapsulate()),
    'decapsulate, kept key': () => rate(() => key.decapsulate(ciphertext)),
  };
}

// The identity is parsed once, as the daemon does (the parse expands the seed: an ML-KEM keygen).
const hybridIdentity = parseIdentity(generateHybridIdentity());
const hybridRecipient = hybridIdentity.recipient();
const letter = randomBytes(4 * 1024);
const sealedLetter = sealBytes(letter, [hybridRecipient]);
measure(`hybrid seal, 4 KiB (${mlkem768.implementation})`, () => ({ ours: rate(() => sealBytes(letter, [hybridRecipient])), ceiling: null }), 'msgs/s', info);
measure(
  `hybrid open, 4 KiB (${mlkem768.implementation})`,
  () => ({ ours: rate(() => openBytes(sealedLetter, [hybridIdentity])), ceiling: null }),
  'msgs/s',
  info,
);

const fmt = (n: number | null): string => (n === null ? '-' : n >= 100 ? n.toFixed(0) : n.toFixed(1));
console.log(`blackpony crypto benchmark, node ${process.version} (ML-KEM: ${mlkem768.implementation}), medians of ${REPETITIONS} interleaved runs\n`);
console.log('what'.padEnd(56) + 'blackpony'.padStart(12) + 'raw node:crypto'.padStart(17) + '  unit'.padEnd(15) + 'result');
for (const row of rows) {
  console.log(
    row.what.padEnd(56) +
      fmt(row.ours).padStart(12) +
      fmt(row.ceiling).padStart(17) +
      ('  ' + row.unit).padEnd(15) +
      (row.pass === null ? row.bar : `${row.pass ? 'ok  ' : 'MISS'} ${row.bar}`),
  );
}
const missed = rows.filter((r) => r.pass === false).length;
const met = rows.filter((r) => r.pass === true).length;
console.log(`\n${met} bars met, ${missed} missed`);
