import { stat } from 'node:fs/promises';
import { Command } from 'commander';
import { base64 } from '@scure/base';
import { fingerprint } from '../../crypto/fingerprint.js';
import { DEFAULT_STATE_DIR } from '../../daemon/config-schema.js';
import { openPinStore, pinDomain, type Pin, type PinnedKey } from '../../outbound/pins.js';
import { failCommand } from '../fail.js';

interface StateOptions {
  stateDir: string;
}

function expiry(key: PinnedKey, now: Date): string {
  return `${key.expiresAt.toISOString()}${key.expiresAt <= now ? ' (expired)' : ''}`;
}

function domainExpiry(pin: Pin): Date {
  return new Date(Math.max(...pin.keys.map((k) => k.expiresAt.getTime())));
}

function listing(pin: Pin, now: Date): string {
  const expires = domainExpiry(pin);
  const keys = pin.keys.map((k) => `  ${fingerprint(k.key)}  last seen ${k.lastSeen.toISOString()}  expires ${expiry(k, now)}\n`);
  return `${pin.domain}: ${pin.keys.length} ${pin.keys.length === 1 ? 'key' : 'keys'}, expires ${expires.toISOString()}${expires <= now ? ' (expired)' : ''}\n${keys.join('')}`;
}

function details(pin: Pin, now: Date): string {
  const keys = pin.keys.map(
    (k) =>
      `key:         ${base64.encode(k.key)}\n` +
      `fingerprint: ${fingerprint(k.key)}\n` +
      `first seen:  ${k.firstSeen.toISOString()}\n` +
      `last seen:   ${k.lastSeen.toISOString()}\n` +
      `expires:     ${expiry(k, now)}\n`,
  );
  return `domain:      ${pin.domain}\n\n${keys.join('\n')}`;
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (stats) => stats.isDirectory(),
    () => false,
  );
}

/** A subcommand that works on the pin store under --state-dir; failures are one line, exit 1. */
function pinsSubcommand(name: string, example: string, run: (stateDir: string, args: string[]) => Promise<string>): Command {
  return new Command(name)
    .option('--state-dir <dir>', 'the state directory holding pins/', DEFAULT_STATE_DIR)
    .addHelpText('after', `\nExample:\n  blackpony pins ${example}`)
    .action(async (...params: unknown[]) => {
      const command = params[params.length - 1] as Command;
      try {
        const { stateDir } = command.opts<StateOptions>();
        // A mistyped --state-dir must not read as "no pins": the directory itself has to exist.
        if (!(await isDirectory(stateDir)))
          throw new Error(`state directory ${stateDir} does not exist (check --state-dir, or state_dir in the configuration)`);
        const output = await run(stateDir, command.args);
        process.stdout.write(output);
      } catch (error) {
        failCommand(command, `pins ${name}`, error);
      }
    });
}

/** `blackpony pins list|show|forget|prune`: the Noise keys remembered for destination domains. */
export function pinsCommand(): Command {
  return new Command('pins')
    .description('show or clear the Noise keys remembered for destination domains (trust on first use)')
    .addHelpText(
      'after',
      '\nExample:\n' +
        `  blackpony pins list --state-dir ${DEFAULT_STATE_DIR}\n` +
        '  blackpony pins show example.org\n' +
        '  blackpony pins forget example.org   # after the domain changed its key without a rollover',
    )
    .addCommand(
      pinsSubcommand('list', `list --state-dir ${DEFAULT_STATE_DIR}`, async (stateDir) => {
        const store = await openPinStore(stateDir);
        const now = new Date();
        const lines = (await store.list()).map((entry) => ('pin' in entry ? listing(entry.pin, now) : `${entry.domain}: CORRUPT: ${entry.error.message}\n`));
        return lines.length === 0 ? `no pins in ${store.directory}\n` : lines.join('');
      }).description('list pinned domains with key fingerprints and expiry dates'),
    )
    .addCommand(
      pinsSubcommand('show', 'show example.org', async (stateDir, [domain]) => {
        const store = await openPinStore(stateDir);
        const now = new Date();
        const name = pinDomain(domain!);
        const entry = (await store.list()).find((e) => e.domain === name);
        if (entry === undefined) throw new Error(`no pin for ${domain}`);
        if ('error' in entry) throw entry.error;
        return details(entry.pin, now);
      })
        .argument('<domain>', 'the destination domain')
        .description("show a domain's pinned keys"),
    )
    .addCommand(
      pinsSubcommand('forget', 'forget example.org   # after the domain changed its key without a rollover', async (stateDir, [domain]) => {
        const store = await openPinStore(stateDir);
        if (!(await store.forget(domain!))) throw new Error(`no pin for ${domain}`);
        return `forgot the pin for ${domain}: the next delivery trusts the key it meets\n`;
      })
        .argument('<domain>', 'the destination domain')
        .description("delete a domain's pin (also a corrupt one)"),
    )
    .addCommand(
      pinsSubcommand('prune', `prune --state-dir ${DEFAULT_STATE_DIR}   # e.g. daily, from a timer`, async (stateDir) => {
        const store = await openPinStore(stateDir);
        const removed = await store.prune();
        return removed.length === 0 ? 'no expired pins\n' : removed.map((domain) => `removed expired pin for ${domain}\n`).join('');
      }).description('delete expired keys and pins, and temporary files left by crashed writers'),
    );
}
