/**
 * Per-message latency, which smtp-source does not report: one message at a time through a small
 * in-process client (src/smtp/smtp-client.ts), timed from connecting (or, on a reused
 * connection, from MAIL) to the final reply to DATA.
 */
import { SmtpClient } from '../src/smtp/smtp-client.js';

const CHUNK = 64 * 1024;
const TIMEOUT_MS = 60_000;

/** A message of about `size` octets: a short header block and lines of text. */
export function testMessage(size: number): Buffer {
  const header = 'From: <bench@source.test>\r\nTo: <bench@sink.test>\r\nSubject: latency probe\r\n\r\n';
  const line = 'La de da de da 1. La de da de da 2. La de da de da 3. La de da de da 4.\r\n';
  return Buffer.from(header + line.repeat(Math.max(1, Math.ceil(size / line.length))), 'latin1');
}

/** A client that sends messages one at a time to one port, on a new connection each or on one. */
export class TimedSender {
  private client: SmtpClient | undefined;

  constructor(
    private readonly port: number,
    private readonly reuse: boolean,
  ) {}

  /** Sends one message; resolves with the milliseconds until the final reply, which must be 250. */
  async send(message: Buffer): Promise<number> {
    const started = performance.now();
    const client = this.client ?? (await this.open());
    await expect(client, `MAIL FROM:<bench@source.test>`, 250);
    await expect(client, `RCPT TO:<bench@sink.test>`, 250);
    await expect(client, 'DATA', 354);
    for (let offset = 0; offset < message.length; offset += CHUNK) {
      if (!client.writeData(message.subarray(offset, offset + CHUNK))) await new Promise<void>((resolve) => client.onDrain(resolve));
    }
    const final = await client.endData();
    if (final.code !== 250) throw new Error(`127.0.0.1:${this.port}: end of data answered ${final.code} ${final.lines.join(' ')}`);
    const elapsed = performance.now() - started;
    if (this.reuse) this.client = client;
    else client.quit();
    return elapsed;
  }

  close(): void {
    this.client?.quit();
    this.client = undefined;
  }

  private async open(): Promise<SmtpClient> {
    const client = await SmtpClient.open({ host: '127.0.0.1', port: this.port, timeoutMs: TIMEOUT_MS, label: 'latency probe' });
    await expect(client, 'EHLO source.test', 250);
    return client;
  }
}

async function expect(client: SmtpClient, command: string, code: number): Promise<void> {
  const reply = await client.command(command);
  if (reply.code !== code) throw new Error(`latency probe: ${command} answered ${reply.code} ${reply.lines.join(' ')}`);
}
