/**
 * Load for the adversity suite and the soak: N test messages (scripts/adversity-messages.ts)
 * of 1 KiB to 5 MiB, one recipient each, taken in turn from the given ones (several domains),
 * sent over SMTP to a Postfix on several connections at once, each reused for its share.
 */
import { makeMessage, type TestMessage } from './adversity-messages.js';
import { formatReply, SmtpClient, type SmtpReply } from '../src/smtp/smtp-client.js';

export interface LoadPlan {
  messages: number;
  from: string;
  recipients: readonly string[];
  /** Simultaneous SMTP connections. */
  connections: number;
  /** Prefix of every Message-ID, so runs do not mix. */
  idPrefix: string;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Message i's size: one in a hundred 5 MiB, one in ten 256 KiB, the rest 1 to 16 KiB. */
export function messageSize(i: number): number {
  if (i % 100 === 99) return 5 * MiB;
  if (i % 10 === 9) return 256 * KiB;
  return KiB * (1 + (i % 16));
}

export class LoadError extends Error {
  override readonly name = 'LoadError';
}

async function expectCode(client: SmtpClient, what: string, reply: Promise<SmtpReply>, code: number): Promise<void> {
  const answered = await reply;
  if (answered.code !== code) {
    client.destroy();
    throw new LoadError(`load: ${what} answered ${formatReply(answered)}, expected ${code}`);
  }
}

/** Sends the plan's messages to host:port; resolves with what was sent (all of it accepted). */
export async function sendLoad(host: string, port: number, plan: LoadPlan): Promise<TestMessage[]> {
  const sent: TestMessage[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    const client = await SmtpClient.open({ host, port, timeoutMs: 120_000, label: 'postfix' });
    await expectCode(client, 'EHLO', client.command('EHLO load.test'), 250);
    while (next < plan.messages) {
      const i = next++;
      const message = makeMessage(`${plan.idPrefix}-${i}`, plan.from, [plan.recipients[i % plan.recipients.length]!], messageSize(i));
      await expectCode(client, 'MAIL', client.command(`MAIL FROM:<${plan.from}>`), 250);
      for (const to of message.to) await expectCode(client, `RCPT ${to}`, client.command(`RCPT TO:<${to}>`), 250);
      await expectCode(client, 'DATA', client.command('DATA'), 354);
      if (!client.writeData(Buffer.from(message.text, 'latin1'))) await new Promise<void>((resolve) => client.onDrain(resolve));
      await expectCode(client, `end of data of ${message.id}`, client.endData(), 250);
      sent.push(message);
    }
    client.quit();
  };
  await Promise.all(Array.from({ length: plan.connections }, worker));
  return sent;
}
