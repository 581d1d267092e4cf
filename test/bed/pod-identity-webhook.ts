/**
 * The AWS pod identity webhook (github.com/aws/amazon-eks-pod-identity-webhook) on the bed's
 * node, deployed the way a self-managed cluster deploys it: an image of the webhook built from
 * source, and the objects of the webhook's own deploy/ manifests (auth.yaml, deployment-base.yaml,
 * service.yaml, mutatingwebhook.yaml), rendered by `podIdentityWebhookManifests`.
 *
 * What differs from those manifests, and why:
 * - The serving certificate is issued by the bed's CA into a Secret, and the
 *   MutatingWebhookConfiguration carries that CA as its caBundle; upstream's deployment-base.yaml
 *   gets both from cert-manager (a self-signed ClusterIssuer and a Certificate).
 * - The ClusterRole grants only what the webhook uses with a mounted certificate (--in-cluster=false):
 *   reading ServiceAccounts. Upstream's also grants CertificateSigningRequests and a Secret, for
 *   its --in-cluster mode, which requests its own certificate.
 * - The webhook runs as a non-root user on port 8443 behind the Service's port 443, with a read-only
 *   root filesystem, and a readiness probe on /healthz.
 * - --aws-default-region makes it inject AWS_REGION and AWS_DEFAULT_REGION too.
 *
 * Once it serves, a Pod created with a ServiceAccount annotated `eks.amazonaws.com/role-arn`
 * (and optionally `eks.amazonaws.com/audience`) gets AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and
 * a projected token volume from the API server's admission chain: nothing in the Pod's own spec.
 */
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import type { Bed } from './bed.ts';
import { type BuiltImage, Dockerd, ensureNodePackages, progress } from './container-image.ts';
import { issueCert } from './pki.ts';
import { cacheDir, ensureTools, VERSIONS } from './tools.ts';

export const POD_IDENTITY_WEBHOOK = {
  name: 'pod-identity-webhook',
  namespace: 'pod-identity-webhook',
  imageRepo: 'oidc-publisher.local/pod-identity-webhook',
  annotationPrefix: 'eks.amazonaws.com',
  /** The port the webhook listens on in its Pod (the Service's 443 forwards here). */
  port: 8443,
  /** Where the webhook mounts the token it injects (its --token-mount-path default). */
  tokenMountPath: '/var/run/secrets/eks.amazonaws.com/serviceaccount',
} as const;

const DOCKERFILE = `FROM scratch
COPY webhook /webhook
USER 65532:65532
ENTRYPOINT ["/webhook"]
`;

/**
 * The webhook's image (its binary, built by build-tools.sh, on an empty base) built with the bed's
 * dockerd, cached as a `docker save` tarball keyed by the binary and the Dockerfile.
 */
export async function buildPodIdentityWebhookImage(runDir: string): Promise<BuiltImage> {
  const binary = ensureTools(['pod-identity-webhook']).podIdentityWebhook;
  const key = createHash('sha256').update(DOCKERFILE).update(readFileSync(binary)).digest('hex').slice(0, 16);
  const ref = `${POD_IDENTITY_WEBHOOK.imageRepo}:${VERSIONS.podIdentityWebhook}-${key}`;
  const images = join(cacheDir(), 'images');
  mkdirSync(images, { recursive: true });
  const tarball = join(images, `pod-identity-webhook-${VERSIONS.podIdentityWebhook}-${key}.tar`);
  if (existsSync(tarball)) return { ref, tarball, cached: true };
  ensureNodePackages();
  const t0 = Date.now();
  progress(`building ${ref} (the webhook's binary on an empty base), cached in ${tarball}`);
  const ctx = mkdtempSync(join(tmpdir(), 'oidc-webhook-image-'));
  const docker = await Dockerd.start(runDir);
  try {
    copyFileSync(binary, join(ctx, 'webhook'));
    writeFileSync(join(ctx, 'Dockerfile'), DOCKERFILE);
    await docker.runLogged(['build', '--tag', ref, ctx], join(runDir, 'pod-identity-webhook-image.log'));
    const partial = `${tarball}.${process.pid}`;
    await docker.run(['save', '--output', partial, ref]);
    renameSync(partial, tarball);
    progress(`built ${ref} in ${((Date.now() - t0) / 1000).toFixed(0)}s`);
  } finally {
    await docker.stop();
    rmSync(ctx, { recursive: true, force: true });
  }
  return { ref, tarball, cached: false };
}

