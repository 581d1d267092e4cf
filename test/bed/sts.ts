/**
 * A cloud that trusts the cluster through its published issuer: a second MinIO
 * whose STS (AssumeRoleWithWebIdentity) takes the bed's issuer as its OpenID
 * identity provider, the way an AWS account trusts an IRSA issuer.
 *
 * MinIO reads `<issuer>/.well-known/openid-configuration` and the JWKS it names
 * while it starts (it retries until they answer), so start it once an operator
 * has published the issuer. It trusts the bed's CA through its certs-dir `CAs`
 * folder and serves HTTPS with the bed's serving certificate.
 *
 * What it checks in a token (internal/config/identity/openid/jwt.go of the
 * pinned source): the signature, against the published key whose `kid` the
 * token names; `exp`, `nbf` and `iat`; that `aud` (else `azp`) contains the
 * client id; and that `sub` is present. It does not compare `iss` with the
 * issuer. With a role policy, the request names the role's ARN and every
 * credential it issues has that policy; no claim selects it.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { type Bed, freePort } from './bed.ts';
import { request } from './http.ts';
import { putCannedPolicy } from './minio-admin.ts';
import { ManagedProcess } from './process.ts';
import { ensureTools } from './tools.ts';

export interface StsMinio {
  /** Its S3 and STS endpoint (STS is a POST to the root path). */
  endpoint: string;
  region: string;
  /** The OpenID client id: a token's `aud` must contain it. */
  clientId: string;
  /** The role MinIO made for the provider: arn:minio:iam:<region>::role/<base64url(SHA-1(client id))>. */
  roleArn: string;
  /** The IAM policy every credential of that role gets. */
  rolePolicy: string;
  /** The discovery document URL MinIO was configured with. */
  configURL: string;
  /** Its root user, to set up buckets and objects. */
  root: { accessKeyId: string; secretAccessKey: string };
  logFile: string;
  stop(): Promise<void>;
}

export interface TemporaryCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: string;
}

/** What the STS answered: credentials, or its error code and message. */
export type StsAnswer =
  | { ok: true; status: number; credentials: TemporaryCredentials; subject: string }
  | { ok: false; status: number; code: string; message: string };

function xmlField(xml: string, name: string): string {
  return xml.match(new RegExp(`<${name}>([^<]*)</${name}>`))?.[1] ?? '';
}

/** The role ARN MinIO derives from the client id (openid.LookupConfig). */
export function minioRoleArn(clientId: string, region: string): string {
  return `arn:minio:iam:${region}::role/${createHash('sha1').update(clientId).digest('base64url')}`;
}

/**
 * Starts a MinIO whose identity provider is the bed's issuer, with `clientId`
 * and a role policy: a canned policy of MinIO's by name (default `readonly`:
 * s3:GetObject and s3:GetBucketLocation on every bucket), or a policy document
 * it creates. Waits until its STS knows the role, that is until it has read the
 * issuer's documents.
 */
