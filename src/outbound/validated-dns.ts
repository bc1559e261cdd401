/**
 * A minimal DNS stub that asks a trusted validating resolver (on loopback) with the DO and AD bits
 * set and reports the AD bit of its reply (RFC 6840 section 5.7): whether the answer was
 * DNSSEC-validated. node:dns hides the AD bit and cannot ask for TLSA, hence this. It parses only
 * what it needs: the header, the question (skipped) and the answer records of the asked type.
 * A validating resolver answers SERVFAIL for a bogus (forged) answer: that is a failed lookup.
 */
import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { connect, isIP } from 'node:net';

export const DNS_TYPE = { MX: 15, TXT: 16, TLSA: 52 } as const;

/** EDNS0 payload size we advertise (the DNS flag day 2020 value). */
const UDP_PAYLOAD = 1232;
/** The largest reply read over TCP (a DNS message is at most 65535 bytes). */
const MAX_MESSAGE = 65_535;
/** Compression pointers followed in one name at most (a loop otherwise). */
const MAX_POINTERS = 32;
const DEFAULT_TIMEOUT_MS = 5_000;
/**
 * Queries one stub has in flight at most; more fail at once as a failed lookup (invariant 5: a
 * slow or silent resolver cannot pile up sockets and timers, one per message waiting on it).
 */
export const MAX_QUERIES_IN_FLIGHT = 64;
/** Answers kept at most per stub (the oldest go first), and for at most this long whatever their TTL. */
export const MAX_CACHED_ANSWERS = 10_000;
const MAX_CACHE_SECONDS = 3_600;

export class ValidatedDnsError extends Error {
  override readonly name = 'ValidatedDnsError';
}

/** No datagram came back in time: worth one more try. */
class UdpTimeout extends ValidatedDnsError {}

export interface ValidatedAnswer {
  /** noerror with records, nodata (the name exists, no record of the type), nxdomain. */
  kind: 'records' | 'nodata' | 'nxdomain';
  /** The rdata of the answer records of the asked type (for MX: the exchange's name, as text). */
  records: Uint8Array[];
  /** The AD bit: the validating resolver verified the answer (or the denial) with DNSSEC. */
  authenticated: boolean;
  /** How long the records may be kept, in seconds: the lowest TTL among them (0 without records). */
  ttl: number;
}

export interface ValidatingResolverAddress {
  host: string;
  port: number;
}

/** Builds the query: RD, AD, one question, an OPT record with DO. */
export function encodeQuery(id: number, name: string, type: number): Uint8Array {
  const labels = name
    .replace(/\.$/, '')
    .split('.')
    .filter((label) => label.length > 0);
  const qname: number[] = [];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'ascii');
    if (bytes.length > 63) throw new ValidatedDnsError(`dns: ${name}: label longer than 63 bytes`);
    qname.push(bytes.length, ...bytes);
  }
  qname.push(0);
  if (qname.length > 255) throw new ValidatedDnsError(`dns: ${name}: name longer than 255 bytes`);
  const out = Buffer.alloc(12 + qname.length + 4 + 11);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(0x0120, 2); // RD | AD
  out.writeUInt16BE(1, 4); // QDCOUNT
  out.writeUInt16BE(1, 10); // ARCOUNT: the OPT record
  Buffer.from(qname).copy(out, 12);
  let at = 12 + qname.length;
  out.writeUInt16BE(type, at);
  out.writeUInt16BE(1, at + 2); // IN
  at += 4;
  out.writeUInt8(0, at); // root owner
  out.writeUInt16BE(41, at + 1); // OPT
  out.writeUInt16BE(UDP_PAYLOAD, at + 3);
  out.writeUInt32BE(0x0000_8000, at + 5); // extended rcode 0, version 0, DO
  out.writeUInt16BE(0, at + 9);
  return out;
}

/**
 * The name starting at `offset`, and where it ends in the message. Compression pointers are
 * followed: each must point backwards (no loops), at most MAX_POINTERS of them.
 */
