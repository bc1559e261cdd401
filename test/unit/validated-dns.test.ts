import { describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { decodeReply, DnsStub, encodeQuery, serverAddress, txtStrings, ValidatedDnsError, ValidatingResolver } from '../../src/outbound/validated-dns.js';

/** A reply to `encodeQuery(id, name, type)`: the query turned into a reply with the given flags and answers. */
function reply(id: number, flags: number, answers: Buffer[]): Buffer {
  const query = Buffer.from(encodeQuery(id, 'x.test', 16));
  const question = query.subarray(12, query.length - 11);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, question, ...answers]);
}

/** A TXT answer whose owner is a pointer to the question name (offset 12). */
function txt(value: string, owner: Buffer = Buffer.from([0xc0, 12]), ttl = 60): Buffer {
  const data = Buffer.concat([Buffer.from([value.length]), Buffer.from(value)]);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(16, 0);
  fixed.writeUInt16BE(1, 2);
  fixed.writeUInt32BE(ttl, 4);
  fixed.writeUInt16BE(data.length, 8);
  return Buffer.concat([owner, fixed, data]);
}

describe('validated DNS stub', () => {
  it('asks with RD, AD and an OPT record with DO', () => {
    const query = Buffer.from(encodeQuery(7, 'a.test', 16));
    expect(query.readUInt16BE(2)).toBe(0x0120);
    expect(query.readUInt16BE(10)).toBe(1);
    expect(query.readUInt32BE(query.length - 6) & 0x8000).toBe(0x8000);
  });

  it('reads TXT answers and the AD bit', () => {
    expect(decodeReply(reply(7, 0x81a0, [txt('v=pony1')]), 7, 16)).toMatchObject({ kind: 'records', authenticated: true });
    expect(txtStrings(decodeReply(reply(7, 0x8180, [txt('v=pony1')]), 7, 16).records[0]!)).toEqual(['v=pony1']);
    expect(decodeReply(reply(7, 0x8180, [txt('v')]), 7, 16).authenticated).toBe(false);
    expect(decodeReply(reply(7, 0x8183, []), 7, 16).kind).toBe('nxdomain');
  });

  it('treats SERVFAIL (bogus) as a failed lookup, never as no record', () => {
    expect(() => decodeReply(reply(7, 0x8182, []), 7, 16)).toThrow(/SERVFAIL/);
  });

  it('rejects malformed replies with a clear error', () => {
    expect(() => decodeReply(Buffer.alloc(5), 7, 16)).toThrow(/shorter than a header/);
    expect(() => decodeReply(reply(8, 0x8180, []), 7, 16)).toThrow(/id mismatch/);
    expect(() => decodeReply(reply(7, 0x0100, []), 7, 16)).toThrow(/QR bit/);
    expect(() => decodeReply(reply(7, 0x8180, [txt('v').subarray(0, 8)]), 7, 16)).toThrow(ValidatedDnsError);
    // A pointer to itself (forward or looping) is refused, not followed.
    const looping = reply(7, 0x8180, []);
    const selfPointer = Buffer.from([0xc0, looping.length & 0xff]);
    expect(() => decodeReply(Buffer.concat([reply(7, 0x8180, [txt('v', selfPointer)]).subarray(0, looping.length), txt('v', selfPointer)]), 7, 16)).toThrow(
      /backwards/,
    );
    expect(() => txtStrings(Buffer.from([5, 65]))).toThrow(/past the end/);
  });

  it('trusts the AD bit only from a resolver on loopback', () => {
    expect(() => new ValidatingResolver({ host: '192.0.2.1', port: 53 })).toThrow(/only on loopback/);
    expect(new ValidatingResolver({ host: '127.0.0.53', port: 53 }).address.port).toBe(53);
  });

  it('reads the resolver addresses node:dns lists', () => {
    expect(serverAddress('127.0.0.53')).toEqual({ host: '127.0.0.53', port: 53 });
    expect(serverAddress('127.0.0.1:5353')).toEqual({ host: '127.0.0.1', port: 5353 });
    expect(serverAddress('[::1]:5353')).toEqual({ host: '::1', port: 5353 });
    expect(serverAddress('::1')).toEqual({ host: '::1', port: 53 });
    expect(() => serverAddress('resolver.example')).toThrow(/expected IP, IP:PORT or \[IPv6\]:PORT/);
  });

  it('bounds the queries waiting on a resolver that never answers: more fail at once, the waiting ones time out after a second try', async () => {
    // The attacker's resolver: reads every query, answers none.
    const silent = createSocket('udp4');
    let received = 0;
    silent.on('message', () => received++);
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const stub = new DnsStub({ host: '127.0.0.1', port: silent.address().port }, 1_000, 3);
      const waiting = [1, 2, 3].map((i) =>
        stub.query(`q${i}.test`, 16).then(
          () => 'answered',
          (error: Error) => error.message,
        ),
      );
      await expect(stub.query('q4.test', 16)).rejects.toThrow(/3 queries already waiting for it; q4\.test not asked/);
      expect(await Promise.all(waiting)).toEqual(Array(3).fill(expect.stringMatching(/no reply from 127\.0\.0\.1:\d+ within 1000 ms/)));
      expect(received).toBe(6); // each asked twice (a lost datagram is asked again), then given up
      // The slots are free again once those timed out.
      await expect(stub.query('q5.test', 16)).rejects.toThrow(/no reply/);
    } finally {
      silent.close();
    }
  });

  it('keeps an answer for its TTL with its own AD bit, asks again for one without TTL, and never keeps a failure', async () => {
    // A resolver answering TXT: AD and TTL 300 for signed.test names, no AD and TTL 0 for zero.test, SERVFAIL for bad.test.
    const server = createSocket('udp4');
    const asked: string[] = [];
    server.on('message', (query: Buffer, peer) => {
      const name = query.subarray(13, 13 + query[12]!).toString();
      asked.push(name);
      const question = query.subarray(12, query.length - 11);
      const header = Buffer.alloc(12);
      query.copy(header, 0, 0, 2);
      const bad = name === 'bad';
      header.writeUInt16BE(bad ? 0x8182 : name === 'signed' ? 0x81a0 : 0x8180, 2);
      header.writeUInt16BE(1, 4);
      header.writeUInt16BE(bad ? 0 : 1, 6);
      server.send(Buffer.concat([header, question, ...(bad ? [] : [txt('v=pony1', undefined, name === 'signed' ? 300 : 0)])]), peer.port, peer.address);
    });
    server.bind(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const stub = new DnsStub({ host: '127.0.0.1', port: server.address().port }, 2_000);
      for (let i = 0; i < 2; i++) {
        expect(await stub.query('signed.test', 16)).toMatchObject({ kind: 'records', authenticated: true, ttl: 300 });
        expect(await stub.query('zero.test', 16)).toMatchObject({ kind: 'records', authenticated: false, ttl: 0 });
        await expect(stub.query('bad.test', 16)).rejects.toThrow(/SERVFAIL/);
      }
      expect(asked).toEqual(['signed', 'zero', 'bad', 'zero', 'bad']);
    } finally {
      server.close();
    }
  });
});
