/**
 * A throwaway self-signed certificate for the demo's legacy MX, made by the openssl command (Node
 * cannot make certificates). Without openssl the demo goes on without STARTTLS and says why.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

export type CertificateOutcome = { kind: 'certificate'; key: Buffer; cert: Buffer } | { kind: 'none'; reason: string };

/** A P-256 key and a certificate for `name`, valid for two days, written into `dir`. */
export async function selfSignedCertificate(dir: string, name: string): Promise<CertificateOutcome> {
  const keyFile = join(dir, `${name}.key.pem`);
  const certFile = join(dir, `${name}.cert.pem`);
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile];
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await promisify(execFile)('openssl', [...args, '-days', '2', '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`], { timeout: 20_000 });
    return { kind: 'certificate', key: await readFile(keyFile), cert: await readFile(certFile) };
  } catch (error) {
    const { code, stderr } = error as NodeJS.ErrnoException & { stderr?: string };
    const detail = stderr?.trim().split('\n')[0] || (error as Error).message.split('\n')[0];
    return { kind: 'none', reason: code === 'ENOENT' ? 'openssl is not installed' : `openssl failed: ${detail}` };
  }
}
