/**
 * smtp-server's private members that src/smtp/smtp-server-internals.ts relies on, checked on a
 * real SMTPServer, one of its connections and that connection's parser: an smtp-server update
 * that renames or removes one fails here, naming it, before anything subtler breaks.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { SMTP_SERVER_MEMBERS, SMTP_SERVER_VERSION } from '../../src/smtp/smtp-server-internals.js';

function installedVersion(): string {
  // The package's exports hide package.json's path; its main entry is under dist/.
  let dir = dirname(createRequire(import.meta.url).resolve('smtp-server'));
  while (!dir.endsWith('node_modules/smtp-server')) dir = dirname(dir);
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

function missing(object: object, members: readonly string[]): string[] {
  return members.filter((member) => !(member in object));
}

describe('smtp-server internals', () => {
  it('is the smtp-server version the adapter was written for', () => {
    expect(installedVersion(), 'src/smtp/smtp-server-internals.ts was written for another smtp-server: check every member it uses').toBe(SMTP_SERVER_VERSION);
  });

  it('still has every private member the adapter uses', async () => {
    const server = new SMTPServer({ logger: false, disabledCommands: ['AUTH'] });
    server.listen(0, '127.0.0.1');
    await once(server.server, 'listening');
    const client = connect((server.server.address() as AddressInfo).port, '127.0.0.1');
    try {
      await once(client, 'data'); // the greeting: the connection and its parser exist
      const [connection] = server.connections;
      const parser = (connection as unknown as { _parser: object })._parser;
      expect({
        SMTPServer: missing(server, SMTP_SERVER_MEMBERS.SMTPServer),
        SMTPConnection: missing(connection!, SMTP_SERVER_MEMBERS.SMTPConnection),
        SMTPStream: missing(parser, SMTP_SERVER_MEMBERS.SMTPStream),
      }).toEqual({ SMTPServer: [], SMTPConnection: [], SMTPStream: [] });
    } finally {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
