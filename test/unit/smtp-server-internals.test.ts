/**
 * smtp-server's private members that src/smtp/smtp-server-internals.ts relies on, checked on a
 * real SMTPServer, one of its connections and that connection's parser: an smtp-server update
 * that renames or removes one fails here, naming it, before anything subtler breaks. And our own
 * connections' parsers run data-feed.ts.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { describe, expect, it } from 'vitest';
import { PromptServer } from '../../src/smtp/index.js';
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
    await withFirstConnection(server, (connection, parser) => {
      expect({
        SMTPServer: missing(server, SMTP_SERVER_MEMBERS.SMTPServer),
        SMTPConnection: missing(connection, SMTP_SERVER_MEMBERS.SMTPConnection),
        SMTPStream: missing(parser, SMTP_SERVER_MEMBERS.SMTPStream),
      }).toEqual({ SMTPServer: [], SMTPConnection: [], SMTPStream: [] });
    });
  });

  it("has our connections parse DATA with data-feed.ts's native line-start search", async () => {
    await withFirstConnection(new PromptServer({ logger: false, disabledCommands: ['AUTH'] }), (_connection, parser) => {
      expect(parser._feedDataStream).not.toBe(SMTPStream.prototype._feedDataStream);
    });
  });
});

/** Runs `check` on the server's first connection and its parser, once the client has the greeting. */
async function withFirstConnection(server: SMTPServer, check: (connection: object, parser: SMTPStream) => void): Promise<void> {
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  const client = connect((server.server.address() as AddressInfo).port, '127.0.0.1');
  try {
    await once(client, 'data'); // the greeting: the connection and its parser exist
    const [connection] = server.connections;
    check(connection!, (connection as unknown as { _parser: SMTPStream })._parser);
  } finally {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
