/**
 * Whoever may patch oidcpublishers/status, even with write access to the bucket as well, must not
 * get a key published: a key of their own added
 * to status.keys as a retired key (retiredAt far in the future) is refused, never appears in the
 * public JWKS, is dropped from the status, and is reported with a Warning Event, a condition
 * reason and the key-change metric; the published documents stay as the API server serves them.
 * Observed only from outside: kubectl, anonymous HTTPS, /metrics.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { stringify } from 'yaml';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { createS3Client } from '../bed/s3.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  condition,
  createSecret,
  eventually,
  getPublisher,
  installOperator,
  OperatorProcess,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const NAME = 'status-tamper';
const FAR_FUTURE = '2999-01-01T00:00:00Z';

/** An RSA public key as a JWK with `kid`, `alg` and `use`. */
function rsaJwk(bits: number, kid: string, alg: string, use: string): Record<string, string> {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  const { n, e } = publicKey.export({ format: 'jwk' });
  return { kty: 'RSA', kid, use, alg, n: n as string, e: e as string };
}

describe('status.keys is not key material (S3)', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await op?.stop('SIGTERM');
      },
    },
  );
  let jwksURL: string;
  let discoveryURL: string;

  const anonymous = async (url: string): Promise<string> => {
    const res = await request(url, { ca: bed.ca });
    assert.equal(res.status, 200, `anonymous GET ${url}`);
    return res.text();
  };

  before(async () => {
    bed = useOwn();
    jwksURL = `${bed.issuer}/openid/v1/jwks`;
    discoveryURL = `${bed.issuer}/.well-known/openid-configuration`;
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    op = await OperatorProcess.start(bed, kubeconfig, ['--leader-elect', 'false']);
    const doc = samplePublisher(bed, { name: NAME, spec: { keyRetention: '1h' } });
    await applyYaml(bed, stringify(doc));
    await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
  });

  it('never publishes a key added to status.keys, drops it, and says so in an Event, the condition and the metric', async () => {
    const jwksBefore = await anonymous(jwksURL);
    const discoveryBefore = await anonymous(discoveryURL);
    const sourceKids = (JSON.parse(jwksBefore) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    const p = await getPublisher(bed, NAME);
    const keys = (p.status?.keys ?? []) as Record<string, unknown>[];
    assert.deepEqual(
      keys.map((k) => k.kid),
      sourceKids,
      'status records the keys the API server serves',
    );

    // A valid signing key nobody but the patcher holds, and a weak encryption key with alg "none".
    const forged = rsaJwk(2048, 'forged-key', 'RS256', 'sig');
    const weak = rsaJwk(512, 'weak-key', 'none', 'enc');
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const records = [forged, weak].map((jwk) => ({
      kid: jwk.kid,
      kty: 'RSA',
      alg: jwk.alg,
      firstSeen: now,
      retiredAt: FAR_FUTURE,
      expiresAt: FAR_FUTURE,
      jwk,
    }));
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { keys: [...keys, ...records] } }),
    ]);
    const patched = await getPublisher(bed, NAME);
    assert.deepEqual(
      (patched.status?.keys ?? []).map((k) => k.kid).sort(),
      [...sourceKids, 'forged-key', 'weak-key'].sort(),
      'the API server accepted the patched status',
    );

    // Over the next syncs the public JWKS never holds either key, until the operator has dropped them.
    const forbidden = new Set(['forged-key', 'weak-key']);
    await eventually(
      'the operator to drop the patched records from status.keys',
      async () => {
        const served = (JSON.parse(await anonymous(jwksURL)) as { keys: { kid: string }[] }).keys.map(
          (k) => k.kid,
        );
        const leaked = served.filter((kid) => forbidden.has(kid));
        assert.deepEqual(leaked, [], `the public JWKS serves ${leaked.join(', ')}: ${served.join(', ')}`);
        const kids = ((await getPublisher(bed, NAME)).status?.keys ?? []).map((k) => k.kid);
        return kids.some((kid) => forbidden.has(kid)) ? undefined : kids;
      },
      40_000,
    );
    // Two more syncs: still nothing of theirs published.
    const until = Date.now() + 21_000;
    while (Date.now() < until) {
      const served = await anonymous(jwksURL);
      assert.ok(!served.includes('forged-key') && !served.includes('weak-key'), `public JWKS: ${served}`);
      await new Promise((r) => setTimeout(r, 500));
    }

    assert.equal(await anonymous(jwksURL), jwksBefore, 'the public JWKS is what the API server serves');
    assert.equal(await anonymous(discoveryURL), discoveryBefore, 'the discovery document is unchanged');
    const after = await getPublisher(bed, NAME);
    assert.deepEqual(
      (after.status?.keys ?? []).map((k) => k.kid),
      sourceKids,
      'status.keys holds the source keys only',
    );
    assert.equal(condition(after, 'Ready')?.status, 'True', 'still Ready: the source keys are published');
    assert.equal(condition(after, 'Published')?.status, 'True');

    const events = JSON.parse(
      await bed.kubectl(['get', 'events.events.k8s.io', '-n', 'default', '-o', 'json']),
    ) as { items: { regarding?: { name?: string }; reason?: string; type?: string; note?: string }[] };
    const refused = events.items.filter((e) => e.regarding?.name === NAME && e.reason === 'KeyRefused');
    for (const kid of forbidden) {
      const e = refused.find((x) => x.note?.includes(`"${kid}"`));
      assert.ok(e, `a KeyRefused Event names ${kid}; got ${JSON.stringify(refused.map((x) => x.note))}`);
      assert.equal(e.type, 'Warning');
      assert.match(
        e.note ?? '',
        /not published: the JWKS the operator last published does not hold this kid/,
      );
    }
    const published = events.items.filter(
      (e) => e.regarding?.name === NAME && e.reason === 'DocumentsPublished',
    );
    assert.equal(
      published.length,
      1,
      `the documents were written once, at the first sync: ${published.length}`,
    );

    const metrics = await op!.metrics();
    assert.match(
      metrics,
      new RegExp(`^oidc_publisher_key_changes_total\\{publisher="${NAME}",change="refused"\\} 2$`, 'm'),
    );
    const reasons = op!
      .logs()
      .filter((l) => l.oidcpublisher === NAME)
      .map((l) => l.msg);
    assert.ok(!reasons.includes('reconcile failed'), `no failed reconcile: ${reasons.join(', ')}`);
  });

  it('never publishes a key a bucket writer and a status writer put in together: a JWKS with its hash and owner metadata, and a status.keys record of the same key', async () => {
    const jwksBefore = await anonymous(jwksURL);
    const p = await getPublisher(bed, NAME);
    const keys = (p.status?.keys ?? []) as Record<string, unknown>[];
    for (const k of keys)
      assert.match(String(k.mac), /^v1\.[0-9a-f]{8}\./, `the operator sealed ${String(k.kid)}`);
    const uid = (await bed.kubectl(['get', 'oidcpublisher', NAME, '-o', 'jsonpath={.metadata.uid}'])).trim();
    const kid = 'bucket-and-status';
    const forged = rsaJwk(2048, kid, 'RS256', 'sig');

    // The bucket writer: the published JWKS plus their key, with its SHA-256 and this publisher's
    // UID and name in the metadata, as the operator writes them (all of it readable).
    const served = JSON.parse(jwksBefore) as { keys: Record<string, unknown>[] };
    const body = Buffer.from(`${JSON.stringify({ keys: [...served.keys, forged] })}\n`);
    const s3 = createS3Client(bed.state.s3, bed.ca);
    try {
      await s3.send(
        new PutObjectCommand({
          Bucket: bed.state.s3.bucket,
          Key: 'public/cluster-a/openid/v1/jwks',
          Body: body,
          ContentType: 'application/json',
          Metadata: {
            'oidc-publisher-sha256': createHash('sha256').update(body).digest('hex'),
            'oidc-publisher-owner-uid': uid,
            'oidc-publisher-owner-name': NAME,
          },
        }),
      );
    } finally {
      s3.destroy();
    }
    // The status writer: a record of the same key, retired now, with a genuine record's MAC.
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const record = {
      kid,
      kty: 'RSA',
      alg: 'RS256',
      firstSeen: now,
      retiredAt: now,
      jwk: forged,
      mac: keys[0]?.mac,
    };
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { keys: [...keys, record] } }),
    ]);

    // The operator repairs the JWKS and drops the record, and never takes the key as retained.
    await eventually(
      'the operator to rewrite the JWKS without the key and drop its record',
      async () => {
        const kids = ((await getPublisher(bed, NAME)).status?.keys ?? []).map((k) => k.kid);
        const publicJwks = await anonymous(jwksURL);
        return !kids.includes(kid) && !publicJwks.includes(kid) ? true : undefined;
      },
      40_000,
    );
    const until = Date.now() + 21_000;
    while (Date.now() < until) {
      const publicJwks = await anonymous(jwksURL);
      assert.ok(!publicJwks.includes(kid), `the public JWKS serves the key again: ${publicJwks}`);
      const kids = ((await getPublisher(bed, NAME)).status?.keys ?? []).map((k) => k.kid);
      assert.ok(!kids.includes(kid), `status.keys records the key again: ${kids.join(', ')}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.equal(await anonymous(jwksURL), jwksBefore, 'the public JWKS is what the API server serves');

    const events = JSON.parse(
      await bed.kubectl(['get', 'events.events.k8s.io', '-n', 'default', '-o', 'json']),
    ) as { items: { regarding?: { name?: string }; reason?: string; type?: string; note?: string }[] };
    const refused = events.items.filter(
      (e) => e.regarding?.name === NAME && e.reason === 'KeyRefused' && e.note?.includes(`"${kid}"`),
    );
    assert.ok(refused.length > 0, 'a KeyRefused Event names the key');
    assert.match(refused[0]?.note ?? '', /MAC does not match its kid, key parameters and retiredAt/);
    assert.ok(
      !events.items.some(
        (e) => e.regarding?.name === NAME && e.reason === 'KeyRetained' && e.note?.includes(kid),
      ),
      'no KeyRetained Event names the key',
    );
  });

  it('refuses a status record the CRD cannot hold: more than 200 keys, a kty that is no key type, more than 4 objects or an object that is no hash', async () => {
    const p = await getPublisher(bed, NAME);
    const patchStatus = (status: object) =>
      bed.kubectl([
        'patch',
        'oidcpublisher',
        NAME,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status }),
      ]);
    const many = Array.from({ length: 201 }, (_, i) => ({ kid: `k${i}`, kty: 'EC', firstSeen: FAR_FUTURE }));
    await assert.rejects(patchStatus({ keys: many }), /Too many: 201: must have at most 200 items/);
    await assert.rejects(
      patchStatus({ keys: [{ kid: 'x', kty: 'oct', firstSeen: FAR_FUTURE }] }),
      /Unsupported value: "oct"/,
    );
    // status.objects: the ownership check reads it on every sync, so it is bounded too.
    const object = (i: number) => ({ key: `k${i}`, sha256: 'a'.repeat(64) });
    await assert.rejects(
      patchStatus({ objects: Array.from({ length: 5 }, (_, i) => object(i)) }),
      /Too many: 5: must have at most 4 items/,
    );
    await assert.rejects(
      patchStatus({ objects: [{ key: 'k'.repeat(1101), sha256: 'not a hash' }] }),
      (err: Error) =>
        /status\.objects\[0\]\.key: Too long: may not be more than 1100/.test(err.message) &&
        /status\.objects\[0\]\.sha256: Invalid value: "not a hash"/.test(err.message),
    );
    const unchanged = await getPublisher(bed, NAME);
    assert.deepEqual(unchanged.status?.keys, p.status?.keys, 'the refused patches changed nothing');
    assert.deepEqual(unchanged.status?.objects, p.status?.objects, 'the refused patches changed nothing');
  });
});
