/**
 * Fuzzing the pure core with fast-check: whatever an API server (or a stand-in
 * for one) serves, and whatever the status recorded, validateDiscovery,
 * validateJwks, renderDiscovery and prepare() either refuse with an
 * OidcPublisherError or produce objects that parse as JSON, name the spec's
 * issuer and jwks_uri, carry no private key parameter, hash to their sha256,
 * and render to the same bytes again. The JWKS-only property (validateJwks +
 * renderJwks) is in documents.test.ts; this file covers the discovery
 * document and the whole of prepare(), including bytes that are not UTF-8,
 * deep nesting and members named like Object.prototype's.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { renderDiscovery, sha256Hex, validateDiscovery, validateJwks } from '../../src/core/documents.ts';
import { type KeyRecord, storedJwks } from '../../src/core/keys.ts';
import { type DocumentSpec, prepare } from '../../src/core/plan.ts';
import { OidcPublisherError } from '../../src/errors.ts';
import {
  discoveryJson,
  EC_PUBLIC,
  ISSUER,
  OKP_PUBLIC,
  PUBLIC_JWKS_URI,
  RSA_PRIVATE,
  RSA_PUBLIC,
  SOURCE_JWKS_URI,
} from './fixtures.ts';

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'] as const;
const RUNS = { numRuns: 400 };

const SPEC: DocumentSpec = {
  issuerURL: ISSUER,
  jwksURI: PUBLIC_JWKS_URI,
  cacheControl: 'public, max-age=300',
  keyRetentionMs: 24 * 3_600_000,
  storage: { prefix: 'cluster-a' },
};

/** Member names that trip up code treating objects as maps. */
const awkwardName = fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', '', 'issuer ');

