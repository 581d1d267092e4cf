/**
 * The relying party's side of the story, end to end: a cloud STS (a second MinIO,
 * AssumeRoleWithWebIdentity) trusts the cluster through the issuer the operator
 * published to the bucket. A workload's TokenRequest token (audience = the STS
 * client id) buys temporary credentials that read an object and do nothing the
 * role policy does not allow; tokens for another audience, from another cluster,
 * forged with a foreign key, or expired are refused.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { stringify } from 'yaml';
import type { Bed } from '../bed/bed.ts';
import { useBed } from '../bed/shared.ts';
import {
  assumeRoleWithWebIdentity,
  type StsAnswer,
  type StsMinio,
  startStsMinio,
  stsS3Client,
} from '../bed/sts.ts';
import {
  applyYaml,
  createSecret,
  installOperator,
  OperatorProcess,
  ROOT,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const CLIENT_ID = 'minio-sts';
const BUCKET = 'workload-data';
const OBJECT = 'greeting.txt';
const CONTENT = 'hello from the cloud, workload/app\n';
const OTHER_BUCKET = 'other-data';
/** The role's policy: read the objects of one bucket, nothing else. */
const ROLE_POLICY = {
  name: 'workload-data-read',
  document: {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${BUCKET}/*`] }],
  },
};

function refused(answer: StsAnswer): { status: number; code: string; message: string } {
  assert.equal(answer.ok, false, `the STS refuses the token; it answered ${JSON.stringify(answer)}`);
  return answer as Extract<StsAnswer, { ok: false }>;
}

describe('a workload holds cloud credentials through the bucket-hosted issuer (MinIO STS)', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  let sts: StsMinio | undefined;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await sts?.stop();
        await op?.stop('SIGTERM');
      },
    },
  );

  /** A token shaped like kube-apiserver's, signed with `key` under `kid`. */
  async function signToken(
    key: KeyObject,
    kid: string,
    o: { issuer?: string; audience?: string; expiresIn?: number; issuedAgo?: number } = {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const iat = now - (o.issuedAgo ?? 0);
    return new SignJWT({
      'kubernetes.io': { namespace: 'workload', serviceaccount: { name: 'app', uid: randomUUID() } },
    })
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuer(o.issuer ?? bed.issuer)
      .setSubject('system:serviceaccount:workload:app')
      .setAudience([o.audience ?? CLIENT_ID])
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(now + (o.expiresIn ?? 600))
      .setJti(randomUUID())
      .sign(key);
  }

  before(async () => {
    bed = useOwn();
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    op = await OperatorProcess.start(bed, kubeconfig);
    const sample = samplePublisher(bed, { name: 'cluster-issuer', spec: { syncInterval: '1m' } });
    await applyYaml(bed, stringify(sample));
    await Promise.all([
      waitForReady(bed, 'cluster-issuer', 'True', 'Ready', 60_000),
      bed.serviceAccountKubeconfig('workload', 'app'),
    ]);
    // Only now is there an issuer for the STS to read.
    sts = await startStsMinio(bed, { clientId: CLIENT_ID, rolePolicy: ROLE_POLICY });
    const admin = stsS3Client(sts, bed.ca, sts.root);
    try {
      await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
      await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: OBJECT, Body: CONTENT }));
      await admin.send(new CreateBucketCommand({ Bucket: OTHER_BUCKET }));
      await admin.send(new PutObjectCommand({ Bucket: OTHER_BUCKET, Key: OBJECT, Body: 'not yours' }));
    } finally {
      admin.destroy();
    }
  });

  after(async () => {
    await sts?.stop();
    sts = undefined;
  });

  const stsOf = (): StsMinio => {
    if (!sts) throw new Error('the STS MinIO is not running');
    return sts;
  };

  it('exchanges a TokenRequest token (audience = client id) for temporary credentials that read an object', async () => {
    const token = await bed.mintToken({
      namespace: 'workload',
      serviceAccount: 'app',
      audience: CLIENT_ID,
      durationSeconds: 600,
    });
    const answer = await assumeRoleWithWebIdentity(stsOf(), bed.ca, { token });
    assert.ok(answer.ok, `AssumeRoleWithWebIdentity succeeds; it answered ${JSON.stringify(answer)}`);
    assert.equal(answer.subject, 'system:serviceaccount:workload:app');
    assert.match(answer.credentials.accessKeyId, /^[A-Z0-9]{16,}$/);
    assert.notEqual(answer.credentials.accessKeyId, stsOf().root.accessKeyId);
    assert.ok(answer.credentials.sessionToken.length > 0, 'a session token comes with them');
    const expires = Date.parse(answer.credentials.expiration);
    assert.ok(
      expires > Date.now() && expires <= Date.now() + 901_000,
      `they expire within the 900 s asked for: ${answer.credentials.expiration}`,
    );
    const s3 = stsS3Client(stsOf(), bed.ca, answer.credentials);
    try {
      const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: OBJECT }));
      assert.equal(await got.Body?.transformToString(), CONTENT);

      // The role policy allows reading this bucket's objects, nothing else.
      const forbidden: [string, () => Promise<unknown>][] = [
        [
          'GetObject of another bucket',
          () => s3.send(new GetObjectCommand({ Bucket: OTHER_BUCKET, Key: OBJECT })),
        ],
        [
          'PutObject',
          () => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'written.txt', Body: 'no' })),
        ],
        ['DeleteObject', () => s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: OBJECT }))],
        ['ListObjectsV2', () => s3.send(new ListObjectsV2Command({ Bucket: BUCKET }))],
        ['CreateBucket', () => s3.send(new CreateBucketCommand({ Bucket: 'workload-other' }))],
      ];
      for (const [what, send] of forbidden) {
        await assert.rejects(
          send(),
          (err: Error) => err.name === 'AccessDenied',
          `${what} with the temporary credentials is AccessDenied`,
        );
      }
      const still = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: OBJECT }));
      assert.equal(await still.Body?.transformToString(), CONTENT, 'the object is untouched');
    } finally {
      s3.destroy();
    }
    const wrongSecret = stsS3Client(stsOf(), bed.ca, { ...answer.credentials, sessionToken: 'tampered' });
    try {
      await assert.rejects(
        wrongSecret.send(new GetObjectCommand({ Bucket: BUCKET, Key: OBJECT })),
        (err: Error) => err.name === 'InvalidTokenId',
        'the credentials are bound to their session token',
      );
    } finally {
      wrongSecret.destroy();
    }
  });

  it('a workload process with only the IRSA environment reads the object through the AWS SDK default credential chain', async () => {
    // What the EKS Pod Identity webhook gives a Pod: a projected token file and the role to
    // assume; the endpoints point the SDK at this STS and its S3.
    const token = await bed.mintToken({
      namespace: 'workload',
      serviceAccount: 'app',
      audience: CLIENT_ID,
      durationSeconds: 600,
    });
    const tokenFile = join(bed.dir, 'workload-token');
    writeFileSync(tokenFile, token, { mode: 0o600 });
    const workload = `
      import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
      const s3 = new S3Client({ forcePathStyle: true, maxAttempts: 1 });
      const got = await s3.send(new GetObjectCommand({ Bucket: ${JSON.stringify(BUCKET)}, Key: ${JSON.stringify(OBJECT)} }));
      const { accessKeyId } = await s3.config.credentials();
      const put = await s3.send(new PutObjectCommand({ Bucket: ${JSON.stringify(BUCKET)}, Key: 'w.txt', Body: 'x' })).then(() => 'allowed', (e) => e.name);
      console.log(JSON.stringify({ body: await got.Body.transformToString(), accessKeyId, put }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', workload], {
      cwd: ROOT,
      timeout: 30_000,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: bed.dir,
        NODE_EXTRA_CA_CERTS: bed.state.caFile,
        AWS_CONFIG_FILE: join(bed.dir, 'no-aws-config'),
        AWS_SHARED_CREDENTIALS_FILE: join(bed.dir, 'no-aws-credentials'),
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_REGION: stsOf().region,
        AWS_ROLE_ARN: stsOf().roleArn,
        AWS_ROLE_SESSION_NAME: 'app',
        AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
        AWS_ENDPOINT_URL_STS: stsOf().endpoint,
        AWS_ENDPOINT_URL_S3: stsOf().endpoint,
      },
    });
    const out = JSON.parse(stdout) as { body: string; accessKeyId: string; put: string };
    assert.equal(out.body, CONTENT);
    assert.notEqual(out.accessKeyId, stsOf().root.accessKeyId, 'temporary credentials, not the root user');
    assert.equal(out.put, 'AccessDenied', 'the role policy allows no writes');
  });

  it('refuses a TokenRequest token for another audience', async () => {
    const token = await bed.mintToken({
      namespace: 'workload',
      serviceAccount: 'app',
      audience: 'sts.amazonaws.com',
      durationSeconds: 600,
    });
    assert.deepEqual(decodeJwt(token).aud, ['sts.amazonaws.com']);
    const answer = refused(await assumeRoleWithWebIdentity(stsOf(), bed.ca, { token }));
    assert.equal(answer.status, 400);
    assert.equal(answer.code, 'InvalidParameterValue');
    assert.match(answer.message, /must match configured OpenID Client ID/);
  });

  it('refuses a TokenRequest token of another cluster (a second API server, its own issuer and key)', async () => {
    // Cluster B: another kube-apiserver with its own service-account issuer and signing key,
    // trusting no external issuer.
    const b = await bed.startConsumerApiserver({
      name: 'cluster-b',
      authenticationConfig: 'apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\n',
    });
    try {
      const inB = (args: string[], input?: string) =>
        bed.kubectl(args, { kubeconfig: b.kubeconfig, ...(input === undefined ? {} : { input }) });
      await inB(['create', 'namespace', 'workload']);
      await inB(['create', 'serviceaccount', 'app', '-n', 'workload']);
      const token = (
        await inB(['create', 'token', 'app', '-n', 'workload', '--audience', CLIENT_ID, '--duration', '600s'])
      ).trim();
      const claims = decodeJwt(token);
      assert.equal(claims.iss, b.issuer);
      assert.equal(
        claims.sub,
        'system:serviceaccount:workload:app',
        'the same subject as the accepted token',
      );
      assert.deepEqual(claims.aud, [CLIENT_ID], 'and the right audience');
      const kid = decodeProtectedHeader(token).kid;
      assert.ok(kid && kid !== bed.signingKey.kid, `B signs with a key of its own: ${kid}`);
      const answer = refused(await assumeRoleWithWebIdentity(stsOf(), bed.ca, { token }));
      assert.equal(answer.status, 400);
      assert.equal(answer.code, 'InvalidParameterValue');
      assert.equal(answer.message, `No public key found for kid ${kid}`);
    } finally {
      await b.stop();
    }
  });

  it("refuses a token forged with a foreign key under this cluster's issuer and published kid", async () => {
    // MinIO does not compare iss with the issuer, so the signature against the published key
    // is what tells this cluster's tokens from any other's: claims and kid identical to this
    // cluster's, only the key differs.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const token = await signToken(privateKey, bed.signingKey.kid);
    const answer = refused(await assumeRoleWithWebIdentity(stsOf(), bed.ca, { token }));
    assert.equal(answer.status, 400);
    assert.equal(answer.code, 'InvalidParameterValue');
    assert.match(answer.message, /verification error/);
  });

  it("refuses an expired token signed by this cluster's own published key, and takes the same token unexpired", async () => {
    // TokenRequest will not issue a token shorter than 10 minutes, so the test signs with the
    // API server's own signing key (the bed's pki/sa-1.key, whose public half is published):
    // the token differs from an accepted one only by its exp.
    const key = createPrivateKey(readFileSync(bed.signingKey.privateKeyFile));
    const kid = bed.signingKey.kid;
    const expired = await signToken(key, kid, { issuedAgo: 3600, expiresIn: -60 });
    const answer = refused(await assumeRoleWithWebIdentity(stsOf(), bed.ca, { token: expired }));
    assert.equal(answer.status, 400);
    assert.equal(answer.code, 'InvalidParameterValue');
    assert.match(answer.message, /expired/i);
    const fresh = await signToken(key, kid, { expiresIn: 600 });
    const control = await assumeRoleWithWebIdentity(stsOf(), bed.ca, { token: fresh });
    assert.ok(control.ok, `the same token unexpired is accepted; it answered ${JSON.stringify(control)}`);
  });
});
