/** The PROXY v1 line blackpony puts first on a Postfix connection. */
import { describe, expect, it } from 'vitest';
import { proxyLine } from '../../src/inbound/proxy-protocol.js';

describe('PROXY protocol v1 line', () => {
  it('names an IPv4 client and server, ports last', () => {
    expect(proxyLine({ address: '192.0.2.7', port: 40123 }, { address: '198.51.100.1', port: 25 })).toBe('PROXY TCP4 192.0.2.7 198.51.100.1 40123 25\r\n');
  });

  it('unmaps IPv4 addresses seen on a dual-stack socket', () => {
    expect(proxyLine({ address: '::ffff:192.0.2.7', port: 1 }, { address: '::FFFF:198.51.100.1', port: 25 })).toBe(
      'PROXY TCP4 192.0.2.7 198.51.100.1 1 25\r\n',
    );
  });

  it('says TCP6 for IPv6', () => {
    expect(proxyLine({ address: '2001:db8::7', port: 40123 }, { address: '2001:db8::1', port: 25 })).toBe('PROXY TCP6 2001:db8::7 2001:db8::1 40123 25\r\n');
  });

  it('refuses a client and server of different address families', () => {
    expect(() => proxyLine({ address: '192.0.2.7', port: 1 }, { address: '2001:db8::1', port: 25 })).toThrow(/not of one address family/);
  });
});
