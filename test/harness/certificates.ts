/**
 * Throwaway X.509 material made by openssl: a test CA that issues certificates for given names,
 * and self-signed certificates. P-256 keys (RSA 2048 where asked), valid for two days.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { runCommand } from './command.js';
import { CommandFailedError } from './errors.js';
import { executable } from './requirements.js';

const OPENSSL_PATH = '/usr/bin/openssl';
export const OPENSSL = executable('openssl', OPENSSL_PATH);
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
const RSA_KEY = ['-newkey', 'rsa:2048', '-nodes'];

export interface Certificate {
  keyFile: string;
  certFile: string;
  key: Buffer;
  cert: Buffer;
}

export interface TestCa {
  /** The CA certificate, PEM. */
  pem: string;
  file: string;
  /** A certificate for `names` (DNS names or IP addresses), the first also its CN. */
  issue(label: string, names: readonly string[]): Promise<Certificate>;
}

async function openssl(args: string[]): Promise<void> {
  const result = await runCommand(OPENSSL_PATH, args);
  if (result.exitCode !== 0) throw new CommandFailedError(`openssl ${args[0]}`, result.exitCode, result.stderr);
}

function subjectAltName(names: readonly string[]): string {
  return `subjectAltName=${names.map((name) => (isIP(name) === 0 ? `DNS:${name}` : `IP:${name}`)).join(',')}`;
}

async function certificate(keyFile: string, certFile: string): Promise<Certificate> {
  return { keyFile, certFile, key: await readFile(keyFile), cert: await readFile(certFile) };
}

export async function makeTestCa(dir: string): Promise<TestCa> {
  const file = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  await openssl(['req', '-x509', ...EC_KEY, '-keyout', caKey, '-out', file, '-days', '2', '-subj', '/CN=blackpony test CA']);
  return {
    pem: await readFile(file, 'utf8'),
    file,
    async issue(label, names) {
      const [keyFile, request, certFile, extensions] = ['-key.pem', '-req.pem', '.pem', '.cnf'].map((suffix) => join(dir, `${label}${suffix}`)) as [
        string,
        string,
        string,
        string,
      ];
      await openssl(['req', ...EC_KEY, '-keyout', keyFile, '-out', request, '-subj', `/CN=${names[0]}`]);
      await writeFile(extensions, `${subjectAltName(names)}\n`);
      await openssl(['x509', '-req', '-in', request, '-CA', file, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', extensions]);
      return certificate(keyFile, certFile);
    },
  };
}

/** A self-signed certificate for `name`: a P-256 key, or with `rsa` an RSA 2048 key (Debian's snakeoil certificate, what a stock Postfix offers). */
export async function selfSignedCertificate(dir: string, label: string, name: string, key: 'ec' | 'rsa' = 'ec'): Promise<Certificate> {
  const keyFile = join(dir, `${label}-key.pem`);
  const certFile = join(dir, `${label}.pem`);
  await openssl([
    'req',
    '-x509',
    ...(key === 'ec' ? EC_KEY : RSA_KEY),
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    subjectAltName([name]),
  ]);
  return certificate(keyFile, certFile);
}
