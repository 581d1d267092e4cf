/**
 * The last step of the story, as Pods on the bed's real node: a workload Pod gets cloud
 * credentials with no keys in it. The operator (Pods of its image) publishes the issuer; a cloud
 * (a second MinIO, test/bed/sts.ts) trusts that published issuer; the AWS pod identity webhook
 * (test/bed/pod-identity-webhook.ts, deployed as on a self-managed cluster) injects the role and a
 * projected token into Pods of annotated ServiceAccounts; the AWS SDK's default credential chain
 * in the Pod does the rest.
 *
 * Each test says whose work it checks: the operator's (the issuer published, Ready), the
 * webhook's (the mutation, in the Pod spec as the API server stored it) or the cloud's (what the
 * Pod's own log says it was given and refused).
 *
 * Needs root (a real node): npm run test:node.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { parse, stringify } from 'yaml';
import { Bed } from '../bed/bed.ts';
import { type BuiltImage, buildProjectImage } from '../bed/container-image.ts';
import { request } from '../bed/http.ts';
import { NODE_NETWORK } from '../bed/node.ts';
import { writeOverlay } from '../bed/overlay.ts';
import {
  containerEnv,
  deployPodIdentityWebhook,
  POD_IDENTITY_WEBHOOK,
  type PodSpecView,
  untilWebhookMutates,
  type WorkloadLine,
  workloadLog,
  workloadPodYaml,
} from '../bed/pod-identity-webhook.ts';
import { type StsMinio, startStsMinio, stsS3Client } from '../bed/sts.ts';
import { createSecret, OPERATOR_NAMESPACE, ROOT } from '../e2e/harness.ts';

const PUBLISHER = 'cluster-issuer';
const PREFIX = 'public/cluster-a';
const BUCKET = 'workload-data';
const KEY = 'greeting.txt';
const GREETING = 'hello, workload-a/reader\n';
/** The namespace and ServiceAccount the role's policy names in its jwt:sub condition. */
const ALLOWED = { namespace: 'workload-a', serviceAccount: 'reader' };
const OTHER_NAMESPACE = 'workload-b';
const TOKEN_FILE = `${POD_IDENTITY_WEBHOOK.tokenMountPath}/token`;

function timed(label: string, since: number): void {
  process.stderr.write(`  ${label}: ${((Date.now() - since) / 1000).toFixed(1)}s\n`);
}

