import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256Hex } from '../../src/core/documents.ts';
import { type KeyRecord, storedJwks } from '../../src/core/keys.ts';
import {
  type PlannedWrite,
  type Preparation,
  planWrites,
  prepare,
  type RawDocuments,
  type RenderedObject,
  type StoredObject,
} from '../../src/core/plan.ts';
import {
  discoveryJson,
  EC_PUBLIC,
  ISSUER,
  jwksJson,
  OKP_PUBLIC,
  PUBLIC_JWKS_URI,
  RSA_PRIVATE,
  RSA_PUBLIC,
  resolvedSpec,
  SOURCE_JWKS_URI,
  sortedKeys,
} from './fixtures.ts';

const RAW: RawDocuments = { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC, EC_PUBLIC]) };

function ready(p: Preparation): Extract<Preparation, { kind: 'ready' }> {
  assert.equal(p.kind, 'ready', `expected a ready preparation, got ${JSON.stringify(p)}`);
  return p as Extract<Preparation, { kind: 'ready' }>;
}

describe('prepare', () => {
  it('renders the JWKS first, then the discovery document, with keys, URLs and headers', () => {
    const p = ready(prepare(resolvedSpec(), RAW));
    assert.equal(p.issuer, ISSUER);
    assert.equal(p.sourceJwksURI, SOURCE_JWKS_URI);
    assert.deepEqual(
      p.keys.map((k) => k.kid),
      ['rsa-1', 'ec-1'],
    );
    const summary = p.objects.map(({ role, key, url, contentType, cacheControl }) => ({
      role,
      key,
      url,
      contentType,
      cacheControl,
    }));
    const expected = [
      {
        role: 'jwks',
        key: 'openid/v1/jwks',
        url: PUBLIC_JWKS_URI,
        contentType: 'application/jwk-set+json',
        cacheControl: 'public, max-age=300',
      },
      {
        role: 'discovery',
        key: '.well-known/openid-configuration',
        url: `${ISSUER}/.well-known/openid-configuration`,
        contentType: 'application/json',
        cacheControl: 'public, max-age=300',
      },
    ];
    assert.deepEqual(
      summary,
      expected,
      `expected ${JSON.stringify(expected)}, got ${JSON.stringify(summary)}`,
    );
  });

  it('records the SHA-256 of each body', () => {
    for (const o of ready(prepare(resolvedSpec(), RAW)).objects) {
      assert.equal(o.sha256, sha256Hex(o.body), `expected the sha256 of the ${o.role} body`);
    }
  });

  it('writes the spec jwksURI into the published discovery document', () => {
    const spec = resolvedSpec({ jwksURI: 'https://keys.example.net/jwks.json' });
    const discovery = ready(prepare(spec, RAW)).objects[1]!;
    const doc = JSON.parse(discovery.body.toString()) as { jwks_uri: string };
    assert.equal(doc.jwks_uri, 'https://keys.example.net/jwks.json', `got ${doc.jwks_uri}`);
    assert.equal(ready(prepare(spec, RAW)).objects[0]!.url, 'https://keys.example.net/jwks.json');
  });

  it('puts the objects under the storage prefix, whatever its trailing slashes', () => {
    for (const prefix of ['tenants/a', 'tenants/a/', 'tenants/a//']) {
      const spec = resolvedSpec({
        storage: { kind: 'gcs', bucket: 'oidc', prefix },
      });
      const keys = ready(prepare(spec, RAW)).objects.map((o) => o.key);
      const expected = ['tenants/a/openid/v1/jwks', 'tenants/a/.well-known/openid-configuration'];
      assert.deepEqual(keys, expected, `prefix ${JSON.stringify(prefix)}: got ${keys.join(', ')}`);
    }
  });

  it('joins the discovery URL without a double slash when the issuer ends with one', () => {
    const issuer = `${ISSUER}/`;
    const spec = resolvedSpec({ issuerURL: issuer });
    const p = ready(prepare(spec, { discovery: discoveryJson({ issuer }), jwks: RAW.jwks }));
    assert.equal(p.objects[1]!.url, `${ISSUER}/.well-known/openid-configuration`);
  });

  it('gives the same bodies and hashes when the source reorders keys and fields', () => {
    const a = ready(prepare(resolvedSpec(), RAW));
    const reversedDiscovery = JSON.stringify(
      Object.fromEntries(Object.entries(JSON.parse(discoveryJson()) as Record<string, unknown>).reverse()),
    );
    const b = ready(
      prepare(resolvedSpec(), { discovery: reversedDiscovery, jwks: jwksJson([EC_PUBLIC, RSA_PUBLIC]) }),
    );
    assert.deepEqual(
      b.objects.map((o) => o.sha256),
      a.objects.map((o) => o.sha256),
      'expected identical hashes for reordered source documents',
    );
  });

  const invalid: { name: string; raw: RawDocuments; expected: RegExp }[] = [
    {
      name: 'reports an invalid JWKS as invalid',
      raw: { discovery: RAW.discovery, jwks: jwksJson([{ ...RSA_PUBLIC, d: 'AQAB' }]) },
      expected: /^JWKS: .*private/,
    },
    {
      name: 'reports an invalid discovery document as invalid',
      raw: { discovery: discoveryJson({ jwks_uri: undefined }), jwks: RAW.jwks },
      expected: /^discovery document: "jwks_uri"/,
    },
    {
      name: 'reports invalid documents before comparing the issuer',
      raw: { discovery: discoveryJson({ issuer: 'https://other.example.com' }), jwks: jwksJson([]) },
      expected: /^JWKS: "keys" is empty/,
    },
    {
      name: 'reports a discovery document that is not JSON as invalid',
      raw: { discovery: Buffer.from('<html>'), jwks: RAW.jwks },
      expected: /not valid JSON/,
    },
  ];
  for (const { name, raw, expected } of invalid) {
    it(name, () => {
      const p = prepare(resolvedSpec(), raw);
      assert.equal(p.kind, 'invalid', `expected invalid, got ${p.kind}`);
      if (p.kind !== 'invalid') return;
      assert.equal(p.error.code, 'DOCUMENT_INVALID', `expected DOCUMENT_INVALID, got ${p.error.code}`);
      assert.match(p.error.message, expected);
    });
  }

  const mismatches: { name: string; source: string; spec: string }[] = [
    {
      name: 'reports a different host as an issuer mismatch',
      source: 'https://kubernetes.default.svc',
      spec: ISSUER,
    },
    {
      name: 'reports a source issuer with a trailing slash as a mismatch',
      source: `${ISSUER}/`,
      spec: ISSUER,
    },
    { name: 'reports a spec issuer with a trailing slash as a mismatch', source: ISSUER, spec: `${ISSUER}/` },
    {
      name: 'reports a different path as an issuer mismatch',
      source: `${ISSUER}/clusters/a`,
      spec: `${ISSUER}/clusters/A`,
    },
  ];
  for (const { name, source, spec } of mismatches) {
    it(name, () => {
      const p = prepare(resolvedSpec({ issuerURL: spec }), {
        discovery: discoveryJson({ issuer: source }),
        jwks: RAW.jwks,
      });
      const expected = { kind: 'issuerMismatch', issuer: source, expected: spec };
      assert.deepEqual(p, expected, `expected ${JSON.stringify(expected)}, got ${JSON.stringify(p)}`);
    });
  }
});