/** A JSON value nested `depth` levels, as text (fast-check's own generators stay shallow). */
const deepText = fc
  .integer({ min: 1, max: 20_000 })
  .map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`);

/** Discovery documents: near-valid ones with odd members, arbitrary JSON, and not-JSON. */
const discoveryText: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  // Valid, with odd extra members, often enough that prepare() gets past validation.
  {
    weight: 4,
    arbitrary: fc
      .dictionary(awkwardName, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3 })
      .map((odd) => discoveryJson(odd)),
  },
  fc
    .record(
      {
        issuer: fc.oneof(fc.constant(ISSUER), fc.webUrl(), fc.string(), fc.jsonValue({ maxDepth: 1 })),
        jwks_uri: fc.oneof(fc.constant(SOURCE_JWKS_URI), fc.webUrl(), fc.string(), fc.constant(null)),
        response_types_supported: fc.oneof(fc.array(fc.string()), fc.jsonValue({ maxDepth: 2 })),
        subject_types_supported: fc.array(fc.string(), { maxLength: 3 }),
        id_token_signing_alg_values_supported: fc.array(fc.constantFrom('RS256', 'ES256', 'none')),
        extra: fc.jsonValue({ maxDepth: 4 }),
      },
      { requiredKeys: ['issuer', 'jwks_uri'] },
    )
    .chain((doc) =>
      fc
        .dictionary(awkwardName, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })
        .map((odd) => JSON.stringify({ ...doc, ...odd })),
    ),
  fc
    .tuple(fc.constantFrom(ISSUER, 'https://other.example.com'), deepText)
    .map(
      ([issuer, deep]) => `{"issuer":${JSON.stringify(issuer)},"jwks_uri":"${SOURCE_JWKS_URI}","x":${deep}}`,
    ),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.uint8Array({ maxLength: 64 }),
);

const b64 = fc
  .uint8Array({ minLength: 1, maxLength: 64 })
  .map((bytes) => Buffer.from(bytes).toString('base64url'));
const jwk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC, RSA_PRIVATE),
  fc
    .tuple(fc.constantFrom(RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC), fc.constantFrom(...PRIVATE_MEMBERS), b64)
    .map(([key, member, value]) => ({ ...key, [member]: value })),
  fc
    .tuple(fc.constantFrom(RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC), awkwardName, fc.jsonValue({ maxDepth: 2 }))
    .map(([key, member, value]) => JSON.parse(JSON.stringify({ ...key, [member]: value })) as unknown),
  fc.jsonValue({ maxDepth: 3 }),
);
const jwksText: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .subarray([RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC], { minLength: 1 })
      .map((keys) => JSON.stringify({ keys })),
  },
  fc.array(jwk, { maxLength: 4 }).map((keys) => JSON.stringify({ keys })),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.uint8Array({ maxLength: 64 }),
);

/** What status.keys could hold: records of real keys (retired or not), and whatever else its schema allows. */
const isoDate = fc
  .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
  .map((d) => d.toISOString());
const previous: fc.Arbitrary<KeyRecord[] | undefined> = fc.option(
  fc.array(
    fc.oneof(
      fc
        .record({
          key: fc.constantFrom(RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC, RSA_PRIVATE),
          kid: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 6 })),
          firstSeen: isoDate,
          retiredAt: fc.option(fc.oneof(isoDate, fc.string({ maxLength: 8 })), { nil: undefined }),
        })
        .map(({ key, kid, firstSeen, retiredAt }) => {
          const id = kid ?? String(key.kid);
          return {
            kid: id,
            kty: String(key.kty),
            alg: String(key.alg),
            firstSeen,
            ...(retiredAt ? { retiredAt } : {}),
            jwk: { ...key, kid: id },
          } as KeyRecord;
        }),
      // Anything else the CRD schema lets through: kid and kty required, every member a string.
      fc
        .record(
          {
            kid: fc.string({ maxLength: 6 }),
            kty: fc.constantFrom('RSA', 'EC', 'OKP', 'oct', ''),
            alg: fc.string({ maxLength: 6 }),
            firstSeen: fc.oneof(isoDate, fc.string({ maxLength: 8 })),
            retiredAt: fc.oneof(isoDate, fc.string({ maxLength: 8 })),
            expiresAt: fc.oneof(isoDate, fc.string({ maxLength: 8 })),
            jwk: fc.dictionary(
              fc.constantFrom('kty', 'kid', 'use', 'alg', 'crv', 'n', 'e', 'x', 'y', 'd'),
              fc.oneof(fc.string({ maxLength: 8 }), b64),
            ),
          },
          { requiredKeys: ['kid', 'kty'] },
        )
        .map((r) => r as unknown as KeyRecord),
    ),
    { maxLength: 4 },
  ),
  { nil: undefined },
);

/** What storage could hold as the JWKS the operator wrote: the fixture keys, other keys, anything. */
const storedText: fc.Arbitrary<Buffer | undefined> = fc.option(
  fc
    .oneof(
      { weight: 3, arbitrary: fc.constant(JSON.stringify({ keys: [RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC] })) },
      jwksText.map(String),
    )
    .map((t) => Buffer.from(t)),
  { nil: undefined },
);

function refusedOnly(err: unknown, what: string): void {
  if (!(err instanceof OidcPublisherError)) {
    assert.fail(`${what} threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
}