function readName(message: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let at = offset;
  let end: number | null = null;
  for (let pointers = 0; ;) {
    if (at >= message.length) throw new ValidatedDnsError('dns: malformed reply: name runs past the end');
    const length = message[at]!;
    if (length === 0) return { name: labels.join('.'), end: end ?? at + 1 };
    if ((length & 0xc0) === 0xc0) {
      if (at + 2 > message.length) throw new ValidatedDnsError('dns: malformed reply: truncated compression pointer');
      const target = message.readUInt16BE(at) & 0x3fff;
      if (target >= at) throw new ValidatedDnsError('dns: malformed reply: compression pointer does not point backwards');
      if (++pointers > MAX_POINTERS) throw new ValidatedDnsError('dns: malformed reply: too many compression pointers');
      end ??= at + 2;
      at = target;
      continue;
    }
    if ((length & 0xc0) !== 0) throw new ValidatedDnsError('dns: malformed reply: unknown label type');
    if (at + 1 + length > message.length) throw new ValidatedDnsError('dns: malformed reply: label runs past the end');
    labels.push(
      message
        .subarray(at + 1, at + 1 + length)
        .toString('latin1')
        .toLowerCase(),
    );
    at += 1 + length;
  }
}

/** Reads a reply to query `id` for `type`; throws ValidatedDnsError for what is no usable answer. */
export function decodeReply(bytes: Uint8Array, id: number, type: number): ValidatedAnswer & { truncated: boolean } {
  const message = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (message.length < 12) throw new ValidatedDnsError(`dns: malformed reply: ${message.length} bytes, shorter than a header`);
  if (message.readUInt16BE(0) !== id) throw new ValidatedDnsError('dns: reply to another query (id mismatch)');
  const flags = message.readUInt16BE(2);
  if ((flags & 0x8000) === 0) throw new ValidatedDnsError('dns: malformed reply: QR bit not set');
  const truncated = (flags & 0x0200) !== 0;
  const authenticated = (flags & 0x0020) !== 0;
  const rcode = flags & 0x000f;
  // A truncated reply is only a sign to ask over TCP: its records are not read.
  if (truncated) return { kind: 'nodata', records: [], authenticated: false, ttl: 0, truncated };
  if (rcode === 3) return { kind: 'nxdomain', records: [], authenticated, ttl: 0, truncated };
  if (rcode === 2) throw new ValidatedDnsError('dns: SERVFAIL (for a validating resolver: the answer failed DNSSEC validation, or no answer)');
  if (rcode !== 0) throw new ValidatedDnsError(`dns: rcode ${rcode}`);
  const questions = message.readUInt16BE(4);
  const answers = message.readUInt16BE(6);
  let at = 12;
  for (let i = 0; i < questions; i++) at = readName(message, at).end + 4;
  const records: Uint8Array[] = [];
  let ttl = Infinity;
  for (let i = 0; i < answers; i++) {
    at = readName(message, at).end;
    if (at + 10 > message.length) throw new ValidatedDnsError('dns: malformed reply: truncated answer record');
    const rrType = message.readUInt16BE(at);
    const length = message.readUInt16BE(at + 8);
    if (rrType === type) ttl = Math.min(ttl, message.readUInt32BE(at + 4));
    at += 10;
    if (at + length > message.length) throw new ValidatedDnsError('dns: malformed reply: record data runs past the end');
    if (rrType === type && type === DNS_TYPE.MX) {
      // The exchange name may point into the rest of the message: decoded here, kept as its text.
      if (length < 3) throw new ValidatedDnsError('dns: malformed MX record');
      records.push(Buffer.from(readName(message, at + 2).name, 'latin1'));
    } else if (rrType === type) records.push(Uint8Array.prototype.slice.call(message, at, at + length));
    at += length;
  }
  if (at > message.length) throw new ValidatedDnsError('dns: malformed reply: runs past the end');
  return { kind: records.length > 0 ? 'records' : 'nodata', records, authenticated, ttl: records.length > 0 ? ttl : 0, truncated };
}

