import { describe, expect, it } from 'vitest';
import { clientKey, ClientLimiter, parseAddressRange, type ClientLease } from '../../src/xpony/client-limiter.js';
import { CONNECTION_RATE_WINDOW_MS, DEFAULT_CLIENT_LIMITS, MAX_TRACKED_CLIENTS, type ClientLimits } from '../../src/xpony/limits.js';

const LIMITS: ClientLimits = { ...DEFAULT_CLIENT_LIMITS, connectionsPerClient: 3, connectionRatePerClient: 5, pendingHandshakesPerClient: 2, exemptions: [] };

/** A limiter on a clock the test moves. */
function limiterAt(limits: Partial<ClientLimits> = {}): { limiter: ClientLimiter; advance(ms: number): void } {
  let now = 1_000;
  return { limiter: new ClientLimiter({ ...LIMITS, ...limits }, () => now), advance: (ms) => (now += ms) };
}

function lease(result: ClientLease | string): ClientLease {
  if (typeof result === 'string') throw new Error(`refused: ${result}`);
  return result;
}

describe('ClientLimiter', () => {
  it('holds simultaneous connections per address to the limit, and frees a place when one closes', () => {
    const { limiter } = limiterAt();
    const held = [1, 2, 3].map(() => lease(limiter.connect('192.0.2.1')));
    expect(limiter.connect('192.0.2.1')).toBe('connections_per_client');
    // Another address has places of its own.
    expect(typeof limiter.connect('192.0.2.2')).toBe('object');
    held[0]!.release();
    held[0]!.release(); // twice counts once
    expect(typeof limiter.connect('192.0.2.1')).toBe('object');
    expect(limiter.connect('192.0.2.1')).toBe('connections_per_client');
  });

  it('refuses connections beyond the rate, refused ones included, until the window is over', () => {
    const { limiter, advance } = limiterAt({ connectionsPerClient: 0 });
    for (let i = 0; i < 5; i++) lease(limiter.connect('2001:db8::1')).release();
    expect(limiter.connect('2001:db8::1')).toBe('connection_rate_per_client');
    advance(CONNECTION_RATE_WINDOW_MS - 1);
    expect(limiter.connect('2001:db8::1')).toBe('connection_rate_per_client');
    advance(1);
    expect(typeof limiter.connect('2001:db8::1')).toBe('object');
  });

  it('counts pending handshakes per address; a closed connection gives its handshake back', () => {
    const { limiter } = limiterAt();
    const [a, b, c] = [1, 2, 3].map(() => lease(limiter.connect('192.0.2.1')));
    expect(a!.beginHandshake()).toBe(true);
    expect(a!.beginHandshake()).toBe(true); // the same handshake
    expect(b!.beginHandshake()).toBe(true);
    expect(c!.beginHandshake()).toBe(false);
    expect(lease(limiter.connect('192.0.2.9')).beginHandshake()).toBe(true);
    a!.endHandshake();
    expect(c!.beginHandshake()).toBe(true);
    b!.release();
    expect(b!.beginHandshake()).toBe(false); // closed
    expect(lease(limiter.connect('192.0.2.1')).beginHandshake()).toBe(true);
  });

  it('counts the IPv6 addresses of one network as one client', () => {
    const { limiter } = limiterAt({ ipv6PrefixLength: 64 });
    for (const address of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff:ffff:ffff:ffff']) lease(limiter.connect(address));
    expect(limiter.connect('2001:db8:1:2:abcd::9')).toBe('connections_per_client');
    expect(typeof limiter.connect('2001:db8:1:3::1')).toBe('object');
    limiter.configure({ ...LIMITS, ipv6PrefixLength: 128 });
    expect(typeof limiter.connect('2001:db8:1:2:abcd::9')).toBe('object');
  });

  it('does not count exempt addresses (IPv4 and IPv6 ranges)', () => {
    const { limiter } = limiterAt({ exemptions: ['127.0.0.0/8', '2001:db8:1::/48'] });
    for (const address of ['127.0.0.1', '127.9.9.9', '2001:db8:1:2::5']) {
      for (let i = 0; i < 10; i++) expect(lease(limiter.connect(address)).beginHandshake()).toBe(true);
    }
    expect(limiter.tracked).toBe(0);
    for (let i = 0; i < 3; i++) lease(limiter.connect('2001:db8:2::5'));
    expect(limiter.connect('2001:db8:2::5')).toBe('connections_per_client');
  });

  it('applies new limits at once, keeping the counts (a reload)', () => {
    const { limiter } = limiterAt();
    lease(limiter.connect('192.0.2.1'));
    lease(limiter.connect('192.0.2.1'));
    limiter.configure({ ...LIMITS, connectionsPerClient: 2 });
    expect(limiter.connect('192.0.2.1')).toBe('connections_per_client');
    limiter.configure({ ...LIMITS, exemptions: ['192.0.2.0/24'] });
    expect(typeof limiter.connect('192.0.2.1')).toBe('object');
    expect(() => limiter.configure({ ...LIMITS, exemptions: ['nowhere'] })).toThrow(/exemption "nowhere"/);
  });

  it('forgets idle addresses after their window, and never remembers more than MAX_TRACKED_CLIENTS', () => {
    const { limiter, advance } = limiterAt();
    lease(limiter.connect('192.0.2.1')).release();
    const open = lease(limiter.connect('192.0.2.2'));
    expect(limiter.tracked).toBe(2);
    advance(CONNECTION_RATE_WINDOW_MS);
    lease(limiter.connect('192.0.2.3')).release();
    // The idle one is gone; the one with a connection open stays.
    expect(limiter.tracked).toBe(2);
    open.release();
    for (let i = 0; i < MAX_TRACKED_CLIENTS + 1_000; i++) lease(limiter.connect(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`)).release();
    expect(limiter.tracked).toBeLessThanOrEqual(MAX_TRACKED_CLIENTS);
  });

  it('forgets an address at once when no rate is counted', () => {
    const { limiter } = limiterAt({ connectionRatePerClient: 0 });
    const a = lease(limiter.connect('192.0.2.1'));
    expect(limiter.tracked).toBe(1);
    a.release();
    expect(limiter.tracked).toBe(0);
  });
});

describe('clientKey', () => {
  it('keeps IPv4 addresses, and cuts IPv6 addresses to their network', () => {
    expect(clientKey('192.0.2.7', 64)).toBe('192.0.2.7');
    expect(clientKey('2001:db8:1:2:3:4:5:6', 64)).toBe('2001:db8:1:2:0:0:0:0/64');
    expect(clientKey('2001:db8:1:2:3:f123:5:6', 84)).toBe('2001:db8:1:2:3:f000:0:0/84');
    expect(clientKey('2001:db8::1', 84)).toBe(clientKey('2001:db8::ffff:1', 84));
    expect(clientKey('::ffff:192.0.2.1', 112)).toBe('0:0:0:0:0:ffff:c000:0/112');
    expect(clientKey('fe80::1%eth0', 64)).toBe('fe80:0:0:0:0:0:0:0/64');
    expect(clientKey('2001:db8::1', 128)).toBe('2001:db8::1');
  });
});

describe('parseAddressRange', () => {
  it('reads addresses and CIDR ranges, and says what is wrong with others', () => {
    expect(parseAddressRange('192.0.2.7')).toEqual({ address: '192.0.2.7', prefix: 32, family: 'ipv4' });
    expect(parseAddressRange('2001:db8::/32')).toEqual({ address: '2001:db8::', prefix: 32, family: 'ipv6' });
    expect(parseAddressRange('::1')).toEqual({ address: '::1', prefix: 128, family: 'ipv6' });
    expect(parseAddressRange('10.0.0.0/33')).toBe('prefix length not in 0-32');
    expect(parseAddressRange('10.0.0.0/x')).toBe('prefix length not in 0-32');
    expect(parseAddressRange('10.0.0.0/8/8')).toBe('not an IP address or CIDR range');
    expect(parseAddressRange('localhost')).toBe('not an IP address or CIDR range');
  });
});
