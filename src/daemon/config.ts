import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseDocument, stringify } from 'yaml';
import { SCHEMA, type Field, type Section } from './config-schema.js';
import { describeValue } from './config-values.js';

/**
 * The configuration file: YAML with snake_case keys, validated against SCHEMA at start. The file
 * holds no secrets, only paths to them (the key file, the TLS key), so a Config may be logged whole.
 */

type CamelCase<S extends string> = S extends `${infer Head}_${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;
type ValueOf<N> = N extends Field<infer T> ? T : N extends Section ? SectionValue<N['fields']> : never;
/** The keys of optional sections, which are absent from the value when absent from the file. */
type OptionalKeys<F> = { [K in keyof F]: F[K] extends { readonly optional: true } ? K : never }[keyof F] & string;
type SectionValue<F> = {
  readonly [K in Exclude<keyof F & string, OptionalKeys<F>> as CamelCase<K>]: ValueOf<F[K]>;
} & { readonly [K in OptionalKeys<F> as CamelCase<K>]?: ValueOf<F[K]> };

/** The validated configuration, camelCase, with relative paths resolved. */
export type Config = ValueOf<typeof SCHEMA>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** One line per problem, e.g. `config: inbound.listen: expected HOST:PORT ..., got "abc"`. */
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

export interface ParseOptions {
  /** The file the text came from: relative paths resolve against its folder (else the working directory). */
  path?: string;
}

export function isSection(node: Field<unknown> | Section): node is Section {
  return 'fields' in node;
}

function camelCase(key: string): string {
  return key.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

function isMap(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Validates one section's map, collecting every problem with its dotted path. */
function readSection(section: Section, value: Record<string, unknown>, prefix: string, baseDir: string, problems: string[]): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  const where = (key: string) => `${prefix}${key}`;
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(section.fields, key)) problems.push(`config: ${where(key)}: unknown setting`);
  }
  for (const [key, node] of Object.entries(section.fields)) {
    const given = value[key];
    if (isSection(node)) {
      // `inbound:` with every setting under it commented out is YAML null: the section's defaults.
      const map = given ?? (node.optional === true ? undefined : {});
      if (map === undefined) continue;
      if (isMap(map)) result[camelCase(key)] = readSection(node, map, `${where(key)}.`, baseDir, problems);
      else problems.push(`config: ${where(key)}: expected a map, got ${describeValue(map)}`);
      continue;
    }
    if (given === undefined && node.default === undefined) {
      problems.push(`config: ${where(key)}: required${prefix === '' ? '' : ` when ${prefix.slice(0, -1)} is set`}`);
      continue;
    }
    const read = node.read(given === undefined ? node.default : given, (reason, at) => {
      problems.push(`config: ${where(key)}${at === undefined ? '' : `.${at}`}: ${reason}`);
    });
    result[camelCase(key)] = node.path === true && typeof read === 'string' ? resolve(baseDir, read) : read;
  }
  return result;
}

/**
 * The outbound listener's greeting and EHLO name. Never the host's own name: a smart-host client
 * (sendmail) that is this host reads its own name in the greeting as a mail loop and bounces.
 */
export function outboundListenerName(config: Config): string {
  return config.outbound.listenerName === '' ? `blackpony.${config.hostname}` : config.outbound.listenerName;
}

/** Rules across settings, which the per-field table cannot express. */
function crossChecks(config: Config, problems: string[]): void {
  if (config.outbound.listenerName === config.hostname) {
    problems.push(
      `config: outbound.listener_name: expected a name other than hostname, got "${config.hostname}": a smart-host client on this host (sendmail) takes its own name in the greeting for a mail loop`,
    );
  }
  if (!config.inbound.enabled && !config.outbound.enabled) {
    problems.push('config: inbound.enabled, outbound.enabled: expected at least one side enabled, got both false');
  }
  sourceAddressChecks(config.inbound, problems);
}

/** The addresses sendmail relays from unconditionally ("originated locally" in its proto.m4). */
const RELAYS_FROM = ['127.0.0.1', '::1'];

/**
 * Without XCLIENT or PROXY the MTA behind judges the address blackpony connects from, for every
 * client: it must be one that MTA does not trust to relay, so never the default 127.0.0.1.
 */
function sourceAddressChecks(inbound: Config['inbound'], problems: string[]): void {
  const unix = 'path' in inbound.postfix;
  if (unix && inbound.sourceAddress !== '') {
    problems.push(
      `config: inbound.source_address: expected "" with a unix:/PATH inbound.postfix (a socket has no source address), got "${inbound.sourceAddress}"`,
    );
  }
  if (inbound.clientIdentity !== 'none') return;
  const judged = 'the MTA behind judges this address for every client, and sendmail relays anywhere for 127.0.0.1 and ::1';
  if (unix)
    problems.push(
      'config: inbound.postfix: expected HOST:PORT with inbound.client_identity none, got a unix:/PATH socket, which has no source address to judge',
    );
  else if (inbound.sourceAddress === '')
    problems.push(`config: inbound.source_address: required with inbound.client_identity none, an address like 127.0.0.25: ${judged}`);
  else if (RELAYS_FROM.includes(inbound.sourceAddress))
    problems.push(
      `config: inbound.source_address: expected an address other than 127.0.0.1 and ::1 with inbound.client_identity none, got "${inbound.sourceAddress}": ${judged}`,
    );
}

/** Parses and validates configuration text; throws ConfigError listing every problem. */
export function parseConfig(text: string, options: ParseOptions = {}): Config {
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => {
        const position = error.linePos?.[0];
        const reason = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        const where = `${options.path === undefined ? '' : `${options.path}: `}${position === undefined ? '' : `line ${position.line}, column ${position.col}: `}`;
        return `config: ${where}${reason}`;
      }),
    );
  }
  let value: unknown;
  try {
    value = document.toJS() ?? {};
  } catch (error) {
    // Aliases are resolved here: an unknown anchor, or too many aliases (a "billion laughs" file).
    throw new ConfigError([`config: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`]);
  }
  if (!isMap(value)) throw new ConfigError([`config: expected a map of settings, got ${describeValue(value)}`]);
  const baseDir = options.path === undefined ? process.cwd() : dirname(resolve(options.path));
  const problems: string[] = [];
  const config = readSection(SCHEMA, value, '', baseDir, problems) as Config;
  if (problems.length === 0) crossChecks(config, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** Reads and validates the configuration file at `path`. */
export async function loadConfig(path: string): Promise<Config> {
  let text;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError([`config: ${path}: ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(error)})`}`]);
  }
  return parseConfig(text, { path });
}

