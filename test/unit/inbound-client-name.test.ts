import { describe, expect, it } from 'vitest';
import { lookupClientName, NAME_TEMPORARILY_UNAVAILABLE as TEMP, NAME_UNAVAILABLE as NONE } from '../../src/inbound/client-name.js';
import { dnsError, FakeResolver } from './fake-resolver.js';

function resolver(setup: (r: FakeResolver) => void): FakeResolver {
  const r = new FakeResolver();
  setup(r);
  return r;
}

describe('lookupClientName: what XCLIENT tells Postfix about the client', () => {
  it('a PTR name that resolves back to the address is the name (trailing dot dropped)', async () => {
    const r = resolver((r) => {
      r.ptr.set('192.0.2.1', ['mail.example.org.']);
      r.a.set('mail.example.org', ['192.0.2.9', '192.0.2.1']);
    });
    expect(await lookupClientName('192.0.2.1', r)).toEqual({ name: 'mail.example.org', reverseName: 'mail.example.org' });
    expect(r.queries).toEqual(['PTR 192.0.2.1', 'A mail.example.org']);
  });

  it('IPv6: AAAA answers match whatever way the address is written', async () => {
    const r = resolver((r) => {
      r.ptr.set('2001:db8::1', ['mail.example.org']);
      r.aaaa.set('mail.example.org', ['2001:0db8:0000:0000:0000:0000:0000:0001']);
    });
    expect(await lookupClientName('2001:db8::1', r)).toEqual({ name: 'mail.example.org', reverseName: 'mail.example.org' });
  });

  it('a PTR name that does not resolve back is only the reverse name', async () => {
    const r = resolver((r) => {
      r.ptr.set('192.0.2.1', ['forged.example.org']);
      r.a.set('forged.example.org', ['198.51.100.7']);
    });
    expect(await lookupClientName('192.0.2.1', r)).toEqual({ name: NONE, reverseName: 'forged.example.org' });
  });

  it('a PTR name without addresses is only the reverse name; a temporary failure there is temporary', async () => {
    const gone = resolver((r) => r.ptr.set('192.0.2.1', ['gone.example.org']));
    expect(await lookupClientName('192.0.2.1', gone)).toEqual({ name: NONE, reverseName: 'gone.example.org' });
    const failing = resolver((r) => {
      r.ptr.set('192.0.2.1', ['slow.example.org']);
      r.a.set('slow.example.org', dnsError('ETIMEOUT'));
    });
    expect(await lookupClientName('192.0.2.1', failing)).toEqual({ name: TEMP, reverseName: 'slow.example.org' });
  });

  it('no PTR record: no name; a DNS failure: no name for now', async () => {
    expect(await lookupClientName('192.0.2.1', new FakeResolver())).toEqual({ name: NONE, reverseName: NONE });
    for (const code of ['ETIMEOUT', 'ESERVFAIL', 'ECONNREFUSED', 'EREFUSED']) {
      const r = resolver((r) => r.ptr.set('192.0.2.1', dnsError(code)));
      expect(await lookupClientName('192.0.2.1', r), code).toEqual({ name: TEMP, reverseName: TEMP });
    }
  });

  it('PTR answers that are not host names Postfix takes are skipped, and never asked for', async () => {
    const bad = ['1.2.3.4', 'a b.example.org', '-x.example.org', 'x'.repeat(64) + '.example.org', 'NAME=x', '[UNAVAILABLE]', 'x.example.org\r\nRCPT'];
    const r = resolver((r) => r.ptr.set('192.0.2.1', bad));
    expect(await lookupClientName('192.0.2.1', r)).toEqual({ name: NONE, reverseName: NONE });
    expect(r.queries).toEqual(['PTR 192.0.2.1']);
    const second = resolver((r) => {
      r.ptr.set('192.0.2.1', ['1.2.3.4', 'good_host.example.org']);
      r.a.set('good_host.example.org', ['192.0.2.1']);
    });
    expect((await lookupClientName('192.0.2.1', second)).name).toBe('good_host.example.org');
  });
});