describe('prepare with key retention', () => {
  const T0 = new Date('2025-06-01T00:00:00.000Z');
  const H = 3_600_000;
  const DAY = 24 * H;
  const at = (ms: number): Date => new Date(T0.getTime() + ms);
  const spec = resolvedSpec({ keyRetentionMs: DAY });
  const raw = (keys: unknown[]): RawDocuments => ({ discovery: discoveryJson(), jwks: jwksJson(keys) });
  /** The JWKS body's keys, as relying parties parse them. */
  const served = (p: Extract<Preparation, { kind: 'ready' }>): Record<string, unknown>[] =>
    (JSON.parse(p.objects[0]!.body.toString('utf8')) as { keys: Record<string, unknown>[] }).keys;
  const changes = (p: Extract<Preparation, { kind: 'ready' }>): string[] =>
    p.retention.changes.map((c) => `${c.kind} ${c.kid}`);

  /** First sync: three keys; status records them, and the API server returns them with members sorted. */
  const first = ready(
    prepare(spec, raw([RSA_PUBLIC, OKP_PUBLIC, EC_PUBLIC]), { previous: undefined, now: T0 }),
  );
  /** What the first sync wrote to storage, read back with the SHA-256 recorded with it. */
  const wroteFirst = storedJwks(first.objects[0]!.body, first.objects[0]!.sha256);
  /** An hour later the source serves ec-1 only. */
  const rotated = ready(
    prepare(spec, raw([EC_PUBLIC]), {
      previous: sortedKeys(first.retention.records),
      now: at(H),
      stored: wroteFirst,
    }),
  );

  it('keeps the retired keys in the published JWKS bytes, sorted by kid, with their public fields only', () => {
    const keys = served(rotated);
    const members = keys.map((k) => `${k.kid}: ${Object.keys(k).join(',')}`);
    const expected = [
      'ec-1: kty,kid,use,alg,crv,x,y',
      'ed-1: kty,kid,alg,crv,x',
      'rsa-1: kty,kid,use,alg,n,e',
    ];
    assert.deepEqual(members, expected, `expected [${expected.join('; ')}], got [${members.join('; ')}]`);
    assert.deepEqual(
      keys.find((k) => k.kid === 'rsa-1'),
      RSA_PUBLIC,
      'expected the retired RSA key exactly as the source served it',
    );
    assert.deepEqual(changes(rotated), ['retired ed-1', 'retired rsa-1']);
    assert.deepEqual(rotated.keys.map((k) => k.kid).sort(), ['ec-1', 'ed-1', 'rsa-1']);
  });

  it('renders the same JWKS bytes while a retired key is retained, so nothing is rewritten', () => {
    assert.ok(
      rotated.objects[0]!.body.equals(first.objects[0]!.body),
      `expected identical bytes, got ${rotated.objects[0]!.body.toString()}`,
    );
    assert.equal(rotated.objects[0]!.sha256, first.objects[0]!.sha256);
    const writes = planWrites(
      rotated.objects,
      first.objects.map((o) => ({
        sha256: o.sha256,
        contentType: o.contentType,
        cacheControl: o.cacheControl,
      })),
    );
    assert.deepEqual(writes, [], `expected no writes, got ${writes.map((w) => w.why).join(', ')}`);
  });

  it('drops the retired keys from the JWKS bytes when their retention ends', () => {
    const expired = ready(
      prepare(spec, raw([EC_PUBLIC]), {
        previous: sortedKeys(rotated.retention.records),
        now: at(H + DAY),
        stored: storedJwks(rotated.objects[0]!.body, rotated.objects[0]!.sha256),
      }),
    );
    assert.deepEqual(
      served(expired).map((k) => k.kid),
      ['ec-1'],
    );
    assert.deepEqual(changes(expired), ['removed ed-1', 'removed rsa-1']);
    assert.notEqual(expired.objects[0]!.sha256, first.objects[0]!.sha256, 'expected the JWKS to change');
    assert.equal(expired.retention.nextExpiryInMs, undefined);
  });

  it('reports when the next retained key expires', () => {
    assert.equal(rotated.retention.nextExpiryInMs, DAY, `got ${rotated.retention.nextExpiryInMs}`);
  });

  it('never publishes private parameters a stored record carries', () => {
    const tampered: KeyRecord[] = [
      { kid: 'rsa-1', kty: 'RSA', alg: 'RS256', firstSeen: '2025-05-01T00:00:00Z', jwk: { ...RSA_PRIVATE } },
    ];
    const p = ready(prepare(spec, raw([EC_PUBLIC]), { previous: tampered, now: T0, stored: wroteFirst }));
    const text = p.objects[0]!.body.toString('utf8');
    assert.deepEqual(
      served(p).find((k) => k.kid === 'rsa-1'),
      RSA_PUBLIC,
      `expected the RSA key with its public fields only, got ${text}`,
    );
    for (const f of ['d', 'p', 'q', 'dp', 'dq', 'qi']) {
      assert.ok(!text.includes(RSA_PRIVATE[f] as string), `expected no "${f}" value in the JWKS bytes`);
    }
  });

  it('publishes the source keys only when no key state is given', () => {
    const p = ready(prepare(spec, raw([EC_PUBLIC])));
    assert.deepEqual(
      served(p).map((k) => k.kid),
      ['ec-1'],
    );
    assert.deepEqual(changes(p), ['added ec-1']);
  });
});

