/**
 * MinIO users with their own IAM policy, made through MinIO's admin API
 * (/minio/admin/v3), for tests that need credentials that are valid but not
 * allowed everything (the root user the bed runs with bypasses every policy,
 * and MinIO applies bucket policies to anonymous requests only).
 *
 * The admin API takes AWS Signature V4 requests; add-user wants its body
 * encrypted the way madmin-go's EncryptData does it: PBKDF2-SHA256 (8192
 * rounds) of the root secret key, then one sio-go AES-256-GCM stream of a
 * single final fragment.
 */
import { createCipheriv, createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import type { S3Info } from './bed.ts';
import { request } from './http.ts';

type Admin = Pick<S3Info, 'endpoint' | 'region' | 'accessKeyId' | 'secretAccessKey'>;

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
const rfc3986 = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** madmin-go EncryptData with the PBKDF2/AES-GCM algorithm (id 0x02), for bodies under 16 KiB. */
export function madminEncrypt(password: string, plaintext: Buffer): Buffer {
  if (plaintext.length >= 1 << 14) throw new Error('madminEncrypt: only bodies under 16 KiB');
  const salt = randomBytes(32);
  const key = pbkdf2Sync(password, salt, 8192, 32, 'sha256');
  const base = randomBytes(8);
  const nonce = (seq: number) => {
    const n = Buffer.alloc(12);
    base.copy(n, 0);
    n.writeUInt32LE(seq, 8);
    return n;
  };
  // sio-go: the associated data of every fragment is a flag byte and the tag of an empty
  // message sealed under sequence number 0; the final fragment has flag 0x80.
  const first = createCipheriv('aes-256-gcm', key, nonce(0));
  first.final();
  const ad = Buffer.concat([Buffer.from([0x80]), first.getAuthTag()]);
  const last = createCipheriv('aes-256-gcm', key, nonce(1));
  last.setAAD(ad);
  const sealed = Buffer.concat([last.update(plaintext), last.final(), last.getAuthTag()]);
  return Buffer.concat([salt, Buffer.from([0x02]), base, sealed]);
}

async function adminCall(
  admin: Admin,
  ca: Buffer,
  method: string,
  path: string,
  query: Record<string, string>,
  body: Buffer = Buffer.alloc(0),
): Promise<void> {
  const url = new URL(admin.endpoint);
  const amzDate = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const payloadHash = sha256(body);
  const canonicalQuery = Object.keys(query)
    .sort()
    .map((k) => `${rfc3986(k)}=${rfc3986(query[k] ?? '')}`)
    .join('&');
  const headers: Record<string, string> = {
    host: url.host,
    'x-amz-content-sha256': payloadHash,
    'x-amz-date': amzDate,
  };
  const signed = Object.keys(headers).sort();
  const canonical = [
    method,
    path,
    canonicalQuery,
    ...signed.map((h) => `${h}:${headers[h]}`),
    '',
    signed.join(';'),
    payloadHash,
  ].join('\n');
  const scope = `${day}/${admin.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let key = hmac(`AWS4${admin.secretAccessKey}`, day);
  for (const part of [admin.region, 's3', 'aws4_request']) key = hmac(key, part);
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  const res = await request(`${admin.endpoint}${path}?${canonicalQuery}`, {
    method,
    ca,
    body,
    headers: {
      ...headers,
      'content-length': String(body.length),
      authorization: `AWS4-HMAC-SHA256 Credential=${admin.accessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${signature}`,
    },
  });
  if (res.status !== 200) throw new Error(`MinIO admin ${method} ${path}: HTTP ${res.status} ${res.text()}`);
}

/** Creates (or replaces) the canned IAM policy `name`. */
export async function putCannedPolicy(
  admin: Admin,
  ca: Buffer,
  name: string,
  policy: Record<string, unknown>,
): Promise<void> {
  await adminCall(
    admin,
    ca,
    'PUT',
    '/minio/admin/v3/add-canned-policy',
    { name },
    Buffer.from(JSON.stringify(policy)),
  );
}

/**
 * Creates (or updates) a MinIO user whose only permissions are `policy` (an
 * IAM policy document). Returns its credentials.
 */
export async function createMinioUser(
  admin: Admin,
  ca: Buffer,
  accessKey: string,
  policy: Record<string, unknown>,
): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  const secretKey = `${accessKey}-${randomBytes(12).toString('hex')}`;
  const policyName = `${accessKey}-policy`;
  const prefix = '/minio/admin/v3';
  await adminCall(
    admin,
    ca,
    'PUT',
    `${prefix}/add-canned-policy`,
    { name: policyName },
    Buffer.from(JSON.stringify(policy)),
  );
  await adminCall(
    admin,
    ca,
    'PUT',
    `${prefix}/add-user`,
    { accessKey },
    madminEncrypt(admin.secretAccessKey, Buffer.from(JSON.stringify({ secretKey, status: 'enabled' }))),
  );
  await adminCall(admin, ca, 'PUT', `${prefix}/set-user-or-group-policy`, {
    policyName,
    userOrGroup: accessKey,
    isGroup: 'false',
  });
  return { accessKeyId: accessKey, secretAccessKey: secretKey };
}
