import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, expect, it } from 'vitest';
import { describeWith, type Requirement } from '../harness/requirements.js';
import { parseVectorFile, runVector, summarize, type VectorOutcome } from '../../scripts/noise-vectors.js';

// Shared vectors live next to the project: ../shared/vectors/noise (never copied into it).
const vectorFile = (name: string) => fileURLToPath(new URL(`../../../shared/vectors/noise/${name}`, import.meta.url));

function file(path: string): Requirement {
  return { name: path, check: () => (existsSync(path) ? null : `${path} absent`) };
}

function run(path: string): VectorOutcome[] {
  return parseVectorFile(readFileSync(path, 'utf8')).map(runVector);
}

const failures = (outcomes: VectorOutcome[]) => outcomes.filter((o) => o.status === 'failed');

// The only things this implementation leaves out: Curve448 and AES-GCM.
const EXPECTED_SKIP = /DH function "448"|cipher "AESGCM"/;

const CACOPHONY = vectorFile('cacophony.txt');
const SNOW = vectorFile('snow.txt');

describeWith([file(CACOPHONY)], 'Noise vectors: cacophony', () => {
  let outcomes: VectorOutcome[] = [];
  beforeAll(() => {
    outcomes = run(CACOPHONY);
  });

  it('passes every 25519/ChaChaPoly vector of XX, IK, XK, NK and KK, with every hash, handshake hash included', () => {
    const required = ['XX', 'IK', 'XK', 'NK', 'KK'].flatMap((pattern) =>
      ['SHA256', 'SHA512', 'BLAKE2s', 'BLAKE2b'].map((hash) => `Noise_${pattern}_25519_ChaChaPoly_${hash}`),
    );
    for (const name of required) {
      const outcome = outcomes.find((o) => o.name === name);
      expect(outcome, name).toBeDefined();
      expect(outcome, name).toMatchObject({ status: 'passed', handshakeHashChecked: true });
      // Handshake messages plus transport messages in both directions.
      if (outcome?.status === 'passed') expect(outcome.messagesChecked, name).toBeGreaterThanOrEqual(4);
    }
  });

  it('passes every other supported vector and skips only 448 and AESGCM', () => {
    expect(failures(outcomes)).toEqual([]);
    const { passed, skipped } = summarize(outcomes);
    // 59 patterns (fundamental, one-way, deferred, psk) x 4 hashes.
    expect(passed).toBeGreaterThanOrEqual(236);
    expect(outcomes.filter((o) => o.status === 'passed' && !o.handshakeHashChecked)).toEqual([]);
    expect(skipped).toBe(outcomes.length - passed);
    for (const outcome of outcomes) if (outcome.status === 'skipped') expect(outcome.reason).toMatch(EXPECTED_SKIP);
  });
});

describeWith([file(SNOW)], 'Noise vectors: snow', () => {
  let outcomes: VectorOutcome[] = [];
  beforeAll(() => {
    outcomes = run(SNOW);
  });

  it('passes every supported vector (including multi-psk patterns) and skips only AESGCM', () => {
    expect(failures(outcomes)).toEqual([]);
    const { passed } = summarize(outcomes);
    expect(passed).toBeGreaterThanOrEqual(204);
    for (const name of ['Noise_XX_25519_ChaChaPoly_SHA256', 'Noise_IK_25519_ChaChaPoly_BLAKE2b', 'Noise_XXpsk0+psk1+psk2+psk3_25519_ChaChaPoly_SHA512']) {
      expect(
        outcomes.find((o) => o.name === name),
        name,
      ).toMatchObject({ status: 'passed' });
    }
    for (const outcome of outcomes) if (outcome.status === 'skipped') expect(outcome.reason).toMatch(EXPECTED_SKIP);
  });
});

it('the vector runner reports a wrong ciphertext as failed, not passed', () => {
  const vector = {
    protocol_name: 'Noise_NN_25519_ChaChaPoly_SHA256',
    init_ephemeral: '893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a',
    resp_ephemeral: 'bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b',
    messages: [{ payload: '', ciphertext: '00'.repeat(32) }],
  };
  expect(runVector(vector)).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^message 1: ciphertext: expected/) });
  expect(runVector({ ...vector, protocol_name: 'Noise_NN_448_ChaChaPoly_SHA256' })).toMatchObject({ status: 'skipped' });
  expect(runVector({ ...vector, protocol_name: 'Noise_NN_25519_ChaChaPoly' })).toMatchObject({ status: 'failed' });
});
