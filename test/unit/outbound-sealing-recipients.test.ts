/** Which age recipient a message through a tunnel is sealed to (src/outbound/dial.ts; docs/PROTOCOL.md section 13). */
import { describe, expect, it } from 'vitest';
import { generateHybridIdentity, generateX25519Identity, identityToRecipient, parseRecipient } from '../../src/crypto/age/index.js';
import { sealingRecipients } from '../../src/outbound/dial.js';
import type { DeliveryPolicy } from '../../src/outbound/policy.js';

const RECORD = parseRecipient(identityToRecipient(generateX25519Identity()));
const ANNOUNCED_X25519 = parseRecipient(identityToRecipient(generateX25519Identity()));
const ANNOUNCED_HYBRID = parseRecipient(identityToRecipient(generateHybridIdentity()));
const POLICY: DeliveryPolicy = {
  mode: 'enforce',
  acceptableKeys: [new Uint8Array(32)],
  endorsable: [],
  ageRecipient: RECORD.toString(),
  source: 'record',
  recordLookup: 'record',
  reason: 'test',
  pinMaxAgeDays: 30,
};
const { ageRecipient: _a, ...NO_RECORD } = POLICY;
const sealTo = (policy: DeliveryPolicy, announced: (typeof RECORD)[], hybridTunnel: boolean): string[] =>
  sealingRecipients(policy, announced, hybridTunnel).map(String);

describe('sealing recipients', () => {
  it('in a version-1 (classical) tunnel: the hybrid recipient the server announced, so that one layer resists a quantum attacker', () => {
    expect(sealTo(POLICY, [ANNOUNCED_X25519, ANNOUNCED_HYBRID], false)).toEqual([ANNOUNCED_HYBRID.toString()]);
    expect(sealTo(NO_RECORD, [ANNOUNCED_HYBRID, ANNOUNCED_X25519], false)).toEqual([ANNOUNCED_HYBRID.toString()]);
  });

  it("in a hybrid (version 2) tunnel: the record's a=, else the announced X25519 one; never a second ML-KEM", () => {
    expect(sealTo(POLICY, [ANNOUNCED_X25519, ANNOUNCED_HYBRID], true)).toEqual([RECORD.toString()]);
    expect(sealTo(NO_RECORD, [ANNOUNCED_HYBRID, ANNOUNCED_X25519], true)).toEqual([ANNOUNCED_X25519.toString()]);
  });

  it('without a hybrid recipient announced, the same classic choice in either tunnel', () => {
    for (const hybridTunnel of [false, true]) {
      expect(sealTo(POLICY, [ANNOUNCED_X25519], hybridTunnel)).toEqual([RECORD.toString()]);
      expect(sealTo(NO_RECORD, [ANNOUNCED_X25519], hybridTunnel)).toEqual([ANNOUNCED_X25519.toString()]);
    }
  });
});