export async function startStsMinio(
  bed: Bed,
  opts: {
    clientId: string;
    rolePolicy?: string | { name: string; document: Record<string, unknown> };
    name?: string;
  },
): Promise<StsMinio> {
  const tools = ensureTools(['minio']);
  const name = opts.name ?? 'sts-minio';
  const dir = join(bed.dir, name);
  const certs = join(dir, 'certs');
  mkdirSync(join(certs, 'CAs'), { recursive: true });
  const pki = join(bed.dir, 'pki');
  copyFileSync(join(pki, 'serving.crt'), join(certs, 'public.crt'));
  copyFileSync(join(pki, 'serving.key'), join(certs, 'private.key'));
  copyFileSync(bed.state.caFile, join(certs, 'CAs', 'ca.crt'));
  const host = bed.state.host ?? '127.0.0.1';
  const port = await freePort();
  const endpoint = `https://${host}:${port}`;
  const region = 'us-east-1';
  const rolePolicy =
    typeof opts.rolePolicy === 'object' ? opts.rolePolicy.name : (opts.rolePolicy ?? 'readonly');
  const configURL = `${bed.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  const root = {
    accessKeyId: 'stsadmin',
    secretAccessKey: `sts-${Math.random().toString(36).slice(2)}-secret`,
  };
  const proc = ManagedProcess.start({
    name,
    command: tools.minio,
    args: ['server', '--quiet', '--address', `${host}:${port}`, '--certs-dir', certs, join(dir, 'data')],
    env: {
      MINIO_ROOT_USER: root.accessKeyId,
      MINIO_ROOT_PASSWORD: root.secretAccessKey,
      MINIO_BROWSER: 'off',
      MINIO_UPDATE: 'off',
      MINIO_REGION: region,
      MINIO_IDENTITY_OPENID_CONFIG_URL: configURL,
      MINIO_IDENTITY_OPENID_CLIENT_ID: opts.clientId,
      MINIO_IDENTITY_OPENID_ROLE_POLICY: rolePolicy,
    },
    logFile: join(bed.dir, `${name}.log`),
  });
  const sts: StsMinio = {
    endpoint,
    region,
    clientId: opts.clientId,
    roleArn: minioRoleArn(opts.clientId, region),
    rolePolicy,
    configURL,
    root,
    logFile: proc.spec.logFile,
    stop: () => proc.stop(),
  };
  const ca = bed.ca;
  try {
    if (typeof opts.rolePolicy === 'object') {
      // The policy is looked up when a credential is issued and used, so it may come after the start.
      const document = opts.rolePolicy.document;
      await proc.waitUntil('accepting admin requests', async () => {
        await putCannedPolicy({ endpoint, region, ...root }, ca, rolePolicy, document);
        return true;
      });
    }
    // Until it has read the issuer, the STS does not know the role (or IAM is not initialized);
    // then a malformed token is refused for what it is.
    await proc.waitUntil('answering STS requests for its role', async () => {
      const answer = await assumeRoleWithWebIdentity(sts, ca, { token: 'not-a-jwt' });
      return !answer.ok && answer.status === 400 && !/RoleArn|not initialized/i.test(answer.message);
    });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return sts;
}

/**
 * AssumeRoleWithWebIdentity through the STS query API (a form POST), as the AWS SDKs send it
 * for a workload with AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE.
 */
export async function assumeRoleWithWebIdentity(
  sts: Pick<StsMinio, 'endpoint' | 'roleArn'>,
  ca: Buffer,
  o: { token: string; durationSeconds?: number; roleArn?: string },
): Promise<StsAnswer> {
  const body = new URLSearchParams({
    Action: 'AssumeRoleWithWebIdentity',
    Version: '2011-06-15',
    RoleArn: o.roleArn ?? sts.roleArn,
    RoleSessionName: 'workload',
    WebIdentityToken: o.token,
    DurationSeconds: String(o.durationSeconds ?? 900),
  }).toString();
  const res = await request(`${sts.endpoint}/`, {
    method: 'POST',
    ca,
    body,
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(body.length) },
  });
  const xml = res.text();
  if (res.status === 200) {
    return {
      ok: true,
      status: res.status,
      credentials: {
        accessKeyId: xmlField(xml, 'AccessKeyId'),
        secretAccessKey: xmlField(xml, 'SecretAccessKey'),
        sessionToken: xmlField(xml, 'SessionToken'),
        expiration: xmlField(xml, 'Expiration'),
      },
      subject: xmlField(xml, 'SubjectFromWebIdentityToken'),
    };
  }
  return { ok: false, status: res.status, code: xmlField(xml, 'Code'), message: xmlField(xml, 'Message') };
}

/** An S3 client of the STS MinIO with temporary (or root) credentials. */
export function stsS3Client(
  sts: Pick<StsMinio, 'endpoint' | 'region'>,
  ca: Buffer,
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
): S3Client {
  return new S3Client({
    endpoint: sts.endpoint,
    region: sts.region,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: {
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      ...(credentials.sessionToken ? { sessionToken: credentials.sessionToken } : {}),
    },
    maxAttempts: 1,
    requestHandler: { httpsAgent: new Agent({ ca }) },
  });
}
