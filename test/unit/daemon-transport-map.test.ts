import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/daemon/config.js';
import { transportAnswer } from '../../src/daemon/transport-map.js';

const base = 'hostname: mail.example.org\nkeys: /etc/blackpony/keys\n';

describe("the transport lookup's answer for blackpony domains", () => {
  it('names the blackpony service with the outbound listener as next hop, in the syntax of its client', () => {
    expect(transportAnswer(parseConfig(`${base}outbound: {listen: "unix:/run/blackpony/lmtp.sock"}\n`))).toBe('blackpony:unix:/run/blackpony/lmtp.sock');
    expect(transportAnswer(parseConfig(`${base}outbound: {listen: "127.0.0.1:10587"}\n`))).toBe('blackpony:inet:[127.0.0.1]:10587');
    expect(transportAnswer(parseConfig(`${base}outbound: {listen: "[::1]:10587", protocol: smtp, transport_lookup: {transport: bp-smtp}}\n`))).toBe('bp-smtp:[::1]:10587');
  });
});
