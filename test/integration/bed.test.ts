/**
 * The test bed itself: a hardened API server whose issuer is a public bucket,
 * key rotation, and the storage servers behaving like the real services.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Storage } from '@google-cloud/storage';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { keyIdOf } from '../bed/pki.ts';
import { createS3Client } from '../bed/s3.ts';
import { useBed } from '../bed/shared.ts';

interface Jwks {
  keys: { kty: string; kid: string; alg?: string; use?: string }[];
}

function asJwks(value: unknown): Jwks {
  assert.ok(
    value && typeof value === 'object' && Array.isArray((value as Jwks).keys),
    'expected a JWKS object',
  );
  return value as Jwks;
}

async function getAs(bed: Bed, path: string, who: 'anonymous' | 'admin' | { token: string }) {
  const ca = bed.ca;
  if (who === 'anonymous') return request(`${bed.apiserverURL}${path}`, { ca });
  if (who === 'admin') {
    return request(`${bed.apiserverURL}${path}`, {
      ca,
      cert: readFileSync(bed.state.admin.cert),
      key: readFileSync(bed.state.admin.key),
    });
  }
  return request(`${bed.apiserverURL}${path}`, { ca, headers: { authorization: `Bearer ${who.token}` } });
}

describe('test bed: API server', () => {
  const useShared = useBed();
  let bed: Bed;
  before(async () => {
    bed = useShared();
    await bed.serviceAccountKubeconfig('bed-check', 'reader');
  });

  it('refuses anonymous requests for the JWKS with 401', async () => {
    const res = await getAs(bed, '/openid/v1/jwks', 'anonymous');
    assert.equal(res.status, 401, `anonymous GET /openid/v1/jwks: expected 401, got ${res.status}`);
  });

  it('serves the admin a JWKS with one RSA key whose kid is base64url(SHA-256(DER SPKI))', async () => {
    const res = await getAs(bed, '/openid/v1/jwks', 'admin');
    assert.equal(res.status, 200);
    const jwks = asJwks(res.json());
    assert.equal(jwks.keys.length, 1);
    const [key] = jwks.keys;
    assert.equal(key?.kty, 'RSA');
    assert.equal(key?.kid, keyIdOf(readFileSync(bed.signingKey.publicKeyFile)));
  });

  it('serves the same JWKS to a ServiceAccount token', async () => {
    const token = await bed.mintToken({ namespace: 'bed-check', serviceAccount: 'reader' });
    const res = await getAs(bed, '/openid/v1/jwks', { token });
    assert.equal(
      res.status,
      200,
      `GET with a ServiceAccount token: expected 200, got ${res.status}: ${res.text()}`,
    );
    const jwks = asJwks(res.json());
    assert.deepEqual(
      jwks.keys.map((k) => k.kid),
      [keyIdOf(readFileSync(bed.signingKey.publicKeyFile))],
    );
  });

  it('names the public bucket URL as issuer in its discovery document', async () => {
    const res = await getAs(bed, '/.well-known/openid-configuration', 'admin');
    assert.equal(res.status, 200);
    const doc = res.json() as { issuer: string; jwks_uri: string };
    assert.equal(doc.issuer, bed.issuer);
    assert.match(doc.issuer, /^https:\/\/127\.0\.0\.1:\d+\/oidc-bed\/public\/cluster-a$/);
  });
});

describe('test bed: key rotation', () => {
  const useOwn = useBed({ gcs: false });
  let bed: Bed;
  before(() => {
    bed = useOwn();
  });

  it('after a rotation restart lists both keys and still accepts a token signed by the old one', async () => {
    await bed.serviceAccountKubeconfig('rotation', 'app');
    const oldKid = bed.signingKey.kid;
    const oldToken = await bed.mintToken({ namespace: 'rotation', serviceAccount: 'app' });
    await bed.restartApiserver({ rotate: true });
    const newKid = bed.signingKey.kid;
    assert.notEqual(newKid, oldKid);

    const jwks = asJwks((await getAs(bed, '/openid/v1/jwks', 'admin')).json());
    assert.deepEqual(jwks.keys.map((k) => k.kid).sort(), [oldKid, newKid].sort());

    const withOld = await getAs(bed, '/api', { token: oldToken });
    assert.equal(withOld.status, 200, `token signed by the retired key: expected 200, got ${withOld.status}`);
    const newToken = await bed.mintToken({ namespace: 'rotation', serviceAccount: 'app' });
    assert.equal(JSON.parse(Buffer.from(newToken.split('.')[0] ?? '', 'base64url').toString()).kid, newKid);
    const forged = `${oldToken.slice(0, -4)}AAAA`;
    assert.equal(
      (await getAs(bed, '/api', { token: forged })).status,
      401,
      'a token with a broken signature must be refused',
    );
  });

  it('after dropping the old key refuses tokens it signed', async () => {
    const token = await bed.mintToken({ namespace: 'rotation', serviceAccount: 'app' });
    await bed.restartApiserver({ rotate: true, dropOldKeys: true });
    const jwks = asJwks((await getAs(bed, '/openid/v1/jwks', 'admin')).json());
    assert.deepEqual(
      jwks.keys.map((k) => k.kid),
      [bed.signingKey.kid],
    );
    assert.equal((await getAs(bed, '/api', { token })).status, 401);
  });
});

describe('test bed: MinIO (S3)', () => {
  const useShared = useBed();
  let bed: Bed;
  before(() => {
    bed = useShared();
  });

  it('serves an object under the public prefix to anonymous HTTPS GETs with its Content-Type', async () => {
    const s3 = bed.state.s3;
    const client = createS3Client(s3, bed.ca);
    const key = `${s3.publicPrefix}bed-check/${Date.now()}.json`;
    const body = JSON.stringify({ hello: 'world' });
    await client.send(
      new PutObjectCommand({
        Bucket: s3.bucket,
        Key: key,
        Body: body,
        ContentType: 'application/jwk-set+json',
      }),
    );
    const res = await request(`${s3.endpoint}/${s3.bucket}/${key}`, { ca: bed.ca });
    assert.equal(res.status, 200, `anonymous GET: expected 200, got ${res.status}: ${res.text()}`);
    assert.equal(res.text(), body);
    assert.equal(res.headers['content-type'], 'application/jwk-set+json');
    client.destroy();
  });

  it('denies anonymous GETs outside the public prefix', async () => {
    const s3 = bed.state.s3;
    const client = createS3Client(s3, bed.ca);
    const key = `private/bed-check/${Date.now()}.json`;
    await client.send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: 'secret', ContentType: 'text/plain' }),
    );
    const signed = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    assert.equal(await signed.Body?.transformToString(), 'secret', 'the object exists for signed requests');
    const res = await request(`${s3.endpoint}/${s3.bucket}/${key}`, { ca: bed.ca });
    assert.equal(res.status, 403, `anonymous GET outside the public prefix: expected 403, got ${res.status}`);
    client.destroy();
  });
});

describe('test bed: fake-gcs-server (GCS)', () => {
  const useShared = useBed();
  let bed: Bed;
  before(() => {
    bed = useShared();
  });

  it('keeps contentType and cacheControl from PUT to GET, through the API and the public URL', async () => {
    const gcs = bed.state.gcs;
    assert.ok(gcs, 'the shared bed runs fake-gcs-server');
    const storage = new Storage({ apiEndpoint: gcs.endpoint, projectId: 'bed' });
    const name = `bed-check/${Date.now()}/openid/v1/jwks`;
    const file = storage.bucket(gcs.bucket).file(name);
    await file.save('{"keys":[]}', {
      resumable: false,
      metadata: { contentType: 'application/jwk-set+json', cacheControl: 'public, max-age=300' },
    });
    const [meta] = await file.getMetadata();
    assert.equal(meta.contentType, 'application/jwk-set+json');
    assert.equal(meta.cacheControl, 'public, max-age=300');
    const res = await request(`${gcs.endpoint}/${gcs.bucket}/${name}`, { ca: bed.ca });
    assert.equal(res.status, 200);
    assert.equal(res.text(), '{"keys":[]}');
    assert.equal(res.headers['content-type'], 'application/jwk-set+json');
    assert.equal(res.headers['cache-control'], 'public, max-age=300');
  });
});
