/**
 * npm run demo: a hardened cluster publishing its service-account issuer to a
 * bucket, end to end, on this machine.
 *
 * Starts the test bed (kube-apiserver with anonymous auth off, etcd, MinIO with
 * TLS), installs the CRD and the operator's RBAC, applies the S3 sample, runs
 * the operator as its least-privilege ServiceAccount, waits until Ready, shows
 * the public documents, verifies a ServiceAccount token against the public
 * issuer with jose, and ends with a workload holding cloud credentials: a second
 * MinIO, whose STS trusts the published issuer, exchanges the workload's token
 * (AssumeRoleWithWebIdentity) for temporary credentials that read an object.
 * Ctrl-C stops everything. `--once` exits after the last step.
 *
 * `--node`: the same story as Pods, the way users run it: the bed runs a real node (root), the
 * image is built from the Dockerfile, and `kubectl apply -k` of config/default (the image
 * overridden by a kustomize overlay) runs the operator. It ends with a Pod that holds no keys: the
 * AWS pod identity webhook, deployed as on a self-managed cluster, injects the role and a projected
 * token into it, and the AWS SDK's default credential chain in the Pod buys credentials from the
 * STS and reads an object. The demo shows the Pod's own log.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { parse, stringify } from 'yaml';
import { Bed } from '../test/bed/bed.ts';
import { buildProjectImage } from '../test/bed/container-image.ts';
import { request } from '../test/bed/http.ts';
import { NODE_NETWORK } from '../test/bed/node.ts';
import { writeOverlay } from '../test/bed/overlay.ts';
import {
  containerEnv,
  deployPodIdentityWebhook,
  POD_IDENTITY_WEBHOOK,
  untilWebhookMutates,
  workloadLog,
  workloadPodYaml,
} from '../test/bed/pod-identity-webhook.ts';
import { assumeRoleWithWebIdentity, type StsMinio, startStsMinio, stsS3Client } from '../test/bed/sts.ts';
import { ensureTools } from '../test/bed/tools.ts';
import {
  applyYaml,
  createSecret,
  installOperator,
  OPERATOR_NAMESPACE,
  OPERATOR_SA,
  OperatorProcess,
  ROOT,
  verifyAsRelyingParty,
} from '../test/e2e/harness.ts';

const { values } = parseArgs({
  options: { once: { type: 'boolean', default: false }, node: { type: 'boolean', default: false } },
});
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s: string) => console.log(`\n${bold(`==> ${s}`)}`);
const indent = (s: string) =>
  s
    .trimEnd()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');

let bed: Bed | undefined;
let op: OperatorProcess | undefined;
let sts: StsMinio | undefined;
let stopping = false;

async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    step('Stopping the operator and the bed');
    await sts?.stop();
    const exit = await op?.stop('SIGTERM');
    if (exit !== undefined) console.log(`    operator exited with code ${exit}`);
    await bed?.stop();
    console.log('    everything stopped and cleaned up');
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  step('Building the real servers (first run only: kube-apiserver, etcd, MinIO, fake-gcs-server)');
  ensureTools(
    values.node ? ['kube', 'etcd', 'minio', 'fake-gcs-server', 'node', 'pod-identity-webhook'] : undefined,
  );
  console.log('    cached in ~/.cache/oidc-publisher/bin');

  step(
    values.node
      ? `Starting a hardened cluster, a real node and a bucket on ${NODE_NETWORK.hostAddress}`
      : 'Starting a hardened cluster and a bucket on 127.0.0.1',
  );
  bed = await Bed.start({ gcs: false, node: values.node });
  console.log(`    kube-apiserver  ${bed.apiserverURL}  (--anonymous-auth=false, RBAC)`);
  console.log(
    `    MinIO (S3)      ${bed.state.s3.endpoint}  (TLS; bucket ${bed.state.s3.bucket}, public prefix ${bed.state.s3.publicPrefix})`,
  );
  console.log(`    issuer          --service-account-issuer=${bed.issuer}`);
  const anonymous = await request(`${bed.apiserverURL}/openid/v1/jwks`, { ca: bed.ca });
  console.log(
    `    anonymous GET ${bed.apiserverURL}/openid/v1/jwks -> HTTP ${anonymous.status}: relying parties cannot read it`,
  );

  let kubeconfig = '';
  let projectImage = '';
  if (bed.node) {
    step('Building the image from the Dockerfile (first run only) into the node');
    const image = await buildProjectImage(join(bed.dir, 'image-build'));
    await bed.node.importImage(image.tarball);
    console.log(`    ${image.ref}${image.cached ? ' (cached)' : ''}`);
    projectImage = image.ref;
    step('kubectl apply -k of config/default, the image overridden by a kustomize overlay');
    const overlay = join(bed.dir, 'overlay');
    mkdirSync(overlay);
    writeOverlay(overlay, {
      image: image.ref,
      ca: bed.ca,
      storageAllowedHosts: `s3=${NODE_NETWORK.hostAddress}`,
    });
    console.log(indent(readFileSync(join(overlay, 'kustomization.yaml'), 'utf8')));
    await bed.kubectl(['apply', '-k', overlay]);
    await bed.kubectl([
      'rollout',
      'status',
      'deployment/oidc-publisher',
      '-n',
      OPERATOR_NAMESPACE,
      '--timeout=180s',
    ]);
    console.log(indent(await bed.kubectl(['get', 'pods', '-n', OPERATOR_NAMESPACE, '-o', 'wide'])));
  } else {
    step('Installing the CRD and the operator RBAC (crds/, config/rbac)');
    kubeconfig = await installOperator(bed);
  }
  // The Secret opts in to being used by the sample's OidcPublisher, and by no other.
  await createSecret(
    bed,
    's3-writer',
    {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    },
    { allowedPublishers: 'cluster-issuer' },
  );
  console.log(
    `    ServiceAccount ${OPERATOR_NAMESPACE}/${OPERATOR_SA}, bucket credentials in Secret s3-writer (oidcpublisher.io/allowed-publishers: cluster-issuer)`,
  );

  if (!bed.node) {
    step('Starting the operator as its least-privilege ServiceAccount');
    op = await OperatorProcess.start(bed, kubeconfig, ['--log-level', 'info']);
    console.log(`    oidc-publisher running (pid ${op.child.pid}), health on 127.0.0.1:${op.healthPort}`);
  }

  step('Applying config/samples/oidcpublisher_s3.yaml, pointed at this bed');
  const sample = parse(readFileSync(join(ROOT, 'config', 'samples', 'oidcpublisher_s3.yaml'), 'utf8')) as {
    spec: Record<string, unknown>;
  };
  sample.spec.issuerURL = bed.issuer;
  sample.spec.syncInterval = '30s';
  sample.spec.storage = {
    s3: {
      bucket: bed.state.s3.bucket,
      region: bed.state.s3.region,
      prefix: 'public/cluster-a',
      endpoint: bed.state.s3.endpoint,
      forcePathStyle: true,
      credentialsSecretRef: { name: 's3-writer' },
    },
  };
  const yaml = stringify(sample);
  console.log(indent(yaml));
  await applyYaml(bed, yaml);

  step('kubectl wait --for=condition=Ready oidcpublisher/cluster-issuer');
  await bed.kubectl(['wait', '--for=condition=Ready', 'oidcpublisher/cluster-issuer', '--timeout=120s']);
  console.log(indent(await bed.kubectl(['get', 'oidcpublisher'])));

  step(`The public issuer: ${bed.issuer}`);
  const discovery = await request(`${bed.issuer}/.well-known/openid-configuration`, { ca: bed.ca });
  console.log(
    `    anonymous GET /.well-known/openid-configuration -> HTTP ${discovery.status} ${discovery.headers['content-type']}`,
  );
  console.log(indent(JSON.stringify(discovery.json(), null, 2)));
  const jwksURI = (discovery.json() as { jwks_uri: string }).jwks_uri;
  const jwks = await request(jwksURI, { ca: bed.ca });
  console.log(`    anonymous GET ${jwksURI} -> HTTP ${jwks.status} ${jwks.headers['content-type']}`);
  console.log(indent(JSON.stringify(jwks.json(), null, 2)));

  step('A relying party verifies a ServiceAccount token against the public issuer (jose)');
  await bed.serviceAccountKubeconfig('demo', 'app');
  const token = await bed.mintToken({
    namespace: 'demo',
    serviceAccount: 'app',
    audience: 'sts.amazonaws.com',
  });
  const payload = await verifyAsRelyingParty(bed.issuer, token, 'sts.amazonaws.com', bed.ca);
  console.log(
    `    token for demo/app verified: sub=${payload.sub} aud=${String(payload.aud)} iss=${payload.iss}`,
  );

  step('The workload gets cloud credentials with its token (MinIO STS, AssumeRoleWithWebIdentity)');
  // A second MinIO plays the cloud: its identity provider is the issuer in the bucket.
  sts = await startStsMinio(bed, { clientId: 'minio-sts' });
  console.log(`    cloud STS       ${sts.endpoint}  (MinIO)`);
  console.log(`      MINIO_IDENTITY_OPENID_CONFIG_URL=${sts.configURL}`);
  console.log(`      MINIO_IDENTITY_OPENID_CLIENT_ID=${sts.clientId}`);
  console.log(`      MINIO_IDENTITY_OPENID_ROLE_POLICY=${sts.rolePolicy}  -> role ${sts.roleArn}`);
  const cloud = stsS3Client(sts, bed.ca, sts.root);
  await cloud.send(new CreateBucketCommand({ Bucket: 'workload-data' }));
  await cloud.send(
    new PutObjectCommand({ Bucket: 'workload-data', Key: 'greeting.txt', Body: 'hello, demo/app\n' }),
  );
  cloud.destroy();
  if (bed.node) {
    await workloadPodStory(bed, sts, projectImage);
    if (values.once) await shutdown(0);
    console.log(`\n${bold('The operator keeps the issuer current. Press Ctrl-C to stop everything.')}`);
    console.log(`    (kubectl: KUBECONFIG=${bed.adminKubeconfig} ${bed.state.kubectl} get pods -A)`);
    await new Promise(() => {});
  }
  const stsToken = await bed.mintToken({
    namespace: 'demo',
    serviceAccount: 'app',
    audience: sts.clientId,
    durationSeconds: 600,
  });
  console.log(`    kubectl create token app -n demo --audience ${sts.clientId}`);
  const answer = await assumeRoleWithWebIdentity(sts, bed.ca, { token: stsToken });
  if (!answer.ok) throw new Error(`AssumeRoleWithWebIdentity: ${answer.code}: ${answer.message}`);
  console.log(
    `    AssumeRoleWithWebIdentity -> HTTP ${answer.status}: temporary credentials ${answer.credentials.accessKeyId} for ${answer.subject}, until ${answer.credentials.expiration}`,
  );
  const workload = stsS3Client(sts, bed.ca, answer.credentials);
  try {
    const got = await workload.send(new GetObjectCommand({ Bucket: 'workload-data', Key: 'greeting.txt' }));
    console.log(
      `    GetObject s3://workload-data/greeting.txt with them -> ${JSON.stringify(await got.Body?.transformToString())}`,
    );
    const put = await workload
      .send(new PutObjectCommand({ Bucket: 'workload-data', Key: 'other.txt', Body: 'x' }))
      .then(
        () => 'allowed',
        (err: Error) => err.name,
      );
    console.log(`    PutObject with them -> ${put} (the role policy is ${sts.rolePolicy})`);
  } finally {
    workload.destroy();
  }

  if (values.once) await shutdown(0);
  console.log(`\n${bold('The operator keeps the issuer current. Press Ctrl-C to stop everything.')}`);
  console.log(`    (kubectl: KUBECONFIG=${bed.adminKubeconfig} ${bed.state.kubectl} get oidcpub)`);
  await new Promise(() => {});
} catch (err) {
  console.error(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
  if (op) console.error(`operator output (last lines):\n${op.output.slice(-15).join('\n')}`);
  await shutdown(1);
}

/** The node demo's ending: a Pod with no keys gets credentials through the pod identity webhook. */
async function workloadPodStory(bed: Bed, sts: StsMinio, image: string): Promise<void> {
  step('Deploying the AWS pod identity webhook (built from source) as on a self-managed cluster');
  const webhook = await deployPodIdentityWebhook(bed, { region: sts.region });
  console.log(
    `    ${webhook.ref}${webhook.cached ? ' (cached)' : ''}: Deployment, Service, RBAC and MutatingWebhookConfiguration in namespace ${POD_IDENTITY_WEBHOOK.namespace}`,
  );
  step('A ServiceAccount annotated with the role, and a Pod with no credentials in its spec');
  const [ns, sa, prefix] = ['demo', 'app', POD_IDENTITY_WEBHOOK.annotationPrefix];
  await bed
    .kubectl(['create', 'namespace', ns, '--dry-run=client', '-o', 'yaml'])
    .then((y) => bed.kubectl(['apply', '-f', '-'], { input: y }));
  await bed.kubectl(['create', 'configmap', 'cloud-ca', '-n', ns, `--from-file=ca.crt=${bed.state.caFile}`]);
  await bed
    .kubectl(['create', 'serviceaccount', sa, '-n', ns, '--dry-run=client', '-o', 'yaml'])
    .then((y) => bed.kubectl(['apply', '-f', '-'], { input: y }));
  await bed.kubectl([
    'annotate',
    'serviceaccount',
    sa,
    '-n',
    ns,
    '--overwrite',
    `${prefix}/role-arn=${sts.roleArn}`,
    `${prefix}/audience=${sts.clientId}`,
  ]);
  console.log(`    kubectl annotate serviceaccount ${sa} -n ${ns} ${prefix}/role-arn=${sts.roleArn}`);
  console.log(`    kubectl annotate serviceaccount ${sa} -n ${ns} ${prefix}/audience=${sts.clientId}`);
  const yaml = workloadPodYaml({
    name: 'reader',
    namespace: ns,
    serviceAccount: sa,
    image,
    endpoint: sts.endpoint,
    caConfigMap: 'cloud-ca',
    bucket: 'workload-data',
    key: 'greeting.txt',
  });
  await untilWebhookMutates(bed, yaml);
  await bed.kubectl(['apply', '-f', '-'], { input: yaml });
  const stored = JSON.parse(
    await bed.kubectl(['get', 'pod', 'reader', '-n', ns, '-o', 'json']),
  ) as Parameters<typeof containerEnv>[0];
  const env = containerEnv(stored);
  console.log('    what the webhook added to the Pod (kubectl get pod reader -o json):');
  for (const name of ['AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_REGION'])
    console.log(`      env ${name}=${env[name] ?? '(none)'}`);
  step(`kubectl logs reader -n ${ns}: the Pod's AWS SDK default credential chain`);
  await workloadLog(bed, ns, 'reader');
  console.log(indent(await bed.kubectl(['logs', 'reader', '-n', ns])));
}
