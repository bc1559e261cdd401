/**
 * A second, independent SMTP client for the session inside a tunnel (blackpony's own is
 * src/smtp/smtp-client.ts): nodemailer's low-level SMTPConnection on the Tunnel (a Duplex, not a net.Socket: it forwards the timeout and address fields nodemailer uses).
 * It reads the inner 220 and says EHLO; after each final reply to DATA it rekeys the client's
 * sending direction (docs/PROTOCOL.md section 5).
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Tunnel } from '../../src/xpony/tunnel.js';

export interface InnerSmtpOptions {
  /** Our name for the inner EHLO. */
  localHostName: string;
  /** Inactivity limit for the inner session, in ms (nodemailer's socketTimeout). */
  socketTimeoutMs?: number;
  /** Passed to nodemailer (false: no logging). */
  logger?: SMTPConnection.Options['logger'];
}

export class InnerSmtp {
  private constructor(
    readonly tunnel: Tunnel,
    readonly connection: SMTPConnection,
  ) {}

  static open(tunnel: Tunnel, options: InnerSmtpOptions): Promise<InnerSmtp> {
    const connection = new SMTPConnection({
      connection: tunnel as unknown as Socket,
      name: options.localHostName,
      // The tunnel is the protection; the inner server offers no STARTTLS anyway.
      ignoreTLS: true,
      logger: options.logger ?? false,
      ...(options.socketTimeoutMs === undefined ? {} : { socketTimeout: options.socketTimeoutMs }),
    });
    return new Promise((resolve, reject) => {
      connection.once('error', reject);
      connection.connect(() => {
        connection.off('error', reject);
        // Later errors surface through send(); keep them from crashing the process.
        connection.on('error', () => undefined);
        resolve(new InnerSmtp(tunnel, connection));
      });
    });
  }

  /** One mail transaction; the client rekeys after its final reply, whatever it was, as clients before 2026-12-07 did. */
  send(envelope: SMTPConnection.Envelope, message: string | Buffer | Readable): Promise<SMTPConnection.SentMessageInfo> {
    return new Promise((resolve, reject) => {
      this.connection.send(envelope, message, (err, info) => {
        this.tunnel.rekey();
        if (err) reject(err);
        else resolve(info);
      });
    });
  }

  /** QUIT; the tunnel then ends with a close frame. */
  quit(): Promise<void> {
    return new Promise((resolve) => {
      if (this.tunnel.destroyed) {
        resolve();
        return;
      }
      this.tunnel.once('close', () => resolve());
      this.connection.quit();
    });
  }
}

export function openInnerSmtp(tunnel: Tunnel, options: InnerSmtpOptions): Promise<InnerSmtp> {
  return InnerSmtp.open(tunnel, options);
}
