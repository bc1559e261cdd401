import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

/** The DNS header's RCODE for "server failure" (RFC 1035 4.1.1). */
const SERVFAIL = 2;

export interface ServfailDns {
  port: number;
  stop(): Promise<void>;
}

/**
 * A UDP DNS server on 127.0.0.1 that answers every query SERVFAIL at once: the upstream the test
 * DNS forwards a zone to (DnsRecords.forward) when a lookup must fail temporarily, which dnsmasq
 * alone cannot produce without a timeout.
 */
export async function startServfailDns(): Promise<ServfailDns> {
  const socket = createSocket('udp4');
  socket.on('message', (query, peer) => {
    if (query.length < 12) return;
    const reply = Buffer.from(query);
    reply[2] = 0x80 | (query[2]! & 0x79); // QR, the query's opcode and RD
    reply[3] = 0x80 | SERVFAIL; // RA
    reply.writeUInt16BE(0, 6); // no answer, authority or additional records
    reply.writeUInt16BE(0, 8);
    reply.writeUInt16BE(0, 10);
    socket.send(reply, peer.port, peer.address);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return {
    port: (socket.address() as AddressInfo).port,
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
