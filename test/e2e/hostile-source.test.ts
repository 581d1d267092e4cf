/**
 * Bad input, through the real operator: hostile source documents and bad
 * Secrets are each refused with a reason and a message that names the
 * problem, nothing is published, and the bucket keeps the last good documents.
 *
 * The source documents come from a loopback HTTPS stand-in for an API server
 * (a certificate of the bed CA, reached through a kubeconfig Secret with the
 * bed CA and a dummy token). This is the only place a stand-in is used, and
 * only because a real API server cannot be made to serve these documents:
 * it renders its discovery document and JWKS itself. Everything else is real:
 * the API server the operator runs against, its Secrets, MinIO, the operator
 * process as its least-privilege ServiceAccount.
 *
 * One publisher (the operator is told to reconcile only it, so it can share
 * the test run's bed) publishes once from a good stand-in response; then each
 * case switches the stand-in (or the spec's Secret references), bumps the
 * generation with a harmless spec change so the operator syncs at once, and
 * waits for Ready=False with the expected reason at that generation.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { Bed } from '../bed/bed.ts';
import { createMinioUser } from '../bed/minio-admin.ts';
import { issueCert } from '../bed/pki.ts';
import { createS3Client } from '../bed/s3.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  createSecret,
  installOperator,
  metricSum,
  OperatorProcess,
  type PublisherView,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const NAME = 'hostile-source';
const PREFIX = 'public/hostile-source';
const DISCOVERY = '/.well-known/openid-configuration';
const JWKS = '/openid/v1/jwks';
const KEPT = /the bucket keeps the last published documents$/;

type Serve = (path: string, req: IncomingMessage, res: ServerResponse) => void;

function json(res: ServerResponse, body: unknown, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

interface Case {
  name: string;
  serve: Serve;
  reason: string;
  /** What the Ready message must say. */
  message: RegExp;
  /** The message says the bucket keeps the last good documents (documents that were read and refused). */
  kept?: boolean;
}

