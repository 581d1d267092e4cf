/**
 * The bed's own certificate authority and the certificates and keys its servers
 * and clients use, made with the openssl command line.
 */
import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface CertFiles {
  cert: string;
  key: string;
}

export interface Ca extends CertFiles {
  dir: string;
}

export function createCa(dir: string, commonName: string): Ca {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '3650',
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    ],
    dir,
  );
  return { dir, cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
}

export interface IssueOptions {
  commonName: string;
  organizations?: readonly string[];
  /** Server certificate for these IPs and DNS names; absent means client certificate. */
  serverNames?: readonly string[];
}

export function issueCert(ca: Ca, name: string, opts: IssueOptions): CertFiles {
  const key = join(ca.dir, `${name}.key`);
  const cert = join(ca.dir, `${name}.crt`);
  const ext = join(ca.dir, `${name}.ext`);
  const subject = [...(opts.organizations ?? []).map((o) => `/O=${o}`), `/CN=${opts.commonName}`].join('');
  const lines = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment'];
  if (opts.serverNames) {
    lines.push('extendedKeyUsage=serverAuth');
    const san = opts.serverNames.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    lines.push(`subjectAltName=${san}`);
  } else {
    lines.push('extendedKeyUsage=clientAuth');
  }
  writeFileSync(ext, `${lines.join('\n')}\n`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], ca.dir);
  openssl(['req', '-new', '-key', key, '-subj', subject, '-out', `${name}.csr`], ca.dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-days',
      '3650',
      '-extfile',
      ext,
      '-out',
      cert,
    ],
    ca.dir,
  );
  return { cert, key };
}

export interface SigningKey {
  privateKeyFile: string;
  publicKeyFile: string;
  /** The key ID kube-apiserver gives this key: base64url(SHA-256(DER SPKI)). */
  kid: string;
}

export function createSigningKey(dir: string, name: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateKeyFile = join(dir, `${name}.key`);
  const publicKeyFile = join(dir, `${name}.pub`);
  writeFileSync(privateKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));
  return { privateKeyFile, publicKeyFile, kid: keyIdOf(publicKey.export({ type: 'spki', format: 'pem' })) };
}

export function keyIdOf(publicKeyPem: string | Buffer): string {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64url');
}
