/**
 * Writes the manual pages into dist/man at build time (`npm run build`): blackpony(8) from the
 * commander program, blackpony.yaml(5) from the configuration schema. The npm package and the
 * Debian package ship them from there.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configManPage } from '../src/cli/man/config-page.js';
import { programManPage } from '../src/cli/man/program-page.js';
import { blackponyProgram } from '../src/cli/program.js';

const folder = process.argv[2] ?? join(import.meta.dirname, '..', 'man');
mkdirSync(folder, { recursive: true });
writeFileSync(join(folder, 'blackpony.8'), programManPage(blackponyProgram()));
writeFileSync(join(folder, 'blackpony.yaml.5'), configManPage());
