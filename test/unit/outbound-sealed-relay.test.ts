/** The sealed relay's rules (src/outbound/sealed-relay.ts; docs/PROTOCOL.md section 13). */
import { describe, expect, it } from 'vitest';
import { generateHybridIdentity, identityToRecipient, parseRecipient } from '../../src/crypto/age/index.js';
import { armoredSealedSize } from '../../src/xpony/sealed-message.js';
import type { DeliveryPolicy } from '../../src/outbound/policy.js';
import { sealedRelayMailParameters, sealedRelayRecipients } from '../../src/outbound/sealed-relay.js';

const RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
const POLICY: DeliveryPolicy = {
  mode: 'enforce',
  acceptableKeys: [new Uint8Array(32)],
  endorsable: [],
  ageRecipient: RECIPIENT,
  sealedRelay: true,
  source: 'record',
  recordLookup: 'record',
  reason: 'test',
  pinMaxAgeDays: 30,
};

describe('sealed relay', () => {
  it("seals to the record's a= only under enforce with a vouched relay=sealed", () => {
    expect(sealedRelayRecipients(POLICY)?.map(String)).toEqual([RECIPIENT]);
    const { sealedRelay: _tag, ...withoutTag } = POLICY;
    expect(sealedRelayRecipients(withoutTag)).toBeUndefined();
    const { ageRecipient: _a, ...withoutRecipient } = POLICY;
    expect(sealedRelayRecipients(withoutRecipient)).toBeUndefined();
    expect(sealedRelayRecipients({ ...POLICY, mode: 'testing' })).toBeUndefined();
    expect(sealedRelayRecipients({ ...POLICY, mode: 'opportunistic' })).toBeUndefined();
  });

  it('tells the relay the armored size and no BODY=8BITMIME; keeps the other parameters', () => {
    const to = [parseRecipient(RECIPIENT)];
    expect(sealedRelayMailParameters({ SIZE: '1000', BODY: '8BITMIME', SMTPUTF8: true, RET: 'HDRS' }, to)).toEqual({
      SIZE: String(armoredSealedSize(1000, to)),
      SMTPUTF8: true,
      RET: 'HDRS',
    });
    expect(armoredSealedSize(1000, to)).toBeGreaterThan((1000 * 4) / 3);
    // A hybrid recipient's stanza carries an ML-KEM ciphertext: about 2 KB more, armored.
    const hybrid = [parseRecipient(identityToRecipient(generateHybridIdentity()))];
    expect(armoredSealedSize(1000, hybrid) - armoredSealedSize(1000, to)).toBeGreaterThan(1900);
    expect(sealedRelayMailParameters({ SIZE: 'many', ENVID: 'x' }, to)).toEqual({ ENVID: 'x' });
    expect(sealedRelayMailParameters({}, to)).toEqual({});
  });
});
