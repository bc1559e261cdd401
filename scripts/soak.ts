/**
 * `node dist/scripts/soak.js [--messages N]` (npm run soak): the adversity suite's load part at
 * any size (default 10,000 messages of 1 KiB to 5 MiB) through two real Postfix + blackpony
 * pairs and a legacy Postfix. It runs test/adversity/load.test.ts (which needs the test harness:
 * root, Postfix, dnsmasq) with vitest, bounded in time, and prints as its last line
 * `sent N, delivered N, lost 0, duplicated 0, corrupted 0`. Exit status: vitest's; 2 on bad usage.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const PROJECT_ROOT = join(import.meta.dirname, '..', '..');
const FIGURE = /^sent \d+, delivered \d+, lost \d+, duplicated \d+, corrupted \d+$/m;
/** Start-up, plus a generous 150 ms per message (about 35 ms each measured on two cores). */
const boundMs = (messages: number): number => 300_000 + messages * 150;

function parseArgs(args: string[]): number | string {
  let messages = 10_000;
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (flag === '--messages' && value !== undefined && /^[1-9][0-9]*$/.test(value)) messages = Number(value);
    else return `unexpected argument ${JSON.stringify(flag)}; usage: soak [--messages N]`;
  }
  return messages;
}

const messages = parseArgs(process.argv.slice(2));
if (typeof messages === 'string') {
  console.error(`soak: ${messages}`);
  process.exit(2);
}

const child = spawn(join(PROJECT_ROOT, 'node_modules/.bin/vitest'), ['run', 'test/adversity/load.test.ts'], {
  cwd: PROJECT_ROOT,
  env: { ...process.env, BLACKPONY_LOAD_MESSAGES: String(messages) },
  stdio: ['ignore', 'pipe', 'inherit'],
});
let output = '';
child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
  output += chunk;
  process.stdout.write(chunk);
});
const bound = setTimeout(() => {
  console.error(`soak: still running after ${boundMs(messages) / 1000} s; stopping it`);
  child.kill('SIGTERM');
}, boundMs(messages));
child.on('close', (code) => {
  clearTimeout(bound);
  const figure = FIGURE.exec(output)?.[0];
  console.log(figure ?? `soak: no result line (vitest exited ${code ?? 'on a signal'})`);
  process.exit(figure === undefined && code === 0 ? 1 : (code ?? 1));
});
