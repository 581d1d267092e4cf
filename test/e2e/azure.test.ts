/**
 * The operator end to end against Azure Blob Storage (Azurite over HTTPS): an
 * API server whose issuer is the Azurite URL of a public container, the
 * documents published there with a connection string from a Secret, and a token
 * verified against it. Observed only from outside: kubectl, anonymous HTTPS,
 * jose.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { type AzureInfo, createBlobServiceClient } from '../bed/azurite.ts';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  createSecret,
  eventually,
  installOperator,
  OperatorProcess,
  ROOT,
  verifyAsRelyingParty,
  waitForReady,
} from './harness.ts';

const NAME = 'azure-issuer';
const AUDIENCE = 'api://AzureADTokenExchange';
const PREFIX = 'cluster-a';

describe('operator end to end: Azure Blob (Azurite)', () => {
  let bed: Bed;
  let azure: AzureInfo;
  let op: OperatorProcess;
  const useOwn = useBed(
    { azure: true, gcs: false, issuer: 'azure' },
    {
      // The operator stops before the bed, so it sees its API server until the end.
      beforeStop: async () => {
        assert.equal(await op?.stop('SIGTERM'), 0, 'the operator exits 0 on SIGTERM');
      },
    },
  );
  const published = async () => {
    const discovery = await request(`${bed.issuer}/.well-known/openid-configuration`, { ca: bed.ca });
    const jwks = await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca });
    return { discovery, jwks };
  };

  before(async () => {
    bed = useOwn();
    assert.ok(bed.state.azure, 'the bed runs Azurite');
    azure = bed.state.azure;
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 'azure-writer', { connectionString: azure.connectionString });
    op = await OperatorProcess.start(bed, kubeconfig);
    const doc = parse(readFileSync(join(ROOT, 'config', 'samples', 'oidcpublisher_azure.yaml'), 'utf8')) as {
      metadata: { name: string };
      spec: Record<string, unknown>;
    };
    doc.metadata.name = NAME;
    doc.spec.issuerURL = bed.issuer;
    doc.spec.storage = {
      azureBlob: {
        accountURL: azure.accountURL,
        container: azure.container,
        prefix: PREFIX,
        credentialsSecretRef: { name: 'azure-writer' },
      },
    };
    doc.spec.syncInterval = '10s';
    await applyYaml(bed, stringify(doc));
  });

  it('becomes Ready, Verified included, and names its storage azblob://account/container/prefix', async () => {
    const p = await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
    assert.equal(p.status?.storageURL, `azblob://devstoreaccount1/${azure.container}/${PREFIX}`);
    assert.equal(condition(p, 'Published')?.status, 'True', JSON.stringify(condition(p, 'Published')));
    const verified = condition(p, 'Verified');
    assert.equal(verified?.status, 'True', `Verified: ${JSON.stringify(verified)}`);
    assert.match(bed.issuer, /^https:\/\/127\.0\.0\.1:\d+\/devstoreaccount1\/oidc-bed\/cluster-a$/);
  });

  it('serves both documents anonymously with Content-Type and Cache-Control', async () => {
    const { discovery, jwks } = await published();
    assert.equal(discovery.status, 200, `discovery: HTTP ${discovery.status}`);
    assert.equal(discovery.headers['content-type'], 'application/json');
    assert.equal(discovery.headers['cache-control'], 'public, max-age=300');
    const doc = discovery.json() as { issuer: string; jwks_uri: string };
    assert.equal(doc.issuer, bed.issuer);
    assert.equal(doc.jwks_uri, `${bed.issuer}/openid/v1/jwks`);
    assert.equal(jwks.status, 200, `JWKS: HTTP ${jwks.status}`);
    assert.equal(jwks.headers['content-type'], 'application/jwk-set+json');
    assert.equal(jwks.headers['cache-control'], 'public, max-age=300');
    assert.match(
      String(jwks.headers['x-ms-meta-oidcpublishersha256']),
      /^[0-9a-f]{64}$/,
      'the content hash is kept in the blob metadata',
    );
  });

  it('lets a relying party verify a TokenRequest token against the Azurite-served issuer', async () => {
    await bed.serviceAccountKubeconfig('workload', 'app');
    const token = await bed.mintToken({ namespace: 'workload', serviceAccount: 'app', audience: AUDIENCE });
    const payload = await verifyAsRelyingParty(bed.issuer, token, AUDIENCE, bed.ca);
    assert.equal(payload.sub, 'system:serviceaccount:workload:app');
  });

  it('repairs a blob deleted behind its back on the next periodic sync', async () => {
    const container = createBlobServiceClient(azure, bed.ca).getContainerClient(azure.container);
    await container.getBlobClient(`${PREFIX}/openid/v1/jwks`).delete();
    const gone = await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca });
    assert.notEqual(gone.status, 200, 'the JWKS is gone from the public URL');
    await eventually(
      'the JWKS back within one sync interval',
      async () =>
        (await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca })).status === 200 ? true : undefined,
      20_000,
    );
    const p = await waitForReady(bed, NAME, 'True', 'Ready');
    assert.match(condition(p, 'Published')?.message ?? '', /cluster-a\/openid\/v1\/jwks \(missing\)/);
  });

  it('reports StorageAccessDenied with wrong credentials and keeps the last good objects', async () => {
    const before = await published();
    const wrongKey = Buffer.from('not-the-devstoreaccount1-key').toString('base64');
    await createSecret(bed, 'azure-bad', {
      connectionString: `DefaultEndpointsProtocol=https;AccountName=${azure.account};AccountKey=${wrongKey};BlobEndpoint=${azure.accountURL}`,
    });
    // A new Cache-Control makes both blobs need a write, which the wrong key cannot make.
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--type=merge',
      '-p',
      JSON.stringify({
        spec: {
          cacheControl: 'public, max-age=60',
          storage: { azureBlob: { credentialsSecretRef: { name: 'azure-bad' } } },
        },
      }),
    ]);
    const p = await waitForReady(bed, NAME, 'False', 'StorageAccessDenied', 40_000);
    const publishedCond = condition(p, 'Published');
    assert.equal(publishedCond?.status, 'False');
    assert.match(publishedCond?.message ?? '', /keeps the last published documents/);
    assert.ok(!publishedCond?.message.includes(wrongKey), 'the status does not carry the key');
    const after = await published();
    assert.equal(after.jwks.status, 200);
    assert.equal(after.jwks.headers['cache-control'], 'public, max-age=300', 'the old blob is still there');
    assert.equal(after.jwks.text(), before.jwks.text());
    assert.equal(after.discovery.text(), before.discovery.text());

    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--type=merge',
      '-p',
      JSON.stringify({
        spec: { storage: { azureBlob: { credentialsSecretRef: { name: 'azure-writer' } } } },
      }),
    ]);
    await waitForReady(bed, NAME, 'True', 'Ready', 40_000);
    const repaired = await published();
    assert.equal(
      repaired.jwks.headers['cache-control'],
      'public, max-age=60',
      'the new Cache-Control is published',
    );
    assert.ok(
      !op.output.some((line) => line.includes(wrongKey) || line.includes(azure.connectionString)),
      'the operator logs neither connection string',
    );
  });
});