/** The character-strings of one TXT record's rdata. */
export function txtStrings(rdata: Uint8Array): string[] {
  const strings: string[] = [];
  for (let at = 0; at < rdata.length;) {
    const length = rdata[at]!;
    if (at + 1 + length > rdata.length) throw new ValidatedDnsError('dns: malformed TXT record: string runs past the end');
    strings.push(Buffer.from(rdata.subarray(at + 1, at + 1 + length)).toString('latin1'));
    at += 1 + length;
  }
  return strings;
}

/** A server as node:dns's getServers() lists it (`IP`, `IP:PORT`, `[IPv6]:PORT`), port 53 by default. */
export function serverAddress(server: string): ValidatingResolverAddress {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(server);
  if (bracketed !== null) return { host: bracketed[1]!, port: Number(bracketed[2]) };
  if (isIP(server) !== 0) return { host: server, port: 53 };
  const withPort = /^([\d.]+):(\d+)$/.exec(server);
  if (withPort !== null && isIP(withPort[1]!) === 4) return { host: withPort[1]!, port: Number(withPort[2]) };
  throw new ValidatedDnsError(`dns: server "${server}": expected IP, IP:PORT or [IPv6]:PORT`);
}

/** A validating resolver's address is trusted for its AD bit only on loopback (the path to it cannot be forged). */
export function isLoopback(host: string): boolean {
  return (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
}

/**
 * A DNS stub asking one server directly (node:dns cannot ask for TLSA). Its AD bit means nothing
 * unless the server is a trusted validating resolver (ValidatingResolver).
 */
export class DnsStub {
  private inFlight = 0;
  /**
   * Answers with records, kept for their TTL under `type name`, each with its own AD bit: a cached
   * answer is exactly the evidence it was. Failures and denials are not kept (asked again).
   */
  private readonly answers = new Map<string, { answer: ValidatedAnswer; expiresAt: number }>();

  constructor(
    readonly address: ValidatingResolverAddress,
    private readonly timeoutMs: number = DEFAULT_TIMEOUT_MS,
    private readonly maxInFlight: number = MAX_QUERIES_IN_FLIGHT,
  ) {}

  /** `type` records of `name`, from the cache while their TTL lasts, else asked: UDP, then TCP when the reply is truncated. */
  async query(name: string, type: number): Promise<ValidatedAnswer> {
    const key = `${type} ${name.toLowerCase().replace(/\.$/, '')}`;
    const cached = this.answers.get(key);
    if (cached !== undefined && cached.expiresAt > Date.now()) return cached.answer;
    this.answers.delete(key);
    const answer = await this.askBounded(name, type);
    if (answer.kind === 'records' && answer.ttl > 0) {
      if (this.answers.size >= MAX_CACHED_ANSWERS) this.answers.delete(this.answers.keys().next().value!);
      this.answers.set(key, { answer, expiresAt: Date.now() + Math.min(answer.ttl, MAX_CACHE_SECONDS) * 1000 });
    }
    return answer;
  }

  /** One question to the server, unless too many are waiting for it already. */
  private async askBounded(name: string, type: number): Promise<ValidatedAnswer> {
    const { host, port } = this.address;
    if (this.inFlight >= this.maxInFlight)
      throw new ValidatedDnsError(`dns: ${host}:${port}: ${this.maxInFlight} queries already waiting for it; ${name} not asked`);
    this.inFlight++;
    try {
      return await this.ask(name, type);
    } finally {
      this.inFlight--;
    }
  }

  private async ask(name: string, type: number): Promise<ValidatedAnswer> {
    const id = randomInt(0, 0x10000);
    const query = encodeQuery(id, name, type);
    const udp = decodeReply(await this.exchangeUdpWithRetry(query), id, type);
    const reply = udp.truncated ? decodeReply(await this.exchangeTcp(query), id, type) : udp;
    if (reply.truncated) throw new ValidatedDnsError(`dns: ${name}: reply truncated over TCP too`);
    return { kind: reply.kind, records: reply.records, authenticated: reply.authenticated, ttl: reply.ttl };
  }

  /** TXT records as node:dns returns them (strings per record); nodata and nxdomain give []. */
  async resolveTxt(name: string): Promise<{ records: string[][]; authenticated: boolean }> {
    const answer = await this.query(name, DNS_TYPE.TXT);
    return { records: answer.records.map(txtStrings), authenticated: answer.authenticated };
  }

  /** The MX exchange names of `name`, and whether the answer validated. */
  async resolveMx(name: string): Promise<{ hosts: string[]; authenticated: boolean }> {
    const answer = await this.query(name, DNS_TYPE.MX);
    return { hosts: answer.records.map((record) => Buffer.from(record).toString('latin1')), authenticated: answer.authenticated };
  }

  /** `_25._tcp.<host>`'s TLSA RRset (DANE for SMTP, RFC 7672): whether there is one, and whether it validated. */
  async tlsa(host: string): Promise<{ present: boolean; authenticated: boolean }> {
    const answer = await this.query(`_25._tcp.${host}`, DNS_TYPE.TLSA);
    return { present: answer.kind === 'records', authenticated: answer.authenticated };
  }

  /** A lost datagram is asked once more, as node:dns does with `tries: 2`; any other failure is final. */
  private async exchangeUdpWithRetry(query: Uint8Array): Promise<Uint8Array> {
    try {
      return await this.exchangeUdp(query);
    } catch (error) {
      if (!(error instanceof UdpTimeout)) throw error;
      return this.exchangeUdp(query);
    }
  }

  private exchangeUdp(query: Uint8Array): Promise<Uint8Array> {
    const { host, port } = this.address;
    return new Promise((resolve, reject) => {
      const socket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
      const timer = setTimeout(() => finish(new UdpTimeout(`dns: no reply from ${host}:${port} within ${this.timeoutMs} ms`)), this.timeoutMs);
      const finish = (error: Error | null, reply?: Uint8Array): void => {
        clearTimeout(timer);
        socket.close();
        if (error !== null) reject(error);
        else resolve(reply!);
      };
      socket.on('error', (error) => finish(new ValidatedDnsError(`dns: ${host}:${port}: ${error.message}`)));
      // Only the server's own address may answer (connect() filters the rest).
      socket.connect(port, host, () => socket.send(query));
      socket.on('message', (reply) => finish(null, reply));
    });
  }

  private exchangeTcp(query: Uint8Array): Promise<Uint8Array> {
    const { host, port } = this.address;
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const chunks: Buffer[] = [];
      let received = 0;
      const timer = setTimeout(() => finish(new ValidatedDnsError(`dns: no TCP reply from ${host}:${port} within ${this.timeoutMs} ms`)), this.timeoutMs);
      const finish = (error: Error | null, reply?: Uint8Array): void => {
        clearTimeout(timer);
        socket.destroy();
        if (error !== null) reject(error);
        else resolve(reply!);
      };
      socket.on('error', (error) => finish(new ValidatedDnsError(`dns: ${host}:${port} (TCP): ${error.message}`)));
      socket.on('connect', () => {
        const length = Buffer.alloc(2);
        length.writeUInt16BE(query.length);
        socket.write(Buffer.concat([length, query]));
      });
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        if (received > MAX_MESSAGE + 2) return finish(new ValidatedDnsError(`dns: ${host}:${port} (TCP): reply longer than ${MAX_MESSAGE} bytes`));
        const all = Buffer.concat(chunks);
        if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) finish(null, all.subarray(2, 2 + all.readUInt16BE(0)));
      });
      socket.on('end', () => finish(new ValidatedDnsError(`dns: ${host}:${port} (TCP): closed before a whole reply`)));
    });
  }
}

/** The stub for a validating resolver on loopback: its AD bit is trusted. */
export class ValidatingResolver extends DnsStub {
  constructor(address: ValidatingResolverAddress, timeoutMs?: number, maxInFlight?: number) {
    if (!isLoopback(address.host))
      throw new ValidatedDnsError(`dns: validating resolver ${address.host}: its AD bit is trusted only on loopback (127.0.0.0/8 or ::1)`);
    super(address, timeoutMs, maxInFlight);
  }

  /** Whether `_25._tcp.<host>` has a TLSA RRset that validated. */
  async hasValidatedTlsa(host: string): Promise<boolean> {
    const { present, authenticated } = await this.tlsa(host);
    return present && authenticated;
  }
}
