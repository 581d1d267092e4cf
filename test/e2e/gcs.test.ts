/**
 * The operator end to end against GCS (fake-gcs-server): an API server whose
 * issuer is the fake-gcs public URL, the documents published there, and a token
 * verified against it. fake-gcs-server has no access control, so "not public"
 * cannot be tested here; the S3 suite covers it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  getPublisher,
  installOperator,
  OperatorProcess,
  ROOT,
  verifyAsRelyingParty,
  waitForReady,
} from './harness.ts';

const NAME = 'gcs-issuer';
const AUDIENCE = '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s';

describe('operator end to end: GCS (fake-gcs-server)', () => {
  let bed: Bed;
  let op: OperatorProcess;
  const useOwn = useBed(
    { issuer: 'gcs' },
    {
      // The operator stops before the bed, so it sees its API server until the end.
      beforeStop: async () => {
        assert.equal(await op?.stop('SIGTERM'), 0, 'the operator exits 0 on SIGTERM');
      },
    },
  );

  before(async () => {
    bed = useOwn();
    const kubeconfig = await installOperator(bed);
    op = await OperatorProcess.start(bed, kubeconfig);
    const gcs = bed.state.gcs;
    assert.ok(gcs);
    const doc = parse(readFileSync(join(ROOT, 'config', 'samples', 'oidcpublisher_gcs.yaml'), 'utf8')) as {
      metadata: { name: string };
      spec: Record<string, unknown>;
    };
    doc.metadata.name = NAME;
    doc.spec.issuerURL = bed.issuer;
    doc.spec.storage = { gcs: { bucket: gcs.bucket, prefix: 'cluster-a', endpoint: gcs.endpoint } };
    doc.spec.syncInterval = '10s';
    await applyYaml(bed, stringify(doc));
  });

  it('becomes Ready and publishes under the GCS issuer URL', async () => {
    await bed.kubectl(['wait', '--for=condition=Ready', `oidcpublisher/${NAME}`, '--timeout=60s']);
    const p = await getPublisher(bed, NAME);
    assert.equal(p.status?.storageURL, `gs://${bed.state.gcs?.bucket}/cluster-a`);
    assert.match(bed.issuer, /^https:\/\/127\.0\.0\.1:\d+\/oidc-bed\/cluster-a$/);
  });

  it('serves both documents anonymously with Content-Type and Cache-Control', async () => {
    const discovery = await request(`${bed.issuer}/.well-known/openid-configuration`, { ca: bed.ca });
    assert.equal(discovery.status, 200);
    assert.equal(discovery.headers['content-type'], 'application/json');
    assert.equal(discovery.headers['cache-control'], 'public, max-age=300');
    const jwks = await request((discovery.json() as { jwks_uri: string }).jwks_uri, { ca: bed.ca });
    assert.equal(jwks.status, 200);
    assert.equal(jwks.headers['content-type'], 'application/jwk-set+json');
  });

  it('lets a relying party verify a TokenRequest token against the GCS-served issuer', async () => {
    await bed.serviceAccountKubeconfig('workload', 'app');
    const token = await bed.mintToken({ namespace: 'workload', serviceAccount: 'app', audience: AUDIENCE });
    const payload = await verifyAsRelyingParty(bed.issuer, token, AUDIENCE, bed.ca);
    assert.equal(payload.sub, 'system:serviceaccount:workload:app');
  });

  it('repairs an object deleted behind its back on the next periodic sync', async () => {
    const gcs = bed.state.gcs;
    assert.ok(gcs);
    const del = await request(
      `${gcs.endpoint}/storage/v1/b/${gcs.bucket}/o/${encodeURIComponent('cluster-a/openid/v1/jwks')}`,
      { ca: bed.ca, method: 'DELETE' },
    );
    assert.ok(del.status === 204 || del.status === 200, `delete through the JSON API: HTTP ${del.status}`);
    assert.equal((await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca })).status, 404);
    const deadline = Date.now() + 20_000;
    let status = 0;
    while (Date.now() < deadline) {
      status = (await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca })).status;
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(status, 200, 'the JWKS is back within one sync interval');
    const p = await waitForReady(bed, NAME, 'True', 'Ready');
    assert.match(condition(p, 'Published')?.message ?? '', /cluster-a\/openid\/v1\/jwks \(missing\)/);
  });
});