export interface WebhookManifestOptions {
  image: string;
  /** PEM of the CA that signed the serving certificate: the MutatingWebhookConfiguration's caBundle. */
  caBundle: string;
  /** PEM serving certificate and key for pod-identity-webhook.<namespace>.svc. */
  tlsCert: string;
  tlsKey: string;
  /** Injected as AWS_REGION and AWS_DEFAULT_REGION. */
  region: string;
  /** The token audience when a ServiceAccount has no eks.amazonaws.com/audience annotation. */
  defaultAudience?: string;
}

/** The DNS names the API server may use for the webhook's Service: its serving certificate's SANs. */
export function webhookServiceNames(namespace: string = POD_IDENTITY_WEBHOOK.namespace): string[] {
  const n = POD_IDENTITY_WEBHOOK.name;
  return [n, `${n}.${namespace}`, `${n}.${namespace}.svc`, `${n}.${namespace}.svc.cluster.local`];
}

/** Every object of the webhook, as one multi-document YAML for `kubectl apply -f -`. */
export function podIdentityWebhookManifests(o: WebhookManifestOptions): string {
  const { name, namespace, annotationPrefix, port } = POD_IDENTITY_WEBHOOK;
  const labels = { app: name };
  const docs: Record<string, unknown>[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
    // deploy/auth.yaml
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name },
      rules: [{ apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'watch', 'list'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
    // What cert-manager's Certificate of deploy/deployment-base.yaml would write.
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${name}-cert`, namespace },
      type: 'kubernetes.io/tls',
      stringData: { 'tls.crt': o.tlsCert, 'tls.key': o.tlsKey },
    },
    // deploy/deployment-base.yaml
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: name,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 65532,
              runAsGroup: 65532,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name,
                image: o.image,
                imagePullPolicy: 'Never',
                command: [
                  '/webhook',
                  '--in-cluster=false',
                  `--namespace=${namespace}`,
                  `--service-name=${name}`,
                  `--annotation-prefix=${annotationPrefix}`,
                  `--token-audience=${o.defaultAudience ?? 'sts.amazonaws.com'}`,
                  `--port=${port}`,
                  `--aws-default-region=${o.region}`,
                  '--logtostderr',
                ],
                ports: [{ name: 'https', containerPort: port }],
                readinessProbe: {
                  httpGet: { path: '/healthz', port, scheme: 'HTTPS' },
                  periodSeconds: 2,
                },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: [{ name: 'cert', mountPath: '/etc/webhook/certs', readOnly: true }],
              },
            ],
            volumes: [{ name: 'cert', secret: { secretName: `${name}-cert` } }],
          },
        },
      },
    },
    // deploy/service.yaml
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace },
      spec: { ports: [{ port: 443, targetPort: port }], selector: labels },
    },
    // deploy/mutatingwebhook.yaml, the caBundle in place of cert-manager's inject-ca-from
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name },
      webhooks: [
        {
          name: 'pod-identity-webhook.amazonaws.com',
          failurePolicy: 'Ignore',
          clientConfig: {
            service: { name, namespace, path: '/mutate' },
            caBundle: Buffer.from(o.caBundle).toString('base64'),
          },
          objectSelector: {
            matchExpressions: [
              { key: `${annotationPrefix}/skip-pod-identity-webhook`, operator: 'DoesNotExist', values: [] },
            ],
          },
          rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
          sideEffects: 'None',
          admissionReviewVersions: ['v1beta1'],
        },
      ],
    },
  ];
  return docs.map((d) => stringify(d, { aliasDuplicateObjects: false })).join('---\n');
}

/**
 * Builds the webhook's image into the bed's node, issues its serving certificate from the bed's
 * CA, applies its objects and waits until its Deployment is rolled out. Returns the image.
 */
export async function deployPodIdentityWebhook(bed: Bed, o: { region: string }): Promise<BuiltImage> {
  const node = bed.node;
  if (!node) throw new Error('the pod identity webhook runs on the bed node: start the bed with node: true');
  const image = await buildPodIdentityWebhookImage(join(bed.dir, 'image-build'));
  await node.importImage(image.tarball);
  const dir = join(bed.dir, 'pki');
  const names = webhookServiceNames();
  const serving = issueCert(
    { dir, cert: bed.state.caFile, key: join(dirname(bed.state.caFile), 'ca.key') },
    POD_IDENTITY_WEBHOOK.name,
    { commonName: names[2] ?? '', serverNames: names },
  );
  await bed.kubectl(['apply', '-f', '-'], {
    input: podIdentityWebhookManifests({
      image: image.ref,
      caBundle: bed.ca.toString(),
      tlsCert: readFileSync(serving.cert, 'utf8'),
      tlsKey: readFileSync(serving.key, 'utf8'),
      region: o.region,
    }),
  });
  await bed.kubectl([
    'rollout',
    'status',
    `deployment/${POD_IDENTITY_WEBHOOK.name}`,
    '-n',
    POD_IDENTITY_WEBHOOK.namespace,
    '--timeout=180s',
  ]);
  return image;
}

/** The environment variables of a Pod's first container, by name. */
export function containerEnv(pod: PodSpecView): Record<string, string> {
  return Object.fromEntries((pod.spec.containers[0]?.env ?? []).map((e) => [e.name, e.value ?? '']));
}

export interface PodSpecView {
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  spec: {
    serviceAccountName?: string;
    containers: {
      name: string;
      env?: { name: string; value?: string }[];
      volumeMounts?: { name: string; mountPath: string }[];
    }[];
    volumes?: {
      name: string;
      projected?: {
        sources: { serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string } }[];
      };
    }[];
  };
}

/**
 * Creates `pod` with a server-side dry run until the webhook's mutation shows in what the API
 * server returns: the webhook is serving, and its cache knows the Pod's ServiceAccount. Returns
 * that mutated Pod. A real create before this may go through unmutated (failurePolicy Ignore).
 */
export async function untilWebhookMutates(
  bed: Bed,
  podYaml: string,
  timeoutMs = 90_000,
): Promise<PodSpecView> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const pod = JSON.parse(
        await bed.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], { input: podYaml }),
      ) as PodSpecView;
      if (containerEnv(pod).AWS_ROLE_ARN) return pod;
      last = 'created without AWS_ROLE_ARN';
    } catch (err) {
      last = String(err);
    }
    if (Date.now() > deadline)
      throw new Error(`the pod identity webhook did not mutate a dry-run Pod in ${timeoutMs} ms: ${last}`);
    await sleep(500);
  }
}

/**
 * What the workload Pod runs (`node -e` in the project image, whose node_modules hold
 * @aws-sdk/client-s3): the AWS SDK's default credential chain, then a read and a write. One JSON
 * line per step; never a credential, only where it came from.
 */
const WORKLOAD_SCRIPT = `
const { S3Client, GetObjectCommand, PutObjectCommand } = require('@aws-sdk/client-s3');
const say = (o) => console.log(JSON.stringify(o));
const [bucket, key] = [process.env.BUCKET, process.env.KEY];
(async () => {
  say({ AWS_ROLE_ARN: process.env.AWS_ROLE_ARN ?? null, AWS_WEB_IDENTITY_TOKEN_FILE: process.env.AWS_WEB_IDENTITY_TOKEN_FILE ?? null, AWS_REGION: process.env.AWS_REGION ?? null });
  const s3 = new S3Client({ forcePathStyle: true, maxAttempts: 1, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  let creds;
  try {
    creds = await s3.config.credentials();
  } catch (err) {
    say({ credentials: null, error: err.name, message: err.message });
    return;
  }
  say({ credentials: 'obtained', source: Object.keys(creds.$source ?? {}), expiration: creds.expiration });
  try {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    say({ get: 's3://' + bucket + '/' + key, body: await got.Body.transformToString() });
  } catch (err) {
    say({ get: 's3://' + bucket + '/' + key, error: err.name });
  }
  try {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'written-by-' + process.env.HOSTNAME, Body: 'x' }));
    say({ put: 's3://' + bucket + '/written-by-' + process.env.HOSTNAME, result: 'allowed' });
  } catch (err) {
    say({ put: 's3://' + bucket + '/written-by-' + process.env.HOSTNAME, error: err.name });
  }
})();
`;

/** One line of the workload Pod's log. */
export interface WorkloadLine {
  AWS_ROLE_ARN?: string | null;
  AWS_WEB_IDENTITY_TOKEN_FILE?: string | null;
  AWS_REGION?: string | null;
  credentials?: string | null;
  source?: string[];
  error?: string;
  message?: string;
  get?: string;
  body?: string;
  put?: string;
  result?: string;
}

/**
 * A Pod that runs once with no credentials in its spec: only where the cloud is (the STS and S3
 * endpoints through AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL_S3), the CA of that endpoint from
 * the ConfigMap `caConfigMap` (key ca.crt) through NODE_EXTRA_CA_CERTS, and what to read. Instance
 * metadata is off (AWS_EC2_METADATA_DISABLED): with no role, the chain has nowhere else to look.
 */
export function workloadPodYaml(o: {
  name: string;
  namespace: string;
  serviceAccount: string;
  image: string;
  endpoint: string;
  caConfigMap: string;
  bucket: string;
  key: string;
}): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace },
    spec: {
      serviceAccountName: o.serviceAccount,
      restartPolicy: 'Never',
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'app',
          image: o.image,
          imagePullPolicy: 'Never',
          command: ['node', '-e', WORKLOAD_SCRIPT],
          env: [
            { name: 'AWS_ENDPOINT_URL_STS', value: o.endpoint },
            { name: 'AWS_ENDPOINT_URL_S3', value: o.endpoint },
            { name: 'AWS_EC2_METADATA_DISABLED', value: 'true' },
            { name: 'NODE_EXTRA_CA_CERTS', value: '/etc/cloud-ca/ca.crt' },
            { name: 'BUCKET', value: o.bucket },
            { name: 'KEY', value: o.key },
          ],
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
          volumeMounts: [{ name: 'cloud-ca', mountPath: '/etc/cloud-ca', readOnly: true }],
        },
      ],
      volumes: [{ name: 'cloud-ca', configMap: { name: o.caConfigMap } }],
    },
  });
}

/** Waits until the Pod `name` ran to completion and returns its log, parsed. */
export async function workloadLog(bed: Bed, namespace: string, name: string): Promise<WorkloadLine[]> {
  const phase = await (async () => {
    for (let i = 0; i < 240; i++) {
      const p = (
        await bed.kubectl(['get', 'pod', name, '-n', namespace, '-o', 'jsonpath={.status.phase}'])
      ).trim();
      if (p === 'Succeeded' || p === 'Failed') return p;
      await sleep(500);
    }
    return 'still running after 120 s';
  })();
  const log = await bed.kubectl(['logs', '-n', namespace, name]);
  if (phase !== 'Succeeded') throw new Error(`pod ${namespace}/${name}: ${phase}; its log:\n${log}`);
  return log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as WorkloadLine);
}
