/**
 * What the fault scenarios share: OidcPublisher manifests pointed at the bed,
 * the bucket as an outsider sees it (bytes, ETag, Last-Modified, MinIO's own
 * request counts), the operator's log lines by publisher and message, and
 * Events. Everything is observed from outside the operator.
 */
import { readFileSync } from 'node:fs';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { createS3Client } from '../bed/s3.ts';
import { applyYaml, createSecret, installOperator, type OperatorProcess } from '../e2e/harness.ts';

export interface PublisherOptions {
  prefix: string;
  issuerURL?: string;
  syncInterval?: string;
  cacheControl?: string;
  /** Read the documents through this kubeconfig Secret instead of the operator's own cluster. */
  kubeconfigSecret?: string;
  /** Storage credentials Secret (default s3-writer). */
  credentialsSecret?: string;
  /** S3 endpoint (default the bed's MinIO). */
  endpoint?: string;
  verification?: boolean;
  deletionPolicy?: 'Retain' | 'Delete';
}

/** An OidcPublisher (JSON) publishing to the bed's bucket under `prefix`. */
export function publisher(bed: Bed, name: string, o: PublisherOptions): string {
  const s3 = bed.state.s3;
  return JSON.stringify({
    apiVersion: 'oidcpublisher.io/v1alpha1',
    kind: 'OidcPublisher',
    metadata: { name },
    spec: {
      issuerURL: o.issuerURL ?? bed.issuer,
      syncInterval: o.syncInterval ?? '10s',
      ...(o.cacheControl ? { cacheControl: o.cacheControl } : {}),
      ...(o.deletionPolicy ? { deletionPolicy: o.deletionPolicy } : {}),
      ...(o.verification === false ? { verification: { enabled: false } } : {}),
      ...(o.kubeconfigSecret ? { source: { kubeconfigSecretRef: { name: o.kubeconfigSecret } } } : {}),
      storage: {
        s3: {
          bucket: s3.bucket,
          region: s3.region,
          prefix: o.prefix,
          endpoint: o.endpoint ?? s3.endpoint,
          forcePathStyle: true,
          credentialsSecretRef: { name: o.credentialsSecret ?? 's3-writer' },
        },
      },
    },
  });
}

/** installOperator, plus the s3-writer Secret with the bed's MinIO keys. Returns the operator's kubeconfig. */
export async function installWithWriter(bed: Bed): Promise<string> {
  const kubeconfig = await installOperator(bed);
  await createSecret(bed, 's3-writer', {
    AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
  });
  return kubeconfig;
}

/**
 * A ServiceAccount allowed to read the issuer documents, and a Secret `name`
 * holding an inline kubeconfig with its token for `server` (default the bed's
 * API server). Returns the token.
 */
export async function sourceKubeconfigSecret(bed: Bed, name: string, server?: string): Promise<string> {
  await bed.serviceAccountKubeconfig('issuer-readers', 'reader');
  await applyYaml(
    bed,
    JSON.stringify({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'faults-issuer-reader' },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: 'system:service-account-issuer-discovery',
      },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: 'issuer-readers' }],
    }),
  );
  const token = await bed.mintToken({ namespace: 'issuer-readers', serviceAccount: 'reader' });
  await createSecret(bed, name, { kubeconfig: bed.inlineKubeconfig(token, server) });
  return token;
}

export async function patchSpec(bed: Bed, name: string, spec: Record<string, unknown>): Promise<void> {
  await bed.kubectl(['patch', 'oidcpublisher', name, '--type=merge', '-p', JSON.stringify({ spec })]);
}

export interface StoredObject {
  body: string;
  etag: string;
  lastModified: number;
  cacheControl: string;
  /** The content hash the operator keeps in the object's metadata. */
  sha256: string;
}

/** Both objects under `prefix`, read with the bed's root credentials (not through any cache). */
export async function stored(
  bed: Bed,
  prefix: string,
): Promise<{ discovery: StoredObject | undefined; jwks: StoredObject | undefined }> {
  const client = createS3Client(bed.state.s3, bed.ca);
  try {
    const get = async (key: string): Promise<StoredObject | undefined> => {
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: bed.state.s3.bucket, Key: key }));
        return {
          body: (await res.Body?.transformToString()) ?? '',
          etag: res.ETag ?? '',
          lastModified: res.LastModified?.getTime() ?? 0,
          cacheControl: res.CacheControl ?? '',
          sha256: res.Metadata?.['oidc-publisher-sha256'] ?? '',
        };
      } catch (err) {
        if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
        throw err;
      }
    };
    const [discovery, jwks] = await Promise.all([
      get(`${prefix}/.well-known/openid-configuration`),
      get(`${prefix}/openid/v1/jwks`),
    ]);
    return { discovery, jwks };
  } finally {
    client.destroy();
  }
}

/** The JWKS and discovery document as an anonymous relying party gets them from the public bucket. */
export async function anonymous(bed: Bed, prefix: string) {
  const base = `${bed.state.s3.endpoint}/${bed.state.s3.bucket}/${prefix}`;
  const [discovery, jwks] = await Promise.all([
    request(`${base}/.well-known/openid-configuration`, { ca: bed.ca }),
    request(`${base}/openid/v1/jwks`, { ca: bed.ca }),
  ]);
  return { discovery, jwks };
}

export async function putObjectCount(bed: Bed): Promise<number> {
  return (await bed.s3RequestCounts()).get('PutObject') ?? 0;
}

export interface LogLine {
  msg?: string;
  level?: string;
  time?: string;
  oidcpublisher?: string;
  code?: string;
  message?: string;
  [k: string]: unknown;
}

/** The operator's log lines about `publisher` with message `msg`, after `since` (ms since epoch). */
export function linesOf(
  op: OperatorProcess,
  publisher: string | undefined,
  msg: string,
  since = 0,
): LogLine[] {
  return (op.logs() as LogLine[]).filter(
    (l) =>
      l.msg === msg &&
      (publisher === undefined || l.oidcpublisher === publisher) &&
      Date.parse(l.time ?? '') >= since,
  );
}

/** Times (ms since epoch) of a publisher's completed syncs, failed or not. */
export function syncTimes(op: OperatorProcess, publisher: string, since = 0): number[] {
  return (op.logs() as LogLine[])
    .filter(
      (l) =>
        l.oidcpublisher === publisher &&
        ['sync failed', 'published', 'up to date', 'documents not published'].includes(l.msg ?? ''),
    )
    .map((l) => Date.parse(l.time ?? ''))
    .filter((t) => t >= since);
}

export interface EventView {
  reason?: string;
  note?: string;
  type?: string;
  eventTime?: string;
  metadata?: { creationTimestamp?: string };
  regarding?: { kind?: string; name?: string };
}

/** events.k8s.io Events about OidcPublisher `name` (in default, where those of cluster-scoped objects live). */
export async function eventsOf(bed: Bed, name: string): Promise<EventView[]> {
  const list = JSON.parse(
    await bed.kubectl(['get', 'events.events.k8s.io', '-n', 'default', '-o', 'json']),
  ) as { items: EventView[] };
  return list.items.filter((e) => e.regarding?.kind === 'OidcPublisher' && e.regarding.name === name);
}

/** The bed API server's /metrics (as the bed admin). */
export async function apiserverMetrics(bed: Bed): Promise<string> {
  const res = await request(`${bed.apiserverURL}/metrics`, {
    ca: bed.ca,
    cert: readFileSync(bed.state.admin.cert),
    key: readFileSync(bed.state.admin.key),
  });
  if (res.status !== 200) throw new Error(`apiserver /metrics: HTTP ${res.status}`);
  return res.text();
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