describe('fuzz: the pure core on hostile documents', () => {
  it('validateDiscovery refuses with OidcPublisherError or returns a document renderDiscovery turns into JSON naming the public jwks_uri', () => {
    fc.assert(
      fc.property(discoveryText, (raw) => {
        let validated: ReturnType<typeof validateDiscovery>;
        try {
          validated = validateDiscovery(raw);
        } catch (err) {
          refusedOnly(err, 'validateDiscovery');
          return;
        }
        let body: Buffer;
        try {
          body = renderDiscovery(validated, PUBLIC_JWKS_URI);
        } catch (err) {
          assert.fail(`renderDiscovery threw on a validated document: ${String(err)}`);
        }
        const doc = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
        assert.equal(doc.issuer, validated.issuer);
        assert.equal(doc.jwks_uri, PUBLIC_JWKS_URI);
        assert.deepEqual(Object.keys(doc).slice(0, 2), ['issuer', 'jwks_uri']);
        assert.equal(
          renderDiscovery(validateDiscovery(body), PUBLIC_JWKS_URI).toString(),
          body.toString(),
          'rendering is a fixed point',
        );
      }),
      RUNS,
    );
  });

  it('prepare() never throws: it refuses, reports an issuer mismatch, or renders objects that are safe to publish', () => {
    const kinds = new Map<string, number>();
    fc.assert(
      fc.property(
        discoveryText,
        jwksText,
        previous,
        storedText,
        isoDate,
        (discovery, jwks, prev, body, now) => {
          let prep: ReturnType<typeof prepare>;
          const stored = body === undefined ? undefined : storedJwks(body, sha256Hex(body));
          try {
            prep = prepare(SPEC, { discovery, jwks }, { previous: prev, now: new Date(now), stored });
          } catch (err) {
            assert.fail(
              `prepare threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`,
            );
          }
          kinds.set(prep.kind, (kinds.get(prep.kind) ?? 0) + 1);
          if (prep.kind === 'invalid') {
            assert.ok(prep.error instanceof OidcPublisherError);
            assert.equal(prep.error.code, 'DOCUMENT_INVALID');
            return;
          }
          if (prep.kind === 'issuerMismatch') {
            assert.notEqual(prep.issuer, SPEC.issuerURL);
            return;
          }
          const [jwksObject, discoveryObject] = prep.objects;
          assert.equal(jwksObject?.role, 'jwks', 'the JWKS comes first');
          assert.equal(discoveryObject?.role, 'discovery');
          for (const o of prep.objects) {
            assert.equal(o.sha256, createHash('sha256').update(o.body).digest('hex'));
            assert.ok(o.body.toString('utf8').endsWith('\n'));
          }
          const d = JSON.parse(discoveryObject?.body.toString('utf8') ?? '') as Record<string, unknown>;
          assert.equal(d.issuer, SPEC.issuerURL);
          assert.equal(d.jwks_uri, SPEC.jwksURI);
          const text = jwksObject?.body.toString('utf8') ?? '';
          const set = JSON.parse(text) as { keys: Record<string, unknown>[] };
          assert.ok(set.keys.length >= 1, 'never an empty key set');
          assert.equal(new Set(set.keys.map((k) => k.kid)).size, set.keys.length, 'kids are unique');
          for (const k of set.keys) {
            for (const m of PRIVATE_MEMBERS) assert.ok(!(m in k), `no "${m}" in the published JWKS: ${text}`);
          }
          for (const r of prep.retention.records) {
            for (const m of PRIVATE_MEMBERS) {
              assert.ok(!(r.jwk && m in r.jwk), `no "${m}" in status.keys: ${JSON.stringify(r)}`);
            }
          }
          assert.deepEqual(
            validateJwks(text).map((k) => k.kid),
            set.keys.map((k) => k.kid),
            'what is published, retained keys included, validates again',
          );
          // A published key is served by the source, or taken from the stored JWKS: never from status alone.
          const storedKids = new Set(
            stored?.state === 'verified' ? stored.keys.map((k) => (k as { kid?: unknown } | null)?.kid) : [],
          );
          const sourceKids = new Set<unknown>(validateJwks(jwks).map((k) => k.kid));
          for (const k of set.keys)
            assert.ok(
              sourceKids.has(k.kid) || storedKids.has(k.kid),
              `${String(k.kid)} is in the source or the stored JWKS`,
            );
        },
      ),
      { numRuns: 800 },
    );
    assert.ok((kinds.get('ready') ?? 0) > 0, `the generators reach a publishable state: ${[...kinds]}`);
    assert.ok((kinds.get('invalid') ?? 0) > 0);
  });
});
