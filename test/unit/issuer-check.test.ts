/**
 * What `register` reads before it registers an issuer, against a real HTTPS
 * server on a loopback port: a certificate chain of a private CA with an
 * intermediate (the server sends its certificate and the intermediate; the
 * root is trusted by this test process only), and answers the bed's real
 * storage would never give (a redirect, a foreign issuer, private key material,
 * a huge body).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { sha1Thumbprint, thumbprintDecision } from '../../src/core/tls-thumbprint.ts';
import { isOidcPublisherError } from '../../src/errors.ts';
import { checkIssuer } from '../../src/sources/issuer-check.ts';

const dir = mkdtempSync(join(tmpdir(), 'issuer-check-'));
const openssl = (args: string[]) =>
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

function issue(name: string, ext: string, issuer?: string): string {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`]);
  const signer = issuer
    ? ['-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-set_serial', '9']
    : ['-key', `${name}.key`];
  openssl([
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    ...signer,
    '-days',
    '30',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  ]);
  return readFileSync(join(dir, `${name}.crt`), 'utf8');
}

const CA = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n';
const root = issue('check-root', CA);
const intermediate = issue('check-intermediate', CA, 'check-root');
const leaf = issue(
  'check-leaf',
  'basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\n',
  'check-intermediate',
);

const KEY = {
  kty: 'RSA',
  kid: 'k1',
  alg: 'RS256',
  use: 'sig',
  n: Buffer.alloc(256, 0xab).toString('base64url'),
  e: 'AQAB',
};

describe('the issuer check of register', () => {
  let server: Server;
  let base: string;
  /** What each path answers: status, body, headers. */
  const routes = new Map<string, { status: number; body: string; headers?: Record<string, string> }>();

  before(async () => {
    setDefaultCACertificates([...getCACertificates('default'), root]);
    server = createServer(
      { key: readFileSync(join(dir, 'check-leaf.key')), cert: `${leaf}${intermediate}` },
      (req, res) => {
        const r = routes.get(req.url ?? '') ?? { status: 404, body: 'no' };
        res.writeHead(r.status, { 'content-type': 'application/json', ...r.headers });
        res.end(r.body);
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An issuer at `/<name>` serving `discovery` and `jwks`. */
  function issuerAt(
    name: string,
    discovery: Record<string, unknown> = {},
    jwks: unknown = { keys: [KEY] },
  ): string {
    const issuer = `${base}/${name}`;
    routes.set(`/${name}/.well-known/openid-configuration`, {
      status: 200,
      body: JSON.stringify({ issuer, jwks_uri: `${issuer}/openid/v1/jwks`, ...discovery }),
    });
    routes.set(`/${name}/openid/v1/jwks`, { status: 200, body: JSON.stringify(jwks) });
    return issuer;
  }

  const refused = async (issuer: string, code: string, message: RegExp) =>
    assert.rejects(checkIssuer(issuer, 5_000), (err) => {
      assert.ok(isOidcPublisherError(err), String(err));
      assert.equal(err.code, code, err.message);
      assert.match(err.message, message);
      return true;
    });

  it('accepts an issuer that names itself and serves a valid JWKS, with the whole chain of the JWKS host', async () => {
    const issuer = issuerAt('good');
    const checked = await checkIssuer(issuer, 5_000);
    assert.equal(checked.jwksURI, `${issuer}/openid/v1/jwks`);
    assert.deepEqual(
      checked.keys.map((k) => k.kid),
      ['k1'],
    );
    assert.deepEqual(
      checked.jwksChain.map((c) => c.subject),
      ['CN=check-leaf', 'CN=check-intermediate', 'CN=check-root'],
      'the served certificates, completed up to the trusted root',
    );
    const decision = thumbprintDecision(checked.jwksChain, []);
    assert.deepEqual(decision, {
      needed: true,
      thumbprint: sha1Thumbprint(new X509Certificate(intermediate)),
      certificate: 'CN=check-intermediate',
    });
    assert.equal(thumbprintDecision(checked.jwksChain, [new X509Certificate(root)]).needed, false);
  });

  it('refuses a discovery document that names another issuer', async () => {
    await refused(
      issuerAt('foreign', { issuer: `${base}/other` }),
      'ISSUER_UNVERIFIED',
      /names the issuer .*\/other", not /,
    );
  });

  it('does not follow a redirect', async () => {
    routes.set('/moved/.well-known/openid-configuration', {
      status: 302,
      body: '',
      headers: { location: `${base}/good/.well-known/openid-configuration` },
    });
    await refused(`${base}/moved`, 'ISSUER_UNVERIFIED', /HTTP 302 \(a redirect to .* is not followed\)/);
  });

  it('refuses a JWKS with private key material, naming its URL', async () => {
    await refused(
      issuerAt('private', {}, { keys: [{ ...KEY, d: 'c2VjcmV0' }] }),
      'DOCUMENT_INVALID',
      /\/private\/openid\/v1\/jwks: JWKS: /,
    );
  });

  it('refuses a jwks_uri that is not https, and a document larger than 1 MiB', async () => {
    await refused(
      issuerAt('plain', { jwks_uri: 'http://127.0.0.1/jwks' }),
      'ISSUER_UNVERIFIED',
      /is not https/,
    );
    await refused(
      issuerAt('huge', { padding: 'x'.repeat(1024 * 1024) }),
      'ISSUER_UNVERIFIED',
      /larger than 1048576 bytes/,
    );
  });
});
