/**
 * publish_ms: one publish with a change, on the operator's own code path, in
 * this process: ApiServerSource reads both documents, prepare() validates and
 * renders them, publishObjects() writes both (the JWKS first), with the memo of
 * what it last wrote that the reconciler keeps, so an object known to differ is
 * written without a HEAD first. Each iteration alternates spec.cacheControl, so
 * the bytes stay the same but both objects must be rewritten.
 *
 * floor_ms: the same two GETs (node:https, keep-alive, the admin certificate)
 * and two PUTs (a bare S3Client PutObject, JWKS first) with no operator logic.
 * The two are interleaved, alternating which goes first, so load on the
 * machine hits both alike.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { OidcPublisherSpec } from '../src/api/types.ts';
import { publishObjects, type WriteMemo } from '../src/controller/publish-objects.ts';
import type { KeyRecord } from '../src/core/keys.ts';
import { prepare } from '../src/core/plan.ts';
import { DISCOVERY_PATH, JWKS_PATH, objectKey, resolveSpec } from '../src/core/spec.ts';
import { loadKubeAccess } from '../src/kube/access.ts';
import { ApiServerSource, DISCOVERY_ENDPOINT, JWKS_ENDPOINT } from '../src/sources/apiserver.ts';
import { EndpointPolicy } from '../src/stores/endpoints.ts';
import { S3Store } from '../src/stores/s3.ts';
import type { Bed } from '../test/bed/bed.ts';
import { createS3Client } from '../test/bed/s3.ts';
import { percentile } from './stats.ts';

export interface PublishResult {
  iterations: number;
  publish: { p50: number; p95: number };
  floor: { p50: number; p95: number };
  /** publish p50 / floor p50. */
  ratio: number;
}

function get(agent: Agent, url: string, accept: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { accept } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(Buffer.concat(chunks))
          : reject(new Error(`GET ${url}: HTTP ${res.statusCode}`)),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

export async function measurePublish(bed: Bed, iterations: number, warmup = 5): Promise<PublishResult> {
  const s3 = bed.state.s3;
  const source = new ApiServerSource(await loadKubeAccess(bed.adminKubeconfig, {}), { timeoutMs: 10_000 });
  const prefix = 'bench/publish';
  const store = new S3Store({
    bucket: s3.bucket,
    region: s3.region,
    prefix,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    timeoutMs: 15_000,
    endpoints: EndpointPolicy.of(['s3=127.0.0.1']),
  });
  const base: OidcPublisherSpec = {
    issuerURL: bed.issuer,
    storage: {
      s3: { bucket: s3.bucket, region: s3.region, prefix, endpoint: s3.endpoint, forcePathStyle: true },
    },
  };
  // Two values that differ from each other and, the first, from whatever an earlier run left.
  const cacheControls = [`public, max-age=${301 + Math.floor(Math.random() * 1e6)}`, 'public, max-age=300'];
  const specs = cacheControls.map((cacheControl) => resolveSpec({ ...base, cacheControl }));
  let previous: KeyRecord[] | undefined;
  // The reconciler keeps one per store: what it last wrote there.
  const memo: WriteMemo = new Map();

  const operatorPath = async (i: number): Promise<number> => {
    const spec = specs[i % 2];
    if (!spec) throw new Error('no spec');
    const started = performance.now();
    const raw = await source.fetchDocuments();
    const prep = prepare(spec, raw, { previous, now: new Date() });
    if (prep.kind !== 'ready') throw new Error(`prepare: ${prep.kind}`);
    const { writes } = await publishObjects(store, prep.objects, { memo });
    const elapsed = performance.now() - started;
    if (writes.length !== 2) throw new Error(`expected 2 writes, made ${writes.length}`);
    previous = prep.retention.records;
    return elapsed;
  };

  const agent = new Agent({
    keepAlive: true,
    ca: bed.ca,
    cert: readFileSync(bed.state.admin.cert),
    key: readFileSync(bed.state.admin.key),
  });
  const client = createS3Client(s3, bed.ca);
  const floorPrefix = 'bench/floor';
  const floorPath = async (i: number): Promise<number> => {
    const cacheControl = cacheControls[i % 2];
    const started = performance.now();
    const [discovery, jwks] = await Promise.all([
      get(agent, `${bed.apiserverURL}${DISCOVERY_ENDPOINT}`, 'application/json'),
      get(agent, `${bed.apiserverURL}${JWKS_ENDPOINT}`, 'application/jwk-set+json, application/json'),
    ]);
    for (const [path, body, contentType] of [
      [JWKS_PATH, jwks, 'application/jwk-set+json'],
      [DISCOVERY_PATH, discovery, 'application/json'],
    ] as const) {
      await client.send(
        new PutObjectCommand({
          Bucket: s3.bucket,
          Key: objectKey(floorPrefix, path),
          Body: body,
          ContentType: contentType,
          CacheControl: cacheControl,
        }),
      );
    }
    return performance.now() - started;
  };

  const publish: number[] = [];
  const floor: number[] = [];
  try {
    for (let i = 0; i < warmup + iterations; i++) {
      const pair =
        i % 2 === 0
          ? [await operatorPath(i), await floorPath(i)]
          : [await floorPath(i), await operatorPath(i)].reverse();
      if (i < warmup) continue;
      publish.push(pair[0] ?? Number.NaN);
      floor.push(pair[1] ?? Number.NaN);
    }
  } finally {
    source.close();
    store.close();
    client.destroy();
    agent.destroy();
  }
  const p50 = percentile(publish, 50);
  const f50 = percentile(floor, 50);
  return {
    iterations,
    publish: { p50, p95: percentile(publish, 95) },
    floor: { p50: f50, p95: percentile(floor, 95) },
    ratio: p50 / f50,
  };
}