describe('a Pod gets cloud credentials through the AWS pod identity webhook on a real node', {
  timeout: 900_000,
}, () => {
  let bed: Bed;
  let image: BuiltImage;
  let sts: StsMinio;
  let overlay: string;

  const kubectl = (args: readonly string[], input?: string) =>
    bed.kubectl(args, input === undefined ? {} : { input });

  before(async () => {
    let t = Date.now();
    for (const signal of ['SIGINT', 'SIGTERM'] as const)
      process.once(signal, () => {
        void (bed ? bed.stop() : Promise.resolve()).finally(() => process.exit(130));
      });
    bed = await Bed.start({ node: true, gcs: false });
    timed('bed with a node up', t);
    t = Date.now();
    image = await buildProjectImage(join(bed.dir, 'image-build'));
    const node = bed.node;
    assert.ok(node, 'the bed runs a node');
    await node.importImage(image.tarball);
    timed(`image ${image.ref}${image.cached ? ' (cached)' : ' (built)'} in the node`, t);
    t = Date.now();
    // The operator as users run it: config/default with the image pinned, one replica.
    overlay = mkdtempSync(join(tmpdir(), 'oidc-overlay-'));
    writeOverlay(overlay, {
      image: image.ref,
      ca: bed.ca,
      storageAllowedHosts: `s3=${NODE_NETWORK.hostAddress}`,
      replicas: 1,
    });
    await kubectl(['apply', '-k', overlay]);
    await kubectl([
      'rollout',
      'status',
      'deployment/oidc-publisher',
      '-n',
      OPERATOR_NAMESPACE,
      '--timeout=180s',
    ]);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    await kubectl(['apply', '-f', '-'], publisherYaml());
    await kubectl(['wait', '--for=condition=Ready', `oidcpublisher/${PUBLISHER}`, '--timeout=120s']);
    timed('operator Pods up, issuer published', t);
    t = Date.now();
    // The cloud trusts the published issuer. Its role may read one bucket, and only for one
    // ServiceAccount: MinIO's STS issues credentials to any token of the issuer with the client id
    // in `aud` (it has no trust policy on `sub`), and checks the token's claims, kept in the
    // credentials, against the role policy's jwt:* conditions on every request.
    sts = await startStsMinio(bed, {
      clientId: 'minio-sts',
      rolePolicy: {
        name: 'read-workload-data',
        document: {
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: ['s3:GetObject'],
              Resource: [`arn:aws:s3:::${BUCKET}/*`],
              Condition: {
                StringEquals: {
                  'jwt:sub': [`system:serviceaccount:${ALLOWED.namespace}:${ALLOWED.serviceAccount}`],
                },
              },
            },
          ],
        },
      },
    });
    const root = stsS3Client(sts, bed.ca, sts.root);
    try {
      await root.send(new CreateBucketCommand({ Bucket: BUCKET }));
      await root.send(new PutObjectCommand({ Bucket: BUCKET, Key: KEY, Body: GREETING }));
    } finally {
      root.destroy();
    }
    timed('cloud STS trusting the issuer', t);
    t = Date.now();
    const webhook = await deployPodIdentityWebhook(bed, { region: sts.region });
    timed(`pod identity webhook ${webhook.ref}${webhook.cached ? ' (cached)' : ' (built)'} rolled out`, t);
    for (const ns of [ALLOWED.namespace, OTHER_NAMESPACE]) {
      await kubectl(['create', 'namespace', ns]);
      // The CA of the cloud's endpoint, for NODE_EXTRA_CA_CERTS.
      await kubectl(['create', 'configmap', 'cloud-ca', '-n', ns, `--from-file=ca.crt=${bed.state.caFile}`]);
    }
  });

  after(async () => {
    await sts?.stop();
    await bed?.stop();
    if (overlay) rmSync(overlay, { recursive: true, force: true });
  });

  function publisherYaml(): string {
    const doc = parse(readFileSync(join(ROOT, 'config', 'samples', 'oidcpublisher_s3.yaml'), 'utf8')) as {
      metadata: { name: string };
      spec: Record<string, unknown> & { storage: { s3: Record<string, unknown> } };
    };
    doc.metadata.name = PUBLISHER;
    doc.spec.issuerURL = bed.issuer;
    doc.spec.storage.s3 = {
      ...doc.spec.storage.s3,
      bucket: bed.state.s3.bucket,
      region: bed.state.s3.region,
      prefix: PREFIX,
      endpoint: bed.state.s3.endpoint,
      forcePathStyle: true,
      credentialsSecretRef: { name: 's3-writer' },
    };
    return stringify(doc);
  }

  /** A ServiceAccount annotated for the cloud's role, as on EKS: the role ARN and the token audience. */
  async function roleServiceAccount(namespace: string, name: string): Promise<void> {
    await kubectl(['create', 'serviceaccount', name, '-n', namespace]);
    await kubectl([
      'annotate',
      'serviceaccount',
      name,
      '-n',
      namespace,
      `${POD_IDENTITY_WEBHOOK.annotationPrefix}/role-arn=${sts.roleArn}`,
      `${POD_IDENTITY_WEBHOOK.annotationPrefix}/audience=${sts.clientId}`,
    ]);
  }

  function podYaml(name: string, namespace: string, serviceAccount: string): string {
    return workloadPodYaml({
      name,
      namespace,
      serviceAccount,
      image: image.ref,
      endpoint: sts.endpoint,
      caConfigMap: 'cloud-ca',
      bucket: BUCKET,
      key: KEY,
    });
  }

  async function storedPod(namespace: string, name: string): Promise<PodSpecView> {
    return JSON.parse(await kubectl(['get', 'pod', name, '-n', namespace, '-o', 'json'])) as PodSpecView;
  }

  /** The projected token volume the webhook added: its audience and where the container mounts it. */
  function injectedToken(pod: PodSpecView): { audience?: string; mountPath?: string } | undefined {
    for (const v of pod.spec.volumes ?? []) {
      const token = v.projected?.sources.find((s) => s.serviceAccountToken)?.serviceAccountToken;
      if (!token || v.name.startsWith('kube-api-access')) continue;
      const mount = pod.spec.containers[0]?.volumeMounts?.find((m) => m.name === v.name);
      return { audience: token.audience, mountPath: mount?.mountPath };
    }
    return undefined;
  }

  function lineWith(lines: WorkloadLine[], field: keyof WorkloadLine): WorkloadLine {
    const line = lines.find((l) => field in l);
    assert.ok(line, `a log line with "${field}" in:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`);
    return line;
  }

  it("the operator's part: the OidcPublisher is Ready and the issuer is served anonymously", async () => {
    const ready = await kubectl([
      'get',
      'oidcpublisher',
      PUBLISHER,
      '-o',
      'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
    ]);
    assert.equal(ready, 'True');
    const discovery = await request(`${bed.issuer}/.well-known/openid-configuration`, { ca: bed.ca });
    assert.equal(discovery.status, 200);
    assert.equal((discovery.json() as { issuer: string }).issuer, bed.issuer);
  });

  it("the webhook's part: a Pod of an annotated ServiceAccount is stored with the role, the region and a projected token", async () => {
    const { namespace, serviceAccount } = ALLOWED;
    await roleServiceAccount(namespace, serviceAccount);
    const yaml = podYaml('reader', namespace, serviceAccount);
    const sent = parse(yaml) as PodSpecView;
    assert.deepEqual(
      Object.keys(containerEnv(sent)).filter(
        (n) => n.startsWith('AWS_') && !n.startsWith('AWS_ENDPOINT_URL'),
      ),
      ['AWS_EC2_METADATA_DISABLED'],
      'the Pod as written names no role, token or region',
    );
    assert.equal(injectedToken(sent), undefined);
    await untilWebhookMutates(bed, yaml);
    await kubectl(['apply', '-f', '-'], yaml);
    const stored = await storedPod(namespace, 'reader');
    const env = containerEnv(stored);
    assert.equal(env.AWS_ROLE_ARN, sts.roleArn);
    assert.equal(env.AWS_WEB_IDENTITY_TOKEN_FILE, TOKEN_FILE);
    assert.equal(env.AWS_REGION, sts.region);
    assert.deepEqual(injectedToken(stored), {
      audience: sts.clientId,
      mountPath: POD_IDENTITY_WEBHOOK.tokenMountPath,
    });
  });

  it("the Pod's default credential chain buys credentials with that token, reads the object and is refused a write", async () => {
    const lines = await workloadLog(bed, ALLOWED.namespace, 'reader');
    assert.equal(lineWith(lines, 'AWS_ROLE_ARN').AWS_ROLE_ARN, sts.roleArn);
    const creds = lineWith(lines, 'credentials');
    assert.equal(creds.credentials, 'obtained', JSON.stringify(creds));
    assert.ok(
      creds.source?.includes('CREDENTIALS_ENV_VARS_STS_WEB_ID_TOKEN'),
      `from the web identity token file: ${JSON.stringify(creds.source)}`,
    );
    assert.deepEqual(lineWith(lines, 'get'), { get: `s3://${BUCKET}/${KEY}`, body: GREETING });
    assert.equal(lineWith(lines, 'put').error, 'AccessDenied', 'the role may not write');
  });

  it('a Pod of an unannotated ServiceAccount gets nothing injected and no credentials', async () => {
    const { namespace } = ALLOWED;
    await kubectl(['create', 'serviceaccount', 'plain', '-n', namespace]);
    await kubectl(['apply', '-f', '-'], podYaml('plain', namespace, 'plain'));
    const stored = await storedPod(namespace, 'plain');
    const env = containerEnv(stored);
    assert.equal(env.AWS_ROLE_ARN, undefined);
    assert.equal(env.AWS_WEB_IDENTITY_TOKEN_FILE, undefined);
    assert.equal(env.AWS_REGION, undefined);
    assert.equal(injectedToken(stored), undefined, 'no projected token but the kube-api-access one');
    const lines = await workloadLog(bed, namespace, 'plain');
    const creds = lineWith(lines, 'credentials');
    assert.equal(creds.credentials, null);
    assert.equal(creds.error, 'CredentialsProviderError');
    assert.equal(
      lines.some((l) => 'get' in l),
      false,
    );
  });

  it("a Pod of another namespace's ServiceAccount with the same role is refused by the role policy's condition on sub", async () => {
    await roleServiceAccount(OTHER_NAMESPACE, ALLOWED.serviceAccount);
    const yaml = podYaml('reader', OTHER_NAMESPACE, ALLOWED.serviceAccount);
    await untilWebhookMutates(bed, yaml);
    await kubectl(['apply', '-f', '-'], yaml);
    assert.equal(containerEnv(await storedPod(OTHER_NAMESPACE, 'reader')).AWS_ROLE_ARN, sts.roleArn);
    const lines = await workloadLog(bed, OTHER_NAMESPACE, 'reader');
    // MinIO's STS has no trust policy: it issues credentials for the role to any token of the issuer
    // for its client id. The role policy's jwt:sub condition refuses every request made with them.
    assert.equal(lineWith(lines, 'credentials').credentials, 'obtained');
    assert.deepEqual(lineWith(lines, 'get'), { get: `s3://${BUCKET}/${KEY}`, error: 'AccessDenied' });
    assert.equal(lineWith(lines, 'put').error, 'AccessDenied');
  });
});