describe('hostile source documents and bad Secrets are refused; the bucket keeps the last good documents', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  let standIn: Server;
  let standInURL: string;
  let serve: Serve;
  let generation = 0;
  let tmp: string;
  const useShared = useBed(undefined, {
    beforeStop: async () => {
      await op?.stop('SIGTERM');
    },
  });
  after(async () => {
    standIn?.closeAllConnections();
    await new Promise<void>((resolve) => (standIn ? standIn.close(() => resolve()) : resolve()));
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { n, e } = publicKey.export({ format: 'jwk' });
  const key = { kty: 'RSA', kid: 'hostile-1', alg: 'RS256', use: 'sig', n, e };
  let issuer: string;
  const discovery = () => ({
    issuer,
    jwks_uri: `${standInURL}${JWKS}`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
  });
  const good: Serve = (path, _req, res) => json(res, path === DISCOVERY ? discovery() : { keys: [key] });
  const withJwks =
    (body: unknown): Serve =>
    (path, req, res) =>
      path === JWKS ? json(res, body) : good(path, req, res);
  const withDiscovery =
    (body: () => unknown): Serve =>
    (path, req, res) =>
      path === DISCOVERY ? json(res, body()) : good(path, req, res);

  /** The published objects as the bucket holds them: bytes, ETag, Last-Modified, Cache-Control. */
  async function bucket(): Promise<string[]> {
    const client = createS3Client(bed.state.s3, bed.ca);
    try {
      return await Promise.all(
        [`${PREFIX}${DISCOVERY}`, `${PREFIX}${JWKS}`].map(async (Key) => {
          const res = await client.send(new GetObjectCommand({ Bucket: bed.state.s3.bucket, Key }));
          return JSON.stringify([
            await res.Body?.transformToString(),
            res.ETag,
            res.LastModified?.toISOString(),
            res.CacheControl,
          ]);
        }),
      );
    } finally {
      client.destroy();
    }
  }

  async function writes(): Promise<number> {
    const o = op;
    assert.ok(o);
    const text = await o.metrics();
    return metricSum(text, 'oidc_publisher_storage_writes_total');
  }

  /** Applies a spec change (always a new generation) and waits for Ready at that generation. */
  async function sync(
    spec: Record<string, unknown>,
    status: 'True' | 'False',
    reason: string,
  ): Promise<PublisherView> {
    generation++;
    const patch = { ...spec, verification: { timeout: `${5 + (generation % 2)}s` } };
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: patch }),
    ]);
    return waitForReady(bed, NAME, status, reason, 30_000);
  }

  before(async () => {
    bed = useShared();
    tmp = mkdtempSync(join(tmpdir(), 'oidc-hostile-'));
    const caFile = bed.state.caFile;
    const cert = issueCert({ dir: tmp, cert: caFile, key: join(dirname(caFile), 'ca.key') }, 'stand-in', {
      commonName: '127.0.0.1',
      serverNames: ['127.0.0.1'],
    });
    serve = good;
    standIn = createServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (path !== DISCOVERY && path !== JWKS) {
        json(res, { kind: 'Status', code: 404 }, 404);
        return;
      }
      serve(path, req, res);
    });
    await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
    const addr = standIn.address();
    standInURL = `https://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    issuer = `${bed.state.s3.endpoint}/${bed.state.s3.bucket}/${PREFIX}`;

    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 'hostile-s3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    await createSecret(bed, 'hostile-kubeconfig', {
      kubeconfig: bed.inlineKubeconfig('dummy-token-for-the-stand-in', standInURL),
    });
    op = await OperatorProcess.start(bed, kubeconfig, [
      '--oidcpublisher',
      NAME,
      '--leader-elect',
      'false',
      '--source-timeout',
      '3s',
    ]);
    await applyYaml(
      bed,
      JSON.stringify(
        samplePublisher(bed, {
          name: NAME,
          spec: { issuerURL: issuer, source: { kubeconfigSecretRef: { name: 'hostile-kubeconfig' } } },
          s3: { prefix: PREFIX, credentialsSecretRef: { name: 'hostile-s3-writer' } },
        }),
      ),
    );
    const p = await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
    generation = p.metadata.generation;
  });

  it('publishes once from the good stand-in', async () => {
    const [, jwks] = await bucket();
    assert.match(jwks ?? '', /hostile-1/);
  });

  describe('hostile source documents', () => {
    const privateKey = () => {
      const { privateKey: k } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const jwk = k.export({ format: 'jwk' });
      return { ...key, d: jwk.d, p: jwk.p, q: jwk.q, dp: jwk.dp, dq: jwk.dq, qi: jwk.qi };
    };
    const cases: Case[] = [
      {
        name: 'a discovery document that is not JSON',
        serve: withDiscovery(() => '<html>hello</html>'),
        reason: 'InvalidDocuments',
        message: /^discovery document: not valid JSON; nothing was published/,
        kept: true,
      },
      {
        name: 'a JWKS that is a JSON array',
        serve: withJwks([key]),
        reason: 'InvalidDocuments',
        message: /^JWKS: expected a JSON object, got an array; nothing was published/,
        kept: true,
      },
      {
        name: 'a discovery document naming another issuer',
        serve: withDiscovery(() => ({ ...discovery(), issuer: 'https://evil.example.com/cluster' })),
        reason: 'IssuerMismatch',
        message:
          /^the API server's issuer "https:\/\/evil\.example\.com\/cluster" differs from spec\.issuerURL/,
        kept: true,
      },
      {
        name: 'an empty key set',
        serve: withJwks({ keys: [] }),
        reason: 'InvalidDocuments',
        message: /^JWKS: "keys" is empty: there would be nothing to verify tokens with/,
        kept: true,
      },
      {
        name: 'a JWKS without "keys"',
        serve: withJwks({ jwks: [key] }),
        reason: 'InvalidDocuments',
        message: /^JWKS: "keys" is missing or not an array/,
        kept: true,
      },
      {
        name: 'a key with its private parameters',
        serve: withJwks({ keys: [privateKey()] }),
        reason: 'InvalidDocuments',
        message:
          /^JWKS: keys\[0\] \(kid "hostile-1"\) carries private or symmetric key material \(d, p, q, dp, dq, qi\): refusing to publish it/,
        kept: true,
      },
      {
        name: 'a symmetric key',
        serve: withJwks({ keys: [key, { kty: 'oct', kid: 'hmac', alg: 'HS256', k: 'c2VjcmV0LXNlY3JldA' }] }),
        reason: 'InvalidDocuments',
        message: /^JWKS: keys\[1\] \(kid "hmac"\) carries private or symmetric key material \(k\)/,
        kept: true,
      },
      {
        name: 'a key without "kid"',
        serve: withJwks({ keys: [{ ...key, kid: undefined }] }),
        reason: 'InvalidDocuments',
        message: /^JWKS: keys\[0\] has no "kid"/,
        kept: true,
      },
      {
        name: 'two keys with the same kid',
        serve: withJwks({ keys: [key, key] }),
        reason: 'InvalidDocuments',
        message: /^JWKS: keys\[1\] repeats kid "hostile-1"/,
        kept: true,
      },
      {
        name: 'a discovery document nested 10 000 levels deep (20 KB)',
        serve: (path, req, res) =>
          path === DISCOVERY
            ? json(
                res,
                `${JSON.stringify(discovery()).slice(0, -1)},"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`,
              )
            : good(path, req, res),
        reason: 'InvalidDocuments',
        message: /^discovery document: nested more than 32 levels deep; nothing was published/,
        kept: true,
      },
      {
        name: 'a 20 MB body',
        serve: (path, req, res) => {
          if (path !== JWKS) return good(path, req, res);
          res.writeHead(200, { 'content-type': 'application/json' });
          const chunk = Buffer.alloc(64 * 1024, 0x20);
          let sent = 0;
          const pump = () => {
            while (sent < 20 * 1024 * 1024 && !res.destroyed) {
              sent += chunk.length;
              if (!res.write(chunk)) return void res.once('drain', pump);
            }
            res.end();
          };
          res.write('{"keys":[');
          pump();
        },
        reason: 'InvalidDocuments',
        message: /^GET https:\/\/127\.0\.0\.1:\d+\/openid\/v1\/jwks: response larger than 1048576 bytes/,
      },
      {
        name: 'a body trickling at 1 byte a second (slow loris)',
        serve: (path, req, res) => {
          if (path !== DISCOVERY) return good(path, req, res);
          res.writeHead(200, { 'content-type': 'application/json' });
          const body = JSON.stringify(discovery());
          let i = 0;
          const timer = setInterval(() => {
            if (res.destroyed || i >= body.length) {
              clearInterval(timer);
              res.end();
              return;
            }
            res.write(body[i++] ?? '');
          }, 1000);
          res.on('close', () => clearInterval(timer));
        },
        reason: 'SourceUnreachable',
        message: /^GET https:\/\/127\.0\.0\.1:\d+\/\.well-known\/openid-configuration: connection timed out$/,
      },
      {
        name: 'a redirect elsewhere',
        serve: (path, _req, res) => {
          res.writeHead(302, { location: `https://evil.example.com${path}` });
          res.end();
        },
        reason: 'SourceError',
        message: /^GET https:\/\/127\.0\.0\.1:\d+\/\S+: HTTP 302: redirects are not followed$/,
      },
      {
        name: '401 Unauthorized',
        serve: (_path, _req, res) => json(res, { kind: 'Status', code: 401, reason: 'Unauthorized' }, 401),
        reason: 'SourceUnauthorized',
        message: /^GET https:\/\/127\.0\.0\.1:\d+\/\S+: HTTP 401: the API server refused the credentials$/,
      },
      {
        name: '500 Internal Server Error',
        serve: (_path, _req, res) => json(res, { kind: 'Status', code: 500 }, 500),
        reason: 'SourceError',
        message: /^GET https:\/\/127\.0\.0\.1:\d+\/\S+: HTTP 500$/,
      },
    ];

    for (const c of cases) {
      it(`refuses ${c.name}: ${c.reason}, nothing published`, async () => {
        const before = await bucket();
        const written = await writes();
        serve = c.serve;
        const p = await sync({}, 'False', c.reason);
        const ready = condition(p, 'Ready');
        assert.match(ready?.message ?? '', c.message);
        if (c.kept) assert.match(ready?.message ?? '', KEPT);
        assert.equal(condition(p, 'Published')?.status, 'Unknown', 'publishing was not attempted');
        assert.deepEqual(await bucket(), before, 'the bucket is untouched (bytes, ETag, Last-Modified)');
        assert.equal(await writes(), written, 'the operator wrote no object');
      });
    }

    it('recovers to the last good state when the source is good again, without writing', async () => {
      const before = await bucket();
      serve = good;
      const p = await sync({}, 'True', 'Ready');
      assert.equal(condition(p, 'Published')?.reason, 'UpToDate');
      assert.deepEqual(await bucket(), before);
    });
  });

  describe('bad Secrets', () => {
    let marker: string;
    const goodSource = { source: { kubeconfigSecretRef: { name: 'hostile-kubeconfig', key: 'kubeconfig' } } };

    before(async () => {
      marker = join(tmp, 'a-command-ran');
      const kc = bed.inlineKubeconfig('dummy-token-for-the-stand-in', standInURL);
      const tokenLine = '    token: dummy-token-for-the-stand-in\n';
      assert.ok(kc.includes(tokenLine));
      await createSecret(bed, 'hostile-kc-malformed', {
        kubeconfig: 'apiVersion: v1\nclusters: [\n  - name: x\n',
      });
      await createSecret(bed, 'hostile-kc-exec', {
        kubeconfig: kc.replace(
          tokenLine,
          `    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: ["-c", "touch ${marker}"]\n`,
        ),
      });
      await createSecret(bed, 'hostile-kc-auth-provider', {
        kubeconfig: kc.replace(
          tokenLine,
          `    auth-provider:\n      name: gcp\n      config:\n        cmd-path: /bin/sh\n        cmd-args: -c "touch ${marker}"\n`,
        ),
      });
      await createSecret(bed, 'hostile-s3-partial', { AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId });
      const s3 = bed.state.s3;
      const other = await createMinioUser(s3, bed.ca, 'hostile-other-bucket', {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['s3:GetObject', 's3:PutObject', 's3:ListBucket'],
            Resource: ['arn:aws:s3:::another-bucket', 'arn:aws:s3:::another-bucket/*'],
          },
        ],
      });
      await createSecret(bed, 'hostile-s3-other-bucket', {
        AWS_ACCESS_KEY_ID: other.accessKeyId,
        AWS_SECRET_ACCESS_KEY: other.secretAccessKey,
      });
    });

    const sourceCases: { name: string; spec: Record<string, unknown>; reason: string; message: RegExp }[] = [
      {
        name: 'a kubeconfig Secret that does not exist',
        spec: { source: { kubeconfigSecretRef: { name: 'hostile-no-such-secret' } } },
        reason: 'KubeconfigSecretNotFound',
        message: /^Secret oidc-publisher-system\/hostile-no-such-secret not found$/,
      },
      {
        name: 'a kubeconfig Secret without the key',
        spec: { source: { kubeconfigSecretRef: { name: 'hostile-kubeconfig', key: 'config' } } },
        reason: 'KubeconfigSecretNotFound',
        message: /^Secret oidc-publisher-system\/hostile-kubeconfig has no key "config"$/,
      },
      {
        name: 'a malformed kubeconfig',
        spec: { source: { kubeconfigSecretRef: { name: 'hostile-kc-malformed', key: 'kubeconfig' } } },
        reason: 'KubeconfigInvalid',
        message: /^kubeconfig invalid: not valid YAML$/,
      },
      {
        name: 'a kubeconfig that would run a command (exec)',
        spec: { source: { kubeconfigSecretRef: { name: 'hostile-kc-exec' } } },
        reason: 'KubeconfigRefused',
        message: /^kubeconfig refused: user "reader" runs a command \(exec\)$/,
      },
      {
        name: 'a kubeconfig with an auth-provider plugin that would run a command',
        spec: { source: { kubeconfigSecretRef: { name: 'hostile-kc-auth-provider' } } },
        reason: 'KubeconfigRefused',
        message: /^kubeconfig refused: user "reader" uses an auth-provider plugin$/,
      },
    ];
    for (const c of sourceCases) {
      it(`refuses ${c.name}: ${c.reason}, nothing run, nothing published`, async () => {
        const before = await bucket();
        const written = await writes();
        const p = await sync(c.spec, 'False', c.reason);
        assert.match(condition(p, 'SourceAvailable')?.message ?? '', c.message);
        assert.match(condition(p, 'Ready')?.message ?? '', c.message);
        assert.ok(!existsSync(marker), 'no command from a kubeconfig ever ran');
        assert.deepEqual(await bucket(), before, 'the bucket is untouched');
        assert.equal(await writes(), written, 'the operator wrote no object');
      });
    }

    // A storage Secret is only read when something must be written: each case also changes
    // Cache-Control, so the sync needs the bucket.
    const storageCases: { name: string; secret: string; reason: string; message: RegExp }[] = [
      {
        name: 'a credentials Secret that does not exist',
        secret: 'hostile-no-such-secret',
        reason: 'StorageCredentialsInvalid',
        message: /^Secret oidc-publisher-system\/hostile-no-such-secret not found; /,
      },
      {
        name: 'a credentials Secret without AWS_SECRET_ACCESS_KEY',
        secret: 'hostile-s3-partial',
        reason: 'StorageCredentialsInvalid',
        message: /^Secret oidc-publisher-system\/hostile-s3-partial has no key "AWS_SECRET_ACCESS_KEY"; /,
      },
      {
        name: 'credentials of a user allowed only another bucket',
        secret: 'hostile-s3-other-bucket',
        reason: 'StorageAccessDenied',
        message: /^HEAD s3:\/\/oidc-bed\/public\/hostile-source\/\S+: access denied \(HTTP 403\); /,
      },
    ];
    for (const c of storageCases) {
      it(`refuses ${c.name}: ${c.reason}, nothing published`, async () => {
        const before = await bucket();
        const written = await writes();
        const p = await sync(
          {
            ...goodSource,
            cacheControl: 'public, max-age=123',
            storage: { s3: { credentialsSecretRef: { name: c.secret } } },
          },
          'False',
          c.reason,
        );
        assert.match(condition(p, 'Published')?.message ?? '', c.message);
        assert.match(condition(p, 'Ready')?.message ?? '', KEPT);
        assert.deepEqual(await bucket(), before, 'the bucket is untouched (the old Cache-Control too)');
        assert.equal(await writes(), written, 'the operator wrote no object');
      });
    }

    it('publishes the pending change once the Secrets are right again', async () => {
      const p = await sync(
        { ...goodSource, storage: { s3: { credentialsSecretRef: { name: 'hostile-s3-writer' } } } },
        'True',
        'Ready',
      );
      assert.equal(condition(p, 'Published')?.reason, 'DocumentsPublished');
      const [discoveryNow] = await bucket();
      assert.match(discoveryNow ?? '', /public, max-age=123/);
      assert.ok(!existsSync(marker), 'no command from a kubeconfig ever ran');
    });
  });
});
