/**
 * Faults of the storage, against the real bed (own bed: MinIO is stopped):
 *
 * - MinIO down: Ready=False/StorageUnreachable, retried with capped
 *   exponential backoff (the retry rate measured from the operator's logs over
 *   30 s with --backoff-max 4s), and a change made meanwhile is published as
 *   soon as MinIO is back;
 * - storage refusing writes: a credentials Secret with the wrong secret key,
 *   and valid credentials whose policy denies PutObject (MinIO applies bucket
 *   policies to anonymous requests only, so the deny is in the user's IAM
 *   policy; the S3 answer, 403 AccessDenied on PUT, is the same):
 *   Ready=False/StorageAccessDenied naming the request, retried only at the
 *   sync interval, the bucket untouched;
 * - the published objects edited or deleted behind the operator's back:
 *   repaired on the next sync, with a DocumentsPublished Event naming the key.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { CopyObjectCommand, DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { createMinioUser } from '../bed/minio-admin.ts';
import { createS3Client } from '../bed/s3.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  createSecret,
  eventually,
  OperatorProcess,
  waitForReady,
} from '../e2e/harness.ts';
import {
  anonymous,
  eventsOf,
  installWithWriter,
  linesOf,
  patchSpec,
  publisher,
  putObjectCount,
  sleep,
  stored,
} from './helpers.ts';

const NAME = 'store-faults';
const PREFIX = 'public/cluster-a';
const JWKS_KEY = `${PREFIX}/openid/v1/jwks`;
const DISCOVERY_KEY = `${PREFIX}/.well-known/openid-configuration`;
const SYNC_MS = 10_000;
const BACKOFF_MAX_MS = 4000;
const WINDOW_MS = 30_000;

describe('faults: storage down, refusing writes, edited behind our back', () => {
  let bed: Bed;
  let op: OperatorProcess;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await op?.stop('SIGTERM');
      },
    },
  );

  const servedCacheControl = async () => (await anonymous(bed, PREFIX)).jwks.headers['cache-control'];
  const minioServes = async () =>
    (await request(`${bed.state.s3.endpoint}/minio/health/live`, { ca: bed.ca }).catch(() => undefined))
      ?.status === 200;

  before(async () => {
    bed = useOwn();
    const kubeconfig = await installWithWriter(bed);
    op = await OperatorProcess.start(bed, kubeconfig, [
      '--leader-elect',
      'false',
      '--backoff-max',
      `${BACKOFF_MAX_MS / 1000}s`,
    ]);
    await applyYaml(bed, publisher(bed, NAME, { prefix: PREFIX }));
    await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
  });

  it('MinIO down: StorageUnreachable, backoff capped at --backoff-max, publishes as soon as it is back', async (t) => {
    const before = await stored(bed, PREFIX);
    await bed.stopServer('minio');
    // The later tests need MinIO, whatever happens here.
    t.after(async () => {
      if (!(await minioServes())) await bed.startServer('minio');
    });
    const downAt = Date.now();
    const p = await waitForReady(bed, NAME, 'False', 'StorageUnreachable', 30_000);
    assert.match(
      condition(p, 'Published')?.message ?? '',
      /^HEAD s3:\/\/oidc-bed\/public\/cluster-a\/\S+: ECONNREFUSED; the bucket keeps the last published documents$/,
    );
    // 1 s + 2 s + 4 s: by now the delay is at its cap.
    await sleep(Math.max(0, downAt + 8000 - Date.now()));
    // A change to publish once storage is back. A spec change is synced at once, outside the
    // backoff (and after the sync in flight, if any); the window starts once the new generation
    // has been synced, so every attempt in it is a backoff retry.
    await patchSpec(bed, NAME, { cacheControl: 'public, max-age=91' });
    await waitForReady(bed, NAME, 'False', 'StorageUnreachable', 30_000);
    const from = Date.now();
    await sleep(WINDOW_MS);
    const attempts = linesOf(op, NAME, 'sync failed', from)
      .filter((l) => l.code === 'STORAGE_UNREACHABLE')
      .map((l) => Date.parse(l.time ?? ''))
      .filter((x) => x < from + WINDOW_MS);
    const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] ?? t));
    const rate = attempts.length / (WINDOW_MS / 1000);
    t.diagnostic(
      `MinIO down: ${attempts.length} attempts in ${WINDOW_MS / 1000} s (${rate.toFixed(2)}/s), gaps ${gaps.join(', ')} ms`,
    );
    // The delay at the cap is drawn from [cap/2, cap] (jitter in the upper half): at most one attempt
    // every 2 s, so at most 16 in 30 s; and it keeps trying, at least one every cap + a slow sync.
    assert.ok(
      attempts.length <= WINDOW_MS / (BACKOFF_MAX_MS / 2) + 1,
      `${attempts.length} attempts: too many`,
    );
    assert.ok(attempts.length >= 4, `${attempts.length} attempts in ${WINDOW_MS} ms: it stopped retrying`);
    for (const g of gaps) assert.ok(g >= BACKOFF_MAX_MS / 2 - 100, `a retry ${g} ms after the previous one`);

    await bed.startServer('minio');
    const backAt = Date.now();
    await eventually(
      'the change to be published',
      async () => ((await servedCacheControl()) === 'public, max-age=91' ? true : undefined),
      30_000,
    );
    const publishedMs = Date.now() - backAt;
    t.diagnostic(`published ${publishedMs} ms after MinIO was back`);
    assert.ok(
      publishedMs < BACKOFF_MAX_MS + 10_000,
      `published ${publishedMs} ms after MinIO was back: expected within the backoff cap`,
    );
    await waitForReady(bed, NAME, 'True', 'Ready');
    const after = await stored(bed, PREFIX);
    assert.equal(after.jwks?.body, before.jwks?.body, 'the same JWKS bytes, newly published');
    assert.equal(after.discovery?.body, before.discovery?.body);
  });

  it('a credentials Secret with the wrong secret key: StorageAccessDenied, retried at the sync interval, bucket untouched', async (t) => {
    await createSecret(bed, 's3-wrong-secret', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: 'not-the-secret-key',
    });
    const before = await stored(bed, PREFIX);
    const puts = await putObjectCount(bed);
    await patchSpec(bed, NAME, {
      cacheControl: 'public, max-age=92',
      storage: { s3: { credentialsSecretRef: { name: 's3-wrong-secret' } } },
    });
    const p = await waitForReady(bed, NAME, 'False', 'StorageAccessDenied', 30_000);
    assert.match(
      condition(p, 'Published')?.message ?? '',
      /^HEAD s3:\/\/oidc-bed\/public\/cluster-a\/\S+: access denied \(HTTP 403\); the bucket keeps the last published documents$/,
    );
    const from = Date.now();
    await sleep(25_000);
    const attempts = linesOf(op, NAME, 'sync failed', from).length;
    t.diagnostic(`wrong secret key: ${attempts} attempts in 25 s (syncInterval ${SYNC_MS / 1000} s)`);
    assert.ok(
      attempts <= 25_000 / SYNC_MS + 1,
      `${attempts} attempts: a refused credential is not retried fast`,
    );
    assert.ok(attempts >= 1, 'it retries at the sync interval');
    assert.deepEqual(
      await stored(bed, PREFIX),
      before,
      'the bucket is untouched (bytes, ETag, Last-Modified)',
    );
    assert.equal(await putObjectCount(bed), puts, 'no PutObject');
  });

  it('credentials whose policy denies PutObject: StorageAccessDenied on the JWKS PUT, discovery never attempted, bucket untouched', async (t) => {
    const s3 = bed.state.s3;
    const creds = await createMinioUser(s3, bed.ca, 'oidc-nowrite', {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: ['s3:GetObject', 's3:PutObject', 's3:ListBucket'],
          Resource: [`arn:aws:s3:::${s3.bucket}`, `arn:aws:s3:::${s3.bucket}/*`],
        },
        { Effect: 'Deny', Action: ['s3:PutObject'], Resource: [`arn:aws:s3:::${s3.bucket}/public/*`] },
      ],
    });
    await createSecret(bed, 's3-nowrite', {
      AWS_ACCESS_KEY_ID: creds.accessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
    });
    const before = await stored(bed, PREFIX);
    const puts = await putObjectCount(bed);
    const from = Date.now();
    await patchSpec(bed, NAME, { storage: { s3: { credentialsSecretRef: { name: 's3-nowrite' } } } });
    const p = await waitForReady(bed, NAME, 'False', 'StorageAccessDenied', 30_000);
    assert.match(
      condition(p, 'Published')?.message ?? '',
      /^PUT s3:\/\/oidc-bed\/public\/cluster-a\/openid\/v1\/jwks: access denied \(AccessDenied\); the bucket keeps the last published documents$/,
      'the JWKS is written first, and its refusal stops the sync',
    );
    await sleep(12_000);
    const attempts = linesOf(op, NAME, 'sync failed', from).length;
    const putAttempts = (await putObjectCount(bed)) - puts;
    t.diagnostic(
      `PutObject denied: ${attempts} failed syncs, ${putAttempts} PutObject requests seen by MinIO`,
    );
    assert.ok(
      putAttempts <= attempts,
      `${putAttempts} PUTs for ${attempts} syncs: one refused JWKS PUT per sync at most, never the discovery document`,
    );
    assert.deepEqual(
      await stored(bed, PREFIX),
      before,
      'the bucket is untouched (bytes, ETag, Last-Modified)',
    );

    await patchSpec(bed, NAME, { storage: { s3: { credentialsSecretRef: { name: 's3-writer' } } } });
    await waitForReady(bed, NAME, 'True', 'Ready');
    assert.equal(await servedCacheControl(), 'public, max-age=92', 'the pending change is published');
  });

  describe('objects edited or deleted behind its back', () => {
    const client = () => createS3Client(bed.state.s3, bed.ca);

    /** Waits for a DocumentsPublished Event after `since` whose note names each of `writes`. */
    async function repairEvent(since: number, writes: string[]) {
      return eventually(
        `a DocumentsPublished Event naming ${writes.join(', ')}`,
        async () =>
          (await eventsOf(bed, NAME)).find(
            (e) =>
              e.reason === 'DocumentsPublished' &&
              e.type === 'Normal' &&
              Date.parse(e.eventTime ?? '') >= since &&
              e.note === `wrote ${writes.join(', ')}`,
          ),
        SYNC_MS + 15_000,
      );
    }

    let lastGood: Awaited<ReturnType<typeof stored>> | undefined;
    async function tamper(
      t: { diagnostic(m: string): void },
      what: string,
      act: () => Promise<void>,
      writes: string[],
      readyBefore = true,
    ) {
      if (readyBefore) await waitForReady(bed, NAME, 'True', 'Ready');
      const good = readyBefore ? await stored(bed, PREFIX) : undefined;
      const at = Date.now();
      await act();
      const event = await repairEvent(at, writes);
      const repairedMs = Date.parse(event.eventTime ?? '') - at;
      await waitForReady(bed, NAME, 'True', 'Ready');
      const now = await stored(bed, PREFIX);
      const before = good ?? lastGood;
      assert.ok(before, 'the documents as published before are known');
      assert.equal(now.jwks?.body, before.jwks?.body, 'the JWKS bytes are restored');
      assert.equal(now.discovery?.body, before.discovery?.body, 'the discovery bytes are restored');
      assert.equal(now.jwks?.cacheControl, before.jwks?.cacheControl);
      assert.equal(now.discovery?.cacheControl, before.discovery?.cacheControl);
      lastGood = now;
      t.diagnostic(`${what}: repaired ${repairedMs} ms later; Event note "${event.note}"`);
      assert.ok(repairedMs < SYNC_MS + 10_000, `repaired on the next sync (${repairedMs} ms)`);
    }

    it('repairs a deleted JWKS', async (t) => {
      const s3 = client();
      try {
        await tamper(
          t,
          'JWKS deleted',
          async () => {
            await s3.send(new DeleteObjectCommand({ Bucket: bed.state.s3.bucket, Key: JWKS_KEY }));
          },
          [`${JWKS_KEY} (missing)`],
        );
      } finally {
        s3.destroy();
      }
    });

    it('leaves a discovery document replaced by someone else (other bytes, no owner) alone, and repairs it once deleted', async (t) => {
      const s3 = client();
      try {
        await waitForReady(bed, NAME, 'True', 'Ready');
        lastGood = await stored(bed, PREFIX);
        const foreign = JSON.stringify({
          issuer: 'https://evil.example.com',
          jwks_uri: 'https://evil.example.com/k',
        });
        await s3.send(
          new PutObjectCommand({
            Bucket: bed.state.s3.bucket,
            Key: DISCOVERY_KEY,
            Body: foreign,
            ContentType: 'application/json',
          }),
        );
        // Not this publisher's object: it says so and writes nothing, rather than fight over it.
        const p = await waitForReady(bed, NAME, 'False', 'ObjectNotOwned', SYNC_MS + 10_000);
        assert.match(
          p.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '',
          /was not written by this OidcPublisher/,
        );
        assert.equal(
          (await stored(bed, PREFIX)).discovery?.body,
          foreign,
          'the foreign object is not overwritten',
        );
        // Deleting it hands the key back: the next sync writes it again.
        await tamper(
          t,
          'foreign discovery document deleted',
          async () => {
            await s3.send(new DeleteObjectCommand({ Bucket: bed.state.s3.bucket, Key: DISCOVERY_KEY }));
          },
          [`${DISCOVERY_KEY} (missing)`],
          false,
        );
      } finally {
        s3.destroy();
      }
    });

    it('repairs headers changed in place (Cache-Control rewritten by a copy, hash metadata kept)', async (t) => {
      const s3 = client();
      try {
        const bucket = bed.state.s3.bucket;
        const sha = (await stored(bed, PREFIX)).jwks?.sha256 ?? '';
        assert.ok(sha, 'the JWKS carries its hash in its metadata');
        await tamper(
          t,
          'JWKS Cache-Control changed',
          async () => {
            await s3.send(
              new CopyObjectCommand({
                Bucket: bucket,
                Key: JWKS_KEY,
                CopySource: `${bucket}/${JWKS_KEY}`,
                MetadataDirective: 'REPLACE',
                ContentType: 'application/jwk-set+json',
                CacheControl: 'no-store',
                Metadata: { 'oidc-publisher-sha256': sha },
              }),
            );
          },
          [`${JWKS_KEY} (headers changed)`],
        );
      } finally {
        s3.destroy();
      }
    });

    it('repairs both objects deleted, JWKS first', async (t) => {
      const s3 = client();
      try {
        await tamper(
          t,
          'both objects deleted',
          async () => {
            for (const Key of [DISCOVERY_KEY, JWKS_KEY]) {
              await s3.send(new DeleteObjectCommand({ Bucket: bed.state.s3.bucket, Key }));
            }
          },
          [`${JWKS_KEY} (missing)`, `${DISCOVERY_KEY} (missing)`],
        );
      } finally {
        s3.destroy();
      }
    });
  });
});
