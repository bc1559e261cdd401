import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { startDemo, type Demo, type DemoMessage } from '../../demo/demo.js';
import { createLogger, type Logger } from '../../log.js';
import { failCommand } from '../fail.js';

interface DemoOptions {
  dir?: string;
  keep?: boolean;
}

/** Delivery logs only when asked for with --log-level: the report is the demo's output. */
function demoLogger(command: Command): Logger {
  const global = command.parent ?? command;
  const { pretty, logLevel } = global.opts<{ pretty?: boolean; logLevel: string }>();
  return createLogger({ level: global.getOptionValueSource('logLevel') === 'cli' ? logLevel : 'warn', pretty });
}

function networkLines(demo: Demo): string[] {
  const [alpha, beta] = demo.nodes;
  const node = (site: typeof alpha): string => `  ${site.domain.padEnd(12)} MX ${site.mx}, outbound ${site.outbound}, key ${site.fingerprint}`;
  const legacy = demo.legacy;
  const tls = legacy.starttls === true ? 'STARTTLS with a self-signed certificate' : `no STARTTLS (${legacy.starttls})`;
  return [
    `blackpony demo: two blackpony hosts and one legacy MX on loopback, mail stored under ${demo.dir}`,
    '',
    node(alpha),
    node(beta),
    `  ${legacy.domain.padEnd(12)} MX ${legacy.mx}, no blackpony, ${tls}`,
  ];
}

function messageLines(message: DemoMessage): string[] {
  const lines = [`${message.from} -> ${message.to}: ${message.delivered ? 'delivered' : `NOT delivered (${message.reply})`}`];
  const field = (name: string, value: string): void => {
    lines.push(`  ${`${name}:`.padEnd(7)} ${value}`);
  };
  const record = message.record;
  if (record !== undefined && record.mode !== undefined) {
    const how =
      record.mode === 'xpony'
        ? `XPONY tunnel, sealed with age; server key ${record.fingerprint ?? '?'}${record.handshakeMs === undefined ? '' : `, handshake ${record.handshakeMs} ms`}`
        : record.mode === 'starttls'
          ? `legacy SMTP over STARTTLS (${record.tls?.protocol ?? '?'} ${record.tls?.cipher ?? '?'})`
          : 'legacy SMTP in plaintext';
    field('mode', `${how}; policy ${record.policy ?? '?'}`);
    field('peer', record.peer ?? '?');
  }
  field('size', `${message.sentBytes} bytes sent${message.file === undefined ? '' : `, ${message.file.bytes} bytes stored`}`);
  field('time', `${message.durationMs} ms, from handing it over to the final reply`);
  if (message.file !== undefined) field('file', message.file.path);
  if (message.delivered) field('trace', message.trace ?? 'no X-Pony-Trace (the legacy MX runs no blackpony)');
  return lines;
}

/** Until SIGINT or SIGTERM: the nodes stay up for the user's own mail. */
function keepRunning(demo: Demo): Promise<void> {
  const [alpha] = demo.nodes;
  process.stdout.write(
    '\nThe nodes keep running; send more mail as Postfix would, for example:\n' +
      `  swaks --server ${alpha.outbound} --from alice@alpha.demo --to bob@beta.demo\n` +
      'Ctrl-C stops them.\n',
  );
  return new Promise((resolveStop) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolveStop());
  });
}

/** `blackpony demo`: two blackpony hosts and a legacy MX on loopback, three messages, and what happened. */
export function demoCommand(): Command {
  return new Command('demo')
    .description(
      'run two blackpony hosts and a legacy mail server on loopback, send three messages and show how each travelled (no Postfix, DNS or root needed)',
    )
    .option('--dir <dir>', 'where the Maildirs go (default: a new folder under the temporary directory); kept afterwards')
    .option('--keep', 'keep the hosts running after the demo, until Ctrl-C, to send more mail through them')
    .addHelpText(
      'after',
      '\nExit status: 0 when all three messages arrived, 1 otherwise.\n' +
        '\nExample:\n' +
        '  blackpony demo\n' +
        '  blackpony demo --dir ./pony-demo --keep\n' +
        '  ls ./pony-demo/beta.demo/Maildir/new',
    )
    .action(async (options: DemoOptions, command: Command) => {
      let demo: Demo;
      let messages: DemoMessage[];
      try {
        const dir = options.dir === undefined ? await mkdtemp(join(tmpdir(), 'blackpony-demo-')) : resolve(options.dir);
        await mkdir(dir, { recursive: true });
        demo = await startDemo({ dir, logger: demoLogger(command) });
        process.stdout.write(`${networkLines(demo).join('\n')}\n\n`);
        messages = await demo.sendSamples().catch(async (error: unknown) => {
          await demo.stop();
          throw error;
        });
      } catch (error) {
        return failCommand(command, 'demo', error);
      }
      process.stdout.write(`${messages.map((message) => messageLines(message).join('\n')).join('\n\n')}\n\n`);
      const arrived = messages.filter((message) => message.delivered).length;
      process.stdout.write(
        arrived === messages.length
          ? `All ${arrived} messages arrived. Read them in ${demo.dir}/*/Maildir/new\n`
          : `${arrived} of ${messages.length} messages arrived; see above. Files are in ${demo.dir}\n`,
      );
      if (options.keep === true) await keepRunning(demo);
      await demo.stop();
      process.exitCode = arrived === messages.length ? 0 : 1;
    });
}
