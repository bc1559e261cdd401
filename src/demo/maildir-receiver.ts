/**
 * The demo's stand-in for Postfix's local delivery: an SMTP server on loopback that accepts mail
 * for one domain and writes each message into a Maildir (written in tmp/, renamed into new/, so a
 * reader never sees half a message). Behind a blackpony inbound side it takes XCLIENT, as the
 * Postfix listener of deploy/postfix does; as a legacy MX it can offer STARTTLS.
 */
import { once } from 'node:events';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { SMTPServer, type SMTPServerAddress } from 'smtp-server';

export interface MaildirReceiverOptions {
  /** The mail domain it accepts recipients of; others get 550. */
  domain: string;
  /** Its name in the greeting. */
  hostName: string;
  /** The Maildir (tmp/, new/ and cur/ are made). */
  maildir: string;
  /** Accept XCLIENT from its client (it sits behind a blackpony inbound side). */
  xclient: boolean;
  /** A certificate for STARTTLS (PEM); without one STARTTLS is not offered. */
  tls?: { key: Buffer | string; cert: Buffer | string };
}

export interface DeliveredFile {
  path: string;
  bytes: number;
  sender: string;
  recipients: string[];
}

export interface MaildirReceiver {
  port: number;
  /** Files delivered so far, oldest first. */
  readonly delivered: readonly DeliveredFile[];
  close(): Promise<void>;
}

export class MaildirReceiverError extends Error {
  override readonly name = 'MaildirReceiverError';
}

/** A reply smtp-server sends as it is. */
function refusal(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}

/** CRLF to LF; a bare CR stays, as it is part of the content. */
function lfLineEnds(message: Buffer): Buffer {
  return Buffer.from(message.toString('latin1').replaceAll('\r\n', '\n'), 'latin1');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function startMaildirReceiver(options: MaildirReceiverOptions): Promise<MaildirReceiver> {
  for (const sub of ['tmp', 'new', 'cur']) await mkdir(join(options.maildir, sub), { recursive: true, mode: 0o700 });
  const delivered: DeliveredFile[] = [];
  let sequence = 0;
  const store = async (message: Buffer, sender: string, recipients: string[]): Promise<DeliveredFile> => {
    // Maildir file names: time, process and a counter, host; unique without locking.
    const name = `${Date.now()}.P${process.pid}Q${++sequence}.${hostname()}`;
    // Stored with LF line ends, as Postfix's local and virtual delivery write Maildir files.
    const envelope = `Return-Path: <${sender}>\nDelivered-To: ${recipients.join(', ')}\n`;
    const content = Buffer.concat([Buffer.from(envelope, 'utf8'), lfLineEnds(message)]);
    const temporary = join(options.maildir, 'tmp', name);
    await writeFile(temporary, content, { mode: 0o600 });
    const path = join(options.maildir, 'new', name);
    await rename(temporary, path);
    return { path, bytes: content.length, sender, recipients };
  };
  const server = new SMTPServer({
    name: options.hostName,
    banner: 'demo mail store',
    disableReverseLookup: true,
    authOptional: true,
    useXClient: options.xclient,
    ...(options.tls === undefined
      ? { disabledCommands: ['AUTH', 'STARTTLS'], hideSTARTTLS: true }
      : { disabledCommands: ['AUTH'], key: options.tls.key, cert: options.tls.cert }),
    logger: false,
    onRcptTo(address: SMTPServerAddress, _session, callback) {
      const domain = address.address.slice(address.address.lastIndexOf('@') + 1).toLowerCase();
      callback(domain === options.domain ? undefined : refusal(550, `5.1.1 <${address.address}>: not a mailbox of ${options.domain}`));
    },
    onData(stream, session, callback) {
      const sender = session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;
      const recipients = session.envelope.rcptTo.map((r) => r.address);
      readAll(stream)
        .then((message) => store(message, sender, recipients))
        .then(
          (file) => {
            delivered.push(file);
            callback(null, `2.0.0 stored as ${file.path}`);
          },
          (error: unknown) => callback(refusal(451, `4.3.0 ${options.maildir}: ${(error as Error).message}`)),
        );
    },
  });
  server.on('error', () => undefined); // a client resetting its connection is no concern here
  server.listen(0, '127.0.0.1');
  await Promise.race([
    once(server.server, 'listening'),
    once(server.server, 'error').then(([error]) => {
      throw new MaildirReceiverError(`${options.domain} mail store: cannot listen: ${(error as Error).message}`);
    }),
  ]);
  return {
    port: (server.server.address() as { port: number }).port,
    delivered,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