describe('planWrites', () => {
  const objects = ready(
    prepare(resolvedSpec(), { discovery: discoveryJson(), jwks: jwksJson([OKP_PUBLIC]) }),
  ).objects;
  const [jwks, discovery] = objects as [RenderedObject, RenderedObject];
  const same = (o: RenderedObject): StoredObject => ({
    sha256: o.sha256,
    contentType: o.contentType,
    cacheControl: o.cacheControl,
  });
  const why = (writes: PlannedWrite[]): string[] => writes.map((w) => `${w.object.role}: ${w.why}`);

  const cases: {
    name: string;
    stored: (StoredObject | undefined)[];
    rewrite?: boolean;
    expected: string[];
  }[] = [
    {
      name: 'writes both objects, JWKS first, when the bucket is empty',
      stored: [undefined, undefined],
      expected: ['jwks: missing', 'discovery: missing'],
    },
    {
      name: 'writes nothing when the bucket holds the same content and headers',
      stored: [same(jwks), same(discovery)],
      expected: [],
    },
    {
      name: 'rewrites an object whose content changed',
      stored: [{ ...same(jwks), sha256: 'f'.repeat(64) }, same(discovery)],
      expected: ['jwks: content changed'],
    },
    {
      name: 'rewrites an object whose stored hash is unknown',
      stored: [same(jwks), { contentType: discovery.contentType, cacheControl: discovery.cacheControl }],
      expected: ['discovery: content changed'],
    },
    {
      name: 'rewrites an object whose Content-Type changed',
      stored: [{ ...same(jwks), contentType: 'application/json' }, same(discovery)],
      expected: ['jwks: headers changed'],
    },
    {
      name: 'rewrites an object whose Cache-Control changed',
      stored: [same(jwks), { ...same(discovery), cacheControl: 'no-store' }],
      expected: ['discovery: headers changed'],
    },
    {
      name: 'reports a content change before a header change for the same object',
      stored: [{ sha256: 'x', contentType: 'text/plain' }, undefined],
      expected: ['jwks: content changed', 'discovery: missing'],
    },
    {
      name: 'rewrites both objects, JWKS first, when the served content differs though the bucket looks current',
      stored: [same(jwks), same(discovery)],
      rewrite: true,
      expected: ['jwks: served content differs', 'discovery: served content differs'],
    },
    {
      name: 'reports a missing object as missing when rewriting',
      stored: [same(jwks), undefined],
      rewrite: true,
      expected: ['jwks: served content differs', 'discovery: missing'],
    },
    {
      name: 'reports a rewrite rather than a content or header change when rewriting',
      stored: [
        { ...same(jwks), sha256: 'f'.repeat(64) },
        { ...same(discovery), cacheControl: 'no-store' },
      ],
      rewrite: true,
      expected: ['jwks: served content differs', 'discovery: served content differs'],
    },
    {
      name: 'writes nothing for a current bucket when rewrite is false',
      stored: [same(jwks), same(discovery)],
      rewrite: false,
      expected: [],
    },
  ];
  for (const { name, stored, rewrite, expected } of cases) {
    it(name, () => {
      const got = why(
        rewrite === undefined ? planWrites(objects, stored) : planWrites(objects, stored, rewrite),
      );
      assert.deepEqual(got, expected, `expected [${expected.join('; ')}], got [${got.join('; ')}]`);
    });
  }

  it('returns the rendered objects themselves, so the writer sends their bodies', () => {
    const [first] = planWrites(objects, [undefined, same(discovery)]);
    assert.equal(first?.object, jwks, 'expected the same RenderedObject instance');
  });
});
