/**
 * Trust lifecycle end to end: a rotated-out key stays published for
 * keyRetention (across operator restarts) so tokens it signed keep verifying,
 * unless the key that proves its status record was lost while no replica ran,
 * and the Verified condition reports what an anonymous relying party sees.
 * Observed only from outside: kubectl, anonymous HTTPS, jose.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import {
  DeleteBucketPolicyCommand,
  GetBucketPolicyCommand,
  HeadObjectCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { stringify } from 'yaml';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { createS3Client } from '../bed/s3.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  createSecret,
  eventually,
  getPublisher,
  installOperator,
  OPERATOR_NAMESPACE,
  OPERATOR_SA,
  OperatorProcess,
  ROOT,
  samplePublisher,
  verifyAsRelyingParty,
  waitForReady,
} from './harness.ts';

const NAME = 'rotating-issuer';
const AUDIENCE = 'vault.example.com';
const RETENTION_S = 45;
/**
 * One replica without leader election: the API server restarts of a rotation take longer than
 * the renew deadline, and a leader that cannot renew exits (its pod would be restarted).
 */
const SINGLE = ['--leader-elect', 'false'];

interface KeyStatus {
  kid: string;
  firstSeen?: string;
  retiredAt?: string;
  expiresAt?: string;
}

describe('trust lifecycle: key retention and the Verified condition (S3)', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await op?.stop('SIGTERM');
      },
    },
  );
  let jwksURL: string;

  const publishedKids = async (): Promise<string[]> => {
    const res = await request(jwksURL, { ca: bed.ca });
    assert.equal(res.status, 200, `anonymous GET ${jwksURL}`);
    return (res.json() as { keys: { kid: string }[] }).keys.map((k) => k.kid).sort();
  };
  const keysInStatus = async (): Promise<KeyStatus[]> =>
    ((await getPublisher(bed, NAME)).status?.keys ?? []) as KeyStatus[];

  before(async () => {
    bed = useOwn();
    jwksURL = `${bed.issuer}/openid/v1/jwks`;
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    op = await OperatorProcess.start(bed, kubeconfig, SINGLE);
    const doc = samplePublisher(bed, { name: NAME, spec: { keyRetention: `${RETENTION_S}s` } });
    await applyYaml(bed, stringify(doc));
    await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
  });

  it('reports Verified=True once an anonymous reader gets exactly the published documents', async () => {
    const p = await getPublisher(bed, NAME);
    const verified = condition(p, 'Verified');
    assert.equal(verified?.status, 'True', `Verified: ${JSON.stringify(verified)}`);
    assert.equal(verified?.reason, 'Verified');
    assert.ok(p.status?.verification, 'status.verification is set');
  });

  it('keeps a rotated-out key published for keyRetention, across operator restarts, then drops it', async () => {
    await bed.serviceAccountKubeconfig('workload', 'app');
    const oldKid = bed.signingKey.kid;
    const oldToken = await bed.mintToken({
      namespace: 'workload',
      serviceAccount: 'app',
      audience: AUDIENCE,
    });

    // Step 1: the API server signs with a new key and still serves the old one.
    await bed.restartApiserver({ rotate: true });
    const newKid = bed.signingKey.kid;
    await eventually(
      'the new key in the published JWKS',
      async () => ((await publishedKids()).includes(newKid) ? true : undefined),
      30_000,
    );
    const added = (await keysInStatus()).find((k) => k.kid === newKid);
    assert.ok(added?.firstSeen, 'status records when the new key was first seen');

    // Step 2: the old public key is removed from the API server. The operator's own token was
    // signed by the old key, so it restarts with a fresh one, as a kubelet-projected token would.
    await op?.stop('SIGTERM');
    const kubeconfig = await bed.serviceAccountKubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA);
    await bed.restartApiserver({ dropOldKeys: true });
    const retiredFrom = Date.now();
    op = await OperatorProcess.start(bed, kubeconfig, SINGLE);

    const retired = await eventually(
      'the old key marked retired in status',
      async () => (await keysInStatus()).find((k) => k.kid === oldKid && k.retiredAt),
      30_000,
    );
    assert.ok(retired.expiresAt, 'a retired key says when it expires');
    const expiresAt = Date.parse(retired.expiresAt);
    assert.ok(
      Math.abs(expiresAt - Date.parse(retired.retiredAt ?? '') - RETENTION_S * 1000) <= 1000,
      `expiresAt (${retired.expiresAt}) is retiredAt (${retired.retiredAt}) + ${RETENTION_S}s`,
    );
    assert.deepEqual(await publishedKids(), [newKid, oldKid].sort(), 'both keys published during retention');
    const payload = await verifyAsRelyingParty(bed.issuer, oldToken, AUDIENCE, bed.ca);
    assert.equal(
      payload.sub,
      'system:serviceaccount:workload:app',
      'the old token verifies during retention',
    );

    // Restarting the operator mid-retention changes nothing.
    await op?.stop('SIGTERM');
    op = await OperatorProcess.start(bed, kubeconfig, SINGLE);
    await eventually(
      'a sync by the restarted operator',
      async () =>
        op?.logs().some((l) => l.msg === 'up to date' || l.msg === 'published') ? true : undefined,
      30_000,
    );
    const afterRestart = (await keysInStatus()).find((k) => k.kid === oldKid);
    assert.equal(afterRestart?.retiredAt, retired.retiredAt, 'retiredAt unchanged by the restart');
    assert.equal(afterRestart?.expiresAt, retired.expiresAt, 'expiresAt unchanged by the restart');
    assert.ok(Date.now() < expiresAt, 'still within retention after the restart');
    assert.deepEqual(await publishedKids(), [newKid, oldKid].sort());

    // After retention the old key leaves, and its token no longer verifies.
    await eventually(
      'the old key removed from the published JWKS',
      async () => ((await publishedKids()).includes(oldKid) ? undefined : true),
      (RETENTION_S + 30) * 1000,
    );
    const removedAfter = Date.now();
    assert.ok(
      removedAfter >= expiresAt,
      `removed at ${new Date(removedAfter).toISOString()}, not before expiresAt ${retired.expiresAt}`,
    );
    assert.ok(
      removedAfter - expiresAt < 15_000,
      `removed within 15 s of expiresAt (took ${removedAfter - expiresAt} ms; retired ${Math.round((Date.now() - retiredFrom) / 1000)} s ago)`,
    );
    assert.deepEqual(
      (await keysInStatus()).map((k) => k.kid),
      [newKid],
    );
    await assert.rejects(
      verifyAsRelyingParty(bed.issuer, oldToken, AUDIENCE, bed.ca),
      /no applicable key found|JWKSNoMatchingKey/,
      'the old token fails once its key left the JWKS',
    );

    const events = JSON.parse(
      await bed.kubectl(['get', 'events.events.k8s.io', '-n', 'default', '-o', 'json']),
    ) as { items: { regarding?: { name?: string }; reason?: string; note?: string }[] };
    const reasons = events.items.filter((e) => e.regarding?.name === NAME).map((e) => e.reason);
    for (const r of ['KeyAdded', 'KeyRetired', 'KeyRemoved']) {
      assert.ok(reasons.includes(r), `an Event ${r}; events: ${reasons.join(', ')}`);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${op?.healthPort}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(`^oidc_publisher_key_changes_total\\{publisher="${NAME}",change="removed"\\} 1$`, 'm'),
    );
  });

  it('refuses a retired key loudly when the record MAC key Secret was emptied while no replica ran, naming both key ids; the served key stays published', async () => {
    const old = bed.signingKey;
    const oldKid = old.kid;
    const next = bed.createServiceAccountKey();
    const newKid = next.kid;
    await bed.restartApiserverWithKeys([old, next], next);
    await eventually(
      'the new key in the published JWKS',
      async () => ((await publishedKids()).includes(newKid) ? true : undefined),
      30_000,
    );
    await op?.stop('SIGTERM');
    const kubeconfig = await bed.serviceAccountKubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA);
    await bed.restartApiserverWithKeys([next], next);
    op = await OperatorProcess.start(bed, kubeconfig, SINGLE);
    const retired = await eventually(
      'the old key marked retired in status',
      async () => (await keysInStatus()).find((k) => k.kid === oldKid && k.retiredAt),
      30_000,
    );
    const expiresAt = Date.parse(retired.expiresAt ?? '');
    assert.deepEqual(await publishedKids(), [newKid, oldKid].sort(), 'both keys published during retention');

    // No replica runs while the Secret is deleted and the manifests applied again: it is empty.
    await op?.stop('SIGTERM');
    await bed.kubectl(['delete', 'secret', '-n', OPERATOR_NAMESPACE, 'oidc-publisher-integrity']);
    await bed.kubectl(['apply', '-f', join(ROOT, 'config', 'rbac', 'integrity_secret.yaml')]);
    op = await OperatorProcess.start(bed, kubeconfig, SINGLE);
    await eventually(
      'the retired key to leave the published JWKS',
      async () => ((await publishedKids()).includes(oldKid) ? undefined : true),
      30_000,
    );
    assert.ok(Date.now() < expiresAt, 'it left before its expiresAt: its record no longer verifies');
    assert.deepEqual(await publishedKids(), [newKid], 'the key the API server serves is still published');
    assert.deepEqual(
      (await keysInStatus()).map((k) => k.kid),
      [newKid],
      'the refused record is dropped from status',
    );
    const events = JSON.parse(
      await bed.kubectl(['get', 'events.events.k8s.io', '-n', 'default', '-o', 'json']),
    ) as { items: { regarding?: { name?: string }; reason?: string; type?: string; note?: string }[] };
    const refused = events.items.find(
      (e) => e.regarding?.name === NAME && e.reason === 'KeyRefused' && e.note?.includes(oldKid),
    );
    assert.equal(refused?.type, 'Warning', `a KeyRefused Warning names ${oldKid}`);
    assert.match(
      refused?.note ?? '',
      /made with integrity key [0-9a-f]{8}, the operator holds key [0-9a-f]{8} \(its Secret was emptied, re-created or replaced\)/,
    );
  });

  it('goes Verified=False/NotReachable when the bucket policy stops anonymous reads, and True after', async () => {
    const s3 = createS3Client(bed.state.s3, bed.ca);
    try {
      const { Policy } = await s3.send(new GetBucketPolicyCommand({ Bucket: bed.state.s3.bucket }));
      await s3.send(new DeleteBucketPolicyCommand({ Bucket: bed.state.s3.bucket }));
      const p = await waitForReady(bed, NAME, 'False', 'NotReachable', 40_000);
      assert.match(
        condition(p, 'Verified')?.message ?? '',
        /HTTP 403: the bucket does not allow anonymous reads/,
      );
      assert.equal(condition(p, 'Published')?.status, 'True', 'publishing itself still works');
      await s3.send(new PutBucketPolicyCommand({ Bucket: bed.state.s3.bucket, Policy }));
      await waitForReady(bed, NAME, 'True', 'Ready', 40_000);
      assert.equal(condition(await getPublisher(bed, NAME), 'Verified')?.status, 'True');
    } finally {
      s3.destroy();
    }
  });

  it('goes Verified=False/ContentMismatch when the JWKS is edited behind its back, and the next sync repairs it', async () => {
    const key = 'public/cluster-a/openid/v1/jwks';
    const original = await request(jwksURL, { ca: bed.ca });
    const sha = createHash('sha256').update(original.body).digest('hex');
    const s3 = createS3Client(bed.state.s3, bed.ca);
    try {
      // Other bytes under the metadata of the published object (hash and owner): a HEAD alone
      // cannot tell.
      const { Metadata } = await s3.send(new HeadObjectCommand({ Bucket: bed.state.s3.bucket, Key: key }));
      assert.equal(Metadata?.['oidc-publisher-sha256'], sha, 'the published object records its hash');
      const tampered = JSON.stringify({ keys: [] });
      await s3.send(
        new PutObjectCommand({
          Bucket: bed.state.s3.bucket,
          Key: key,
          Body: tampered,
          ContentType: 'application/jwk-set+json',
          CacheControl: 'public, max-age=300',
          Metadata,
        }),
      );
      const p = await waitForReady(bed, NAME, 'False', 'ContentMismatch', 40_000);
      assert.match(condition(p, 'Verified')?.message ?? '', /serves other bytes than were published/);
      await waitForReady(bed, NAME, 'True', 'Ready', 40_000);
      const repaired = await request(jwksURL, { ca: bed.ca });
      assert.equal(repaired.text(), original.text(), 'the published JWKS is restored');
    } finally {
      s3.destroy();
    }
  });
});
