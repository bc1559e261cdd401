import { Command } from 'commander';
import { applyOverrides, loadConfig, type Config, type PathOverrides } from '../../daemon/config.js';
import { start } from '../../daemon/daemon.js';
import { tuneHeapGrowth } from '../../daemon/heap-growth.js';
import { createReadiness } from '../../daemon/readiness.js';
import { createMetrics } from '../../daemon/metrics.js';
import { isWorker, reportReloaded, reportToPrimary, startPrimary, workerConfig, workerLogger, workerProcessCount } from '../../daemon/workers.js';
import { createLogger, type Logger } from '../../log.js';
import { failCommand, problemsOf } from '../fail.js';
import { errorMessage } from '../../error-message.js';

interface RunOptions extends PathOverrides {
  config: string;
  readyFile?: string;
}

function levelFromCommandLine(command: Command): boolean {
  return (command.parent ?? command).getOptionValueSource('logLevel') === 'cli';
}

/** The logger from config.log, with the command line's --pretty and --log-level taking precedence. */
function daemonLogger(config: Config, command: Command): Logger {
  const global = command.parent ?? command;
  const { pretty, logLevel } = global.opts<{ pretty?: boolean; logLevel: string }>();
  return createLogger({
    level: levelFromCommandLine(command) ? logLevel : config.log.level,
    pretty: pretty ?? config.log.pretty,
  });
}

/** What `run` runs: the daemon in this process, or a primary with its workers. */
interface Service {
  /** Reads the configuration file again and applies it. */
  reload(): Promise<void>;
  /** Drains and stops; resolves with the exit code. */
  stop(): Promise<number>;
}

/**
 * The daemon, as configured (`workers`): in this process, or as a primary that forks workers.
 * A worker (the same command, started by its primary) runs the daemon with its primary's sockets.
 */
async function startService(config: Config, logger: Logger, load: () => Promise<Config>, command: Command): Promise<Service> {
  const workers = workerProcessCount(config.workers);
  if (workers > 1 && !isWorker()) {
    const primary = await startPrimary(config, logger, workers, (code) => process.exit(code));
    return { reload: async () => primary.reload(await load()), stop: () => primary.stop() };
  }
  const ownConfig = isWorker() ? workerConfig : (next: Config): Config => next;
  const metrics = createMetrics();
  const daemon = await start(ownConfig(config), logger, metrics);
  if (isWorker()) reportToPrimary(daemon, metrics);
  return {
    async reload() {
      try {
        const next = await load();
        await daemon.reload(ownConfig(next));
        if (!levelFromCommandLine(command)) logger.level = next.log.level;
      } finally {
        if (isWorker()) reportReloaded();
      }
    },
    async stop() {
      await daemon.stop();
      return 0;
    },
  };
}

/**
 * `blackpony run --config FILE`: the daemon, until SIGTERM or SIGINT; SIGHUP reloads. It tells its
 * supervisor when every listener is bound (readiness.ts): systemd's notification socket, a ready file.
 */
export function runCommand(): Command {
  return new Command('run')
    .description('run the daemon (inbound, outbound and metrics, as configured) until SIGTERM or SIGINT; SIGHUP reloads the configuration and key file')
    .requiredOption('--config <file>', 'the configuration file')
    .option('--keys <file>', 'the key file, instead of the configuration\'s "keys"')
    .option('--state-dir <dir>', 'the state folder, instead of the configuration\'s "state_dir"')
    .option(
      '--ready-file <file>',
      'written (holding the process id) once every listener accepts connections, removed when the stop begins: for supervisors without systemd',
    )
    .addHelpText(
      'after',
      '\nUnder systemd (Type=notify, NotifyAccess=all) it sends READY=1 once every listener accepts connections.\n' +
        '\nExamples:\n  blackpony run --config /etc/blackpony/config.yaml --keys /etc/blackpony/keys\n' +
        '  blackpony run --config /etc/blackpony/config.yaml --ready-file /run/blackpony/ready',
    )
    .action(async (options: RunOptions, command: Command) => {
      const overrides: PathOverrides = { keys: options.keys, stateDir: options.stateDir };
      const load = async (): Promise<Config> => applyOverrides(await loadConfig(options.config), overrides);
      const fail = (error: unknown): never => failCommand(command, 'run', error);

      let config: Config;
      try {
        config = await load();
      } catch (error) {
        return fail(error);
      }
      const logger = workerLogger(daemonLogger(config, command));
      // A worker says nothing to the supervisor: its primary speaks once every worker listens.
      const readiness = createReadiness(isWorker() ? { logger, env: {} } : { readyFile: options.readyFile, logger });
      await readiness.starting().catch(fail);
      tuneHeapGrowth();
      const service = await startService(config, logger, load, command).catch(fail);
      // Every listener is bound here: this process's, or every worker's (workers.ts).

      // Signals are handled one at a time: a reload finishes before a stop begins, and vice versa.
      let queue = Promise.resolve();
      let stopping = false;
      const stop = (signal: NodeJS.Signals): void => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'stop requested');
        queue = queue
          .then(() => readiness.stopping())
          .then(() => service.stop())
          .then(
            (code) => process.exit(code),
            (error: unknown) => {
              logger.error({ err: errorMessage(error) }, 'stop failed');
              process.exit(1);
            },
          );
      };
      const reload = (): void => {
        if (stopping) return;
        logger.info({ signal: 'SIGHUP', config: options.config }, 'reload requested');
        queue = queue.then(async () => {
          await readiness.reloading();
          try {
            await service.reload();
          } catch (error) {
            for (const problem of problemsOf(error)) logger.error(problem);
            logger.error('reload failed; still running with the previous configuration');
          }
          // Ready again either way: the listeners never closed.
          await readiness.ready().catch((error: unknown) => logger.error((error as Error).message));
        });
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      process.on('SIGHUP', reload);
      // Only once the handlers are in place: a supervisor may signal at once, and a stop or reload
      // then waits for this announcement. One waiting for a ready file that never comes would wait
      // for ever: stop instead.
      queue = readiness.ready().catch(async (error: unknown) => {
        await service.stop();
        fail(error);
      });
    });
}
