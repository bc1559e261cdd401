#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm ci` through the prepare script). Without it, or
// without the dependencies, say so in one line instead of Node's module-resolution stack.
try {
  await import('../dist/src/cli/main.js');
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
  const root = new URL('..', import.meta.url).pathname;
  const missing = /Cannot find (?:module|package) '([^']+)'/.exec(error.message)?.[1] ?? error.message;
  process.stderr.write(`blackpony: not built or not installed (${missing} is missing): run \`npm ci\` in ${root}\n`);
  process.exit(1);
}