export interface PathOverrides {
  /** From --keys; relative to the working directory. */
  keys?: string;
  /** From --state-dir; relative to the working directory. */
  stateDir?: string;
}

/** The configuration with the command line's paths in place of the file's. */
export function applyOverrides(config: Config, overrides: PathOverrides): Config {
  return {
    ...config,
    ...(overrides.keys === undefined ? {} : { keys: resolve(overrides.keys) }),
    ...(overrides.stateDir === undefined ? {} : { stateDir: resolve(overrides.stateDir) }),
  };
}

/** A value in the configuration file's own (YAML flow) form, as the default configuration writes it. */
export function yamlValue(value: unknown): string {
  return stringify(value, { flowCollectionPadding: false, collectionStyle: 'flow' }).trimEnd();
}

/** A section's lines: each setting after its description; `commented` for an optional section's example. */
function sectionLines(section: Section, indent: string, commented: boolean): string[] {
  const lines: string[] = [];
  for (const [key, node] of Object.entries(section.fields)) {
    lines.push(`${indent}# ${node.description}`);
    if (isSection(node)) {
      const absent = commented || node.optional === true;
      lines.push(`${indent}${absent ? '# ' : ''}${key}:`, ...sectionLines(node, `${indent}  `, absent));
    } else if (node.default === undefined) {
      lines.push(`${indent}# ${key}: ${node.example ?? ''}${commented ? '' : '  # required'}`);
    } else {
      lines.push(`${indent}${commented ? '# ' : ''}${key}: ${yamlValue(node.default)}`);
    }
  }
  return lines;
}

/**
 * The commented default configuration, generated from SCHEMA. Required settings (hostname, keys)
 * are commented out with an example, so the file is rejected until they are filled in.
 */
export function defaultConfigText(): string {
  return [
    '# blackpony configuration (YAML), from `blackpony default-config`.',
    "# Relative paths resolve against this file's folder. No secrets belong here, only paths to them.",
    '# Check a file with `blackpony check-config FILE`.',
    '',
    ...sectionLines(SCHEMA, '', false),
    '',
  ].join('\n');
}
