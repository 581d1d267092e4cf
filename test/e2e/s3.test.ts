/**
 * The operator end to end against S3 (MinIO): run as its least-privilege
 * ServiceAccount, observed only from outside.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  createSecret,
  eventually,
  getPublisher,
  installOperator,
  OperatorProcess,
  samplePublisher,
  verifyAsRelyingParty,
  waitForReady,
} from './harness.ts';

const NAME = 'cluster-issuer';
const REMOTE = 'remote-issuer';
const AUDIENCE = 'sts.example.com';

describe('operator end to end: S3 (MinIO)', () => {
  let bed: Bed;
  let op: OperatorProcess;
  const useOwn = useBed(
    { gcs: false },
    {
      // The operator stops before the bed, so it sees its API server until the end.
      beforeStop: async () => {
        const code = await op?.stop('SIGTERM');
        assert.equal(
          code,
          0,
          `the operator exits 0 on SIGTERM; its last lines:\n${op?.output.slice(-10).join('\n')}`,
        );
      },
    },
  );
  let issuer: string;
  let publicBase: string;

  /** The S3 sample from config/samples, pointed at the bed. */
  function sample(name: string, prefix: string, extra: Record<string, unknown> = {}): string {
    return stringify(samplePublisher(bed, { name, spec: { issuerURL: issuer, ...extra }, s3: { prefix } }));
  }

  async function published(prefix: string) {
    const ca = bed.ca;
    const [discovery, jwks] = await Promise.all([
      request(`${publicBase}/${prefix}/.well-known/openid-configuration`, { ca }),
      request(`${publicBase}/${prefix}/openid/v1/jwks`, { ca }),
    ]);
    return { discovery, jwks };
  }

  before(async () => {
    bed = useOwn();
    issuer = bed.issuer;
    publicBase = `${bed.state.s3.endpoint}/${bed.state.s3.bucket}`;
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    op = await OperatorProcess.start(bed, kubeconfig);
    await applyYaml(bed, sample(NAME, 'public/cluster-a'));
  });

  it('becomes Ready as its least-privilege ServiceAccount (kubectl wait)', async () => {
    await bed.kubectl(['wait', '--for=condition=Ready', `oidcpublisher/${NAME}`, '--timeout=60s']);
    const p = await getPublisher(bed, NAME);
    assert.equal(condition(p, 'Ready')?.reason, 'Ready');
    assert.deepEqual(p.metadata.finalizers, ['oidcpublisher.io/cleanup']);
    assert.equal(p.status?.keyCount, 1);
    assert.deepEqual(
      p.status?.keys?.map((k) => k.kid),
      [bed.signingKey.kid],
    );
  });

  it('serves both documents to anonymous HTTPS readers with the right Content-Type and Cache-Control', async () => {
    const discovery = await request(`${issuer}/.well-known/openid-configuration`, { ca: bed.ca });
    assert.equal(discovery.status, 200);
    assert.equal(discovery.headers['content-type'], 'application/json');
    assert.equal(discovery.headers['cache-control'], 'public, max-age=300');
    const doc = discovery.json() as { issuer: string; jwks_uri: string };
    assert.equal(doc.issuer, issuer);
    assert.equal(doc.jwks_uri, `${issuer}/openid/v1/jwks`, 'jwks_uri is rewritten to the public URL');
    const jwks = await request(doc.jwks_uri, { ca: bed.ca });
    assert.equal(jwks.status, 200);
    assert.equal(jwks.headers['content-type'], 'application/jwk-set+json');
    const keys = (jwks.json() as { keys: Record<string, unknown>[] }).keys;
    assert.deepEqual(
      keys.map((k) => k.kid),
      [bed.signingKey.kid],
    );
    for (const k of keys)
      for (const p of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.ok(!(p in k), `no private ${p}`);
  });

  it('lets a relying party verify a TokenRequest token against the public issuer', async () => {
    await bed.serviceAccountKubeconfig('workload', 'app');
    const token = await bed.mintToken({ namespace: 'workload', serviceAccount: 'app', audience: AUDIENCE });
    const payload = await verifyAsRelyingParty(issuer, token, AUDIENCE, bed.ca);
    assert.equal(payload.sub, 'system:serviceaccount:workload:app');
    assert.equal(payload.iss, issuer);
  });

  it('refuses a token signed by a foreign key, and one for another audience', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = await new SignJWT({ sub: 'system:serviceaccount:workload:app' })
      .setProtectedHeader({ alg: 'RS256', kid: bed.signingKey.kid })
      .setIssuer(issuer)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(privateKey);
    await assert.rejects(
      verifyAsRelyingParty(issuer, forged, AUDIENCE, bed.ca),
      /signature verification failed/,
    );
    const other = await bed.mintToken({
      namespace: 'workload',
      serviceAccount: 'app',
      audience: 'someone-else',
    });
    await assert.rejects(
      verifyAsRelyingParty(issuer, other, AUDIENCE, bed.ca),
      /unexpected "aud" claim value/,
    );
  });

  it('makes zero storage writes on syncs where nothing changed (counted by MinIO)', async () => {
    await waitForReady(bed, NAME, 'True', 'Ready');
    const upToDate = () => op.logs().filter((l) => l.oidcpublisher === NAME && l.msg === 'up to date').length;
    const before = await bed.s3RequestCounts();
    const seen = upToDate();
    await eventually(
      'two more syncs of an unchanged publisher',
      async () => (upToDate() >= seen + 2 ? true : undefined),
      40_000,
    );
    const afterCounts = await bed.s3RequestCounts();
    const syncs = upToDate() - seen;
    const delta = (name: string) => (afterCounts.get(name) ?? 0) - (before.get(name) ?? 0);
    assert.equal(delta('PutObject'), 0, 'PutObject requests during the syncs');
    // Each sync reads both objects anonymously, as a relying party does, and needs nothing more
    // when they are served exactly as rendered: two storage reads, no HEAD.
    const reads = delta('GetObject') + delta('HeadObject');
    assert.ok(
      reads >= 2 * syncs && reads <= 2 * syncs + 2,
      `storage reads: ${reads} for ${syncs} syncs (GetObject ${delta('GetObject')}, HeadObject ${delta('HeadObject')}); expected 2 a sync`,
    );
  });

  it('reports IssuerMismatch and leaves the published objects untouched', async () => {
    const before = await published('public/cluster-a');
    const puts = (await bed.s3RequestCounts()).get('PutObject') ?? 0;
    const wrong = `${issuer}-elsewhere`;
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { issuerURL: wrong } }),
    ]);
    const p = await waitForReady(bed, NAME, 'False', 'IssuerMismatch');
    assert.equal(condition(p, 'IssuerMatched')?.status, 'False');
    assert.match(condition(p, 'IssuerMatched')?.message ?? '', /differs from spec\.issuerURL/);
    assert.equal(condition(p, 'Published')?.status, 'Unknown');
    const afterDocs = await published('public/cluster-a');
    assert.equal(afterDocs.discovery.text(), before.discovery.text());
    assert.equal(afterDocs.jwks.text(), before.jwks.text());
    assert.equal(
      (await bed.s3RequestCounts()).get('PutObject') ?? 0,
      puts,
      'no PutObject while the issuer mismatches',
    );
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { issuerURL: issuer } }),
    ]);
    await waitForReady(bed, NAME, 'True', 'Ready');
  });

  it('records Events for the publish and the failure, with reasons matching the conditions', async () => {
    const list = JSON.parse(
      await bed.kubectl(['get', 'events.events.k8s.io', '-n', 'default', '-o', 'json']),
    ) as {
      items: {
        regarding?: { name?: string; kind?: string };
        reason?: string;
        type?: string;
        reportingController?: string;
      }[];
    };
    const mine = list.items.filter((e) => e.regarding?.kind === 'OidcPublisher' && e.regarding.name === NAME);
    const reasons = mine.map((e) => `${e.type}/${e.reason}`);
    assert.ok(reasons.includes('Normal/DocumentsPublished'), `events: ${reasons.join(', ')}`);
    assert.ok(reasons.includes('Warning/IssuerMismatch'), `events: ${reasons.join(', ')}`);
    assert.ok(reasons.includes('Normal/Ready'), `a recovery event; events: ${reasons.join(', ')}`);
    assert.ok(mine.every((e) => e.reportingController === 'oidcpublisher.io/oidc-publisher'));
  });

  it('exposes metrics that moved as the syncs went', async () => {
    const text = await (await fetch(`http://127.0.0.1:${op.healthPort}/metrics`)).text();
    const value = (re: RegExp) => Number(text.match(re)?.[1] ?? Number.NaN);
    assert.ok(
      value(/^oidc_publisher_storage_writes_total\{publisher="cluster-issuer"\} (\d+)/m) >= 2,
      'writes counted',
    );
    assert.ok(
      value(/^oidc_publisher_storage_skipped_writes_total\{publisher="cluster-issuer"\} (\d+)/m) >= 4,
      'skips counted',
    );
    assert.ok(value(/^oidc_publisher_reconcile_total\{result="up_to_date"\} (\d+)/m) >= 2);
    assert.ok(
      value(/^oidc_publisher_reconcile_total\{result="failed"\} (\d+)/m) >= 1,
      'the issuer mismatch counted as failed',
    );
    assert.equal(value(/^oidc_publisher_published_keys\{publisher="cluster-issuer"\} (\d+)/m), 1);
    assert.equal(value(/^oidc_publisher_leader (\d+)/m), 1);
    assert.ok(
      value(/^oidc_publisher_last_success_timestamp_seconds\{publisher="cluster-issuer"\} ([\d.e+]+)/m) >
        Date.now() / 1000 - 60,
    );
  });

  describe('a publisher reading its source through a kubeconfig Secret', () => {
    let readerToken: string;

    before(async () => {
      await bed.serviceAccountKubeconfig('issuer-readers', 'reader');
      await applyYaml(
        bed,
        `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: issuer-reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:service-account-issuer-discovery
subjects:
- kind: ServiceAccount
  name: reader
  namespace: issuer-readers
`,
      );
      readerToken = await bed.mintToken({ namespace: 'issuer-readers', serviceAccount: 'reader' });
      await createSecret(bed, 'remote-kubeconfig', { kubeconfig: bed.inlineKubeconfig(readerToken) });
      await applyYaml(
        bed,
        sample(REMOTE, 'public/remote', { source: { kubeconfigSecretRef: { name: 'remote-kubeconfig' } } }),
      );
      await waitForReady(bed, REMOTE, 'True', 'Ready');
    });

    it('reports SourceUnreachable when the API server cannot be reached, leaving the objects untouched', async () => {
      const before = await published('public/remote');
      assert.equal(before.jwks.status, 200);
      await createSecret(bed, 'remote-kubeconfig', {
        kubeconfig: bed.inlineKubeconfig(readerToken, 'https://127.0.0.1:1'),
      });
      const p = await waitForReady(bed, REMOTE, 'False', 'SourceUnreachable');
      assert.match(condition(p, 'SourceAvailable')?.message ?? '', /connection refused/);
      const afterDocs = await published('public/remote');
      assert.equal(afterDocs.jwks.text(), before.jwks.text());
      assert.equal(afterDocs.discovery.text(), before.discovery.text());
    });

    it('refuses a kubeconfig that would run a command, without running it', async () => {
      const marker = join(bed.dir, 'exec-ran');
      const hostile = bed
        .inlineKubeconfig(readerToken)
        .replace(
          `    token: ${readerToken}\n`,
          `    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: sh\n      args: ["-c", "touch ${marker}"]\n`,
        );
      await createSecret(bed, 'remote-kubeconfig', { kubeconfig: hostile });
      const p = await waitForReady(bed, REMOTE, 'False', 'KubeconfigRefused');
      assert.match(condition(p, 'SourceAvailable')?.message ?? '', /runs a command \(exec\)/);
      assert.throws(() => readFileSync(marker), /ENOENT/, 'the exec command must never run');
    });

    it('takes a rotated kubeconfig Secret on the next sync, without a restart', async () => {
      await createSecret(bed, 'remote-kubeconfig', { kubeconfig: bed.inlineKubeconfig(readerToken) });
      await waitForReady(bed, REMOTE, 'True', 'Ready');
    });

    it('reports StorageAccessDenied with wrong credentials and keeps the last good objects', async () => {
      const before = await published('public/remote');
      await createSecret(bed, 's3-remote-bad', {
        AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: 'not-the-secret-key',
      });
      await bed.kubectl([
        'patch',
        'oidcpublisher',
        REMOTE,
        '--type=merge',
        '-p',
        JSON.stringify({
          spec: {
            cacheControl: 'public, max-age=60',
            storage: { s3: { credentialsSecretRef: { name: 's3-remote-bad' } } },
          },
        }),
      ]);
      const p = await waitForReady(bed, REMOTE, 'False', 'StorageAccessDenied');
      assert.equal(condition(p, 'Published')?.status, 'False');
      assert.match(condition(p, 'Published')?.message ?? '', /keeps the last published documents/);
      const afterDocs = await published('public/remote');
      assert.equal(
        afterDocs.jwks.headers['cache-control'],
        'public, max-age=300',
        'the old object is still there',
      );
      assert.equal(afterDocs.jwks.text(), before.jwks.text());
      await bed.kubectl([
        'patch',
        'oidcpublisher',
        REMOTE,
        '--type=merge',
        '-p',
        JSON.stringify({ spec: { storage: { s3: { credentialsSecretRef: { name: 's3-writer' } } } } }),
      ]);
      await waitForReady(bed, REMOTE, 'True', 'Ready');
      const repaired = await published('public/remote');
      assert.equal(
        repaired.jwks.headers['cache-control'],
        'public, max-age=60',
        'the new Cache-Control is published',
      );
    });

    it('removes the objects on delete with deletionPolicy Delete', async () => {
      await bed.kubectl([
        'patch',
        'oidcpublisher',
        REMOTE,
        '--type=merge',
        '-p',
        '{"spec":{"deletionPolicy":"Delete"}}',
      ]);
      await waitForReady(bed, REMOTE, 'True');
      await bed.kubectl(['delete', 'oidcpublisher', REMOTE, '--timeout=30s']);
      const gone = await published('public/remote');
      assert.equal(gone.discovery.status, 404);
      assert.equal(gone.jwks.status, 404);
    });
  });

  it('leaves the objects in place on delete with deletionPolicy Retain', async () => {
    await bed.kubectl(['delete', 'oidcpublisher', NAME, '--timeout=30s']);
    const kept = await published('public/cluster-a');
    assert.equal(kept.discovery.status, 200);
    assert.equal(kept.jwks.status, 200);
  });
});
