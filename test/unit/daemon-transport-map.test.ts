import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/daemon/config.js';
import { transportAnswer } from '../../src/daemon/transport-map.js';

const base = 'hostname: mail.example.org\nkeys: /etc/blackpony/keys\n';

describe("the transport lookup's answer for blackpony domains", () => {
  it('names the blackpony service with where the outbound side listens as next hop, in the syntax of its client', () => {
    const lmtp = parseConfig(base);
    expect(transportAnswer(lmtp, { path: '/run/blackpony/lmtp.sock' })).toBe('blackpony:unix:/run/blackpony/lmtp.sock');
    expect(transportAnswer(lmtp, { host: '127.0.0.1', port: 10587 })).toBe('blackpony:inet:[127.0.0.1]:10587');
    const smtp = parseConfig(`${base}outbound: {protocol: smtp, transport_lookup: {transport: bp-smtp}}\n`);
    expect(transportAnswer(smtp, { host: '::1', port: 10587 })).toBe('bp-smtp:[::1]:10587');
  });
});
