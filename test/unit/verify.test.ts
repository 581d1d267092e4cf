import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Reason } from '../../src/api/conditions.ts';
import { type Preparation, prepare } from '../../src/core/plan.ts';
import { judge, type Observation, servedAsRendered } from '../../src/core/verify.ts';
import {
  discoveryJson,
  EC_PUBLIC,
  ISSUER,
  jwksJson,
  PUBLIC_JWKS_URI,
  RSA_PUBLIC,
  resolvedSpec,
  servedAs,
} from './fixtures.ts';

const NOW = new Date('2025-06-01T12:00:00Z');
const SPEC = resolvedSpec();
const SLOW_MS = SPEC.verification.slowMs;
const DISCOVERY_URL = `${ISSUER}/.well-known/openid-configuration`;

function ready(p: Preparation): Extract<Preparation, { kind: 'ready' }> {
  if (p.kind !== 'ready') throw new Error(`fixture: expected a ready preparation, got ${p.kind}`);
  return p;
}

/** What was just published: both keys. */
const PUBLISHED = ready(
  prepare(
    SPEC,
    { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC, EC_PUBLIC]) },
    { previous: undefined, now: NOW },
  ),
);
/** What the issuer served before a key was added: a stale JWKS, other bytes. */
const STALE_JWKS = ready(
  prepare(
    SPEC,
    { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC]) },
    { previous: undefined, now: NOW },
  ),
).objects[0]!;
/** A discovery document published with another jwks_uri: other bytes. */
const STALE_DISCOVERY = ready(
  prepare(
    resolvedSpec({ jwksURI: 'https://old.example.com/jwks' }),
    { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC, EC_PUBLIC]) },
    { previous: undefined, now: NOW },
  ),
).objects[1]!;

/** The issuer serves exactly what was published, in 120 ms. */
const good = (): Observation => servedAs(PUBLISHED.objects);

/** A regular expression matching `text` literally. */
const literal = (text: string): RegExp => new RegExp(text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));

describe('judge', () => {
  const cases: {
    name: string;
    seen: () => Observation;
    issuer?: string;
    expected: { status: string; reason: string; message: RegExp };
  }[] = [
    {
      name: 'verifies an issuer that serves exactly what was published',
      seen: good,
      expected: {
        status: 'True',
        reason: Reason.Verified,
        message: literal(`an anonymous reader of ${ISSUER} gets exactly the published documents`),
      },
    },
    {
      name: 'reports a discovery document that could not be fetched as NotReachable, naming the URL',
      seen: () => ({
        ...good(),
        discovery: { url: DISCOVERY_URL, error: 'connect ECONNREFUSED 192.0.2.1:443' },
        jwks: undefined,
      }),
      expected: {
        status: 'False',
        reason: Reason.NotReachable,
        message: literal(`GET ${DISCOVERY_URL}: connect ECONNREFUSED 192.0.2.1:443`),
      },
    },
    {
      name: 'reports a timed-out discovery read as NotReachable',
      seen: () => ({
        ...good(),
        discovery: { url: DISCOVERY_URL, error: 'timed out after 5000 ms' },
        jwks: undefined,
        latencyMs: 5000,
      }),
      expected: {
        status: 'False',
        reason: Reason.NotReachable,
        message: literal(`GET ${DISCOVERY_URL}: timed out after 5000 ms`),
      },
    },
    {
      name: 'reports a 403 on the discovery document as NotReachable, blaming anonymous access',
      seen: () => ({ ...good(), discovery: { url: DISCOVERY_URL, status: 403 }, jwks: undefined }),
      expected: {
        status: 'False',
        reason: Reason.NotReachable,
        message: literal(
          `GET ${DISCOVERY_URL}: HTTP 403: the bucket does not allow anonymous reads of this object`,
        ),
      },
    },
    {
      name: 'reports a 401 on the discovery document as NotReachable, blaming anonymous access',
      seen: () => ({ ...good(), discovery: { url: DISCOVERY_URL, status: 401 }, jwks: undefined }),
      expected: {
        status: 'False',
        reason: Reason.NotReachable,
        message: literal(`GET ${DISCOVERY_URL}: HTTP 401: the bucket does not allow anonymous reads`),
      },
    },
    {
      name: 'reports a 404 on the discovery document as NotReachable, saying where it was looked for',
      seen: () => ({ ...good(), discovery: { url: DISCOVERY_URL, status: 404 }, jwks: undefined }),
      expected: {
        status: 'False',
        reason: Reason.NotReachable,
        message: literal(
          `GET ${DISCOVERY_URL}: HTTP 404: the object is not where relying parties look for it`,
        ),
      },
    },
    {
      name: 'reports a 500 on the discovery document as NotReachable with the status',
      seen: () => ({
        ...good(),
        discovery: { ...good().discovery, status: 500, json: undefined },
        jwks: undefined,
      }),
      expected: {
        status: 'False',
        reason: Reason.NotReachable,
        message: new RegExp(`^${literal(`GET ${DISCOVERY_URL}: HTTP 500`).source}$`),
      },
    },
    {
      name: 'reports a redirect that was not followed as NotReachable',
      seen: () => ({ ...good(), discovery: { url: DISCOVERY_URL, status: 301 }, jwks: undefined }),
      expected: {
        status: 'False',
        reason: Reason.NotReachable,
        message: literal(`GET ${DISCOVERY_URL}: HTTP 301`),
      },
    },
    {
      name: 'reports a discovery document naming another issuer as IssuerMismatch, with both issuers',
      seen: () => {
        const o = good();
        return {
          ...o,
          discovery: {
            ...o.discovery,
            json: { ...(o.discovery.json as object), issuer: 'https://other.example' },
          },
        };
      },
      expected: {
        status: 'False',
        reason: Reason.IssuerMismatch,
        message: literal(
          `GET ${DISCOVERY_URL}: issuer is "https://other.example", relying parties require exactly "${ISSUER}"`,
        ),
      },
    },
    {
      name: 'reports an issuer that differs only by a trailing slash as IssuerMismatch',
      seen: () => {
        const o = good();
        return {
          ...o,
          discovery: { ...o.discovery, json: { ...(o.discovery.json as object), issuer: `${ISSUER}/` } },
        };
      },
      expected: {
        status: 'False',
        reason: Reason.IssuerMismatch,
        message: literal(`issuer is "${ISSUER}/", relying parties require exactly "${ISSUER}"`),
      },
    },
    {
      name: 'reports a spec issuer with a trailing slash against a served one without as IssuerMismatch',
      issuer: `${ISSUER}/`,
      seen: good,
      expected: {
        status: 'False',
        reason: Reason.IssuerMismatch,
        message: literal(`issuer is "${ISSUER}", relying parties require exactly "${ISSUER}/"`),
      },
    },
    {
      name: 'reports a discovery document without an issuer as IssuerMismatch',
      seen: () => ({ ...good(), discovery: { ...good().discovery, json: { jwks_uri: PUBLIC_JWKS_URI } } }),
      expected: {
        status: 'False',
        reason: Reason.IssuerMismatch,
        message: literal(`relying parties require exactly "${ISSUER}"`),
      },
    },
    {
      name: 'reports a discovery body that is not JSON as ContentMismatch',
      seen: () => ({
        ...good(),
        discovery: { ...good().discovery, contentType: 'text/html', sha256: 'f'.repeat(64), json: undefined },
        jwks: undefined,
      }),
      expected: {
        status: 'False',
        reason: Reason.ContentMismatch,
        message: literal(`GET ${DISCOVERY_URL}: not a JSON object`),
      },
    },
    {
      name: 'reports a discovery document with other bytes as ContentMismatch, naming its URL and hash',
      seen: () => ({ ...good(), discovery: { ...good().discovery, sha256: STALE_DISCOVERY.sha256 } }),
      expected: {
        status: 'False',
        reason: Reason.ContentMismatch,
        message: new RegExp(
          `^${literal(`${DISCOVERY_URL} serves other bytes than were published (sha256 ${STALE_DISCOVERY.sha256}); the next sync rewrites both objects`).source}`,
        ),
      },
    },
    {
      name: 'reports a JWKS with other bytes (a stale key set) as ContentMismatch, naming its URL and hash',
      seen: () => ({
        ...good(),
        jwks: { ...good().jwks!, sha256: STALE_JWKS.sha256, json: JSON.parse(STALE_JWKS.body.toString()) },
      }),
      expected: {
        status: 'False',
        reason: Reason.ContentMismatch,
        message: new RegExp(
          `^${literal(`${PUBLIC_JWKS_URI} serves other bytes than were published (sha256 ${STALE_JWKS.sha256}); the next sync`).source}`,
        ),
      },
    },
    {
      name: 'names both URLs when both documents carry other bytes',
      seen: () => ({
        ...good(),
        discovery: { ...good().discovery, sha256: STALE_DISCOVERY.sha256 },
        jwks: { ...good().jwks!, sha256: STALE_JWKS.sha256 },
      }),
      expected: {
        status: 'False',
        reason: Reason.ContentMismatch,
        message: literal(
          `${DISCOVERY_URL} serves other bytes than were published (sha256 ${STALE_DISCOVERY.sha256}); ${PUBLIC_JWKS_URI} serves other bytes`,
        ),
      },
    },
    {
      name: 'reports a discovery document without a jwks_uri to follow as ContentMismatch',
      seen: () => ({ ...good(), jwks: undefined }),
      expected: {
        status: 'False',
        reason: Reason.ContentMismatch,
        message: literal(`${DISCOVERY_URL} names no jwks_uri`),
      },
    },
    {
      name: 'reports a JWKS that could not be fetched as NotReachable, naming its URL',
      seen: () => ({ ...good(), jwks: { url: PUBLIC_JWKS_URI, error: 'getaddrinfo ENOTFOUND' } }),
      expected: {
        status: 'False',
        reason: Reason.NotReachable,
        message: literal(`GET ${PUBLIC_JWKS_URI}: getaddrinfo ENOTFOUND`),
      },
    },
    {
      name: 'reports a 403 on the JWKS as NotReachable, naming its URL and status',
      seen: () => ({ ...good(), jwks: { url: PUBLIC_JWKS_URI, status: 403 } }),
      expected: {
        status: 'False',
        reason: Reason.NotReachable,
        message: literal(`GET ${PUBLIC_JWKS_URI}: HTTP 403: the bucket does not allow anonymous reads`),
      },
    },
    {
      name: 'reports a 404 on the JWKS as NotReachable, naming its URL and status',
      seen: () => ({ ...good(), jwks: { url: PUBLIC_JWKS_URI, status: 404 } }),
      expected: {
        status: 'False',
        reason: Reason.NotReachable,
        message: literal(
          `GET ${PUBLIC_JWKS_URI}: HTTP 404: the object is not where relying parties look for it`,
        ),
      },
    },
    {
      name: 'reports a discovery document served with another Content-Type as WrongContentType',
      seen: () => ({ ...good(), discovery: { ...good().discovery, contentType: 'binary/octet-stream' } }),
      expected: {
        status: 'False',
        reason: Reason.WrongContentType,
        message: literal(`${DISCOVERY_URL} is served as "binary/octet-stream", not application/json`),
      },
    },
    {
      name: 'reports a JWKS served as application/json as WrongContentType',
      seen: () => ({ ...good(), jwks: { ...good().jwks!, contentType: 'application/json' } }),
      expected: {
        status: 'False',
        reason: Reason.WrongContentType,
        message: literal(`${PUBLIC_JWKS_URI} is served as "application/json", not application/jwk-set+json`),
      },
    },
    {
      name: 'reports a document served without a Content-Type as WrongContentType',
      seen: () => ({ ...good(), jwks: { ...good().jwks!, contentType: undefined } }),
      expected: {
        status: 'False',
        reason: Reason.WrongContentType,
        message: literal(`${PUBLIC_JWKS_URI} is served as "", not application/jwk-set+json`),
      },
    },
    {
      name: 'names both documents when both have the wrong Content-Type',
      seen: () => ({
        ...good(),
        discovery: { ...good().discovery, contentType: 'text/plain' },
        jwks: { ...good().jwks!, contentType: 'text/plain' },
      }),
      expected: {
        status: 'False',
        reason: Reason.WrongContentType,
        message: literal(
          `${DISCOVERY_URL} is served as "text/plain", not application/json; ${PUBLIC_JWKS_URI} is served as "text/plain"`,
        ),
      },
    },
    {
      name: 'accepts a charset parameter on the Content-Type',
      seen: () => ({
        ...good(),
        discovery: { ...good().discovery, contentType: 'application/json; charset=utf-8' },
        jwks: { ...good().jwks!, contentType: 'application/jwk-set+json;charset=UTF-8' },
      }),
      expected: { status: 'True', reason: Reason.Verified, message: /exactly the published documents/ },
    },
    {
      name: 'accepts a Content-Type in another letter case',
      seen: () => ({ ...good(), discovery: { ...good().discovery, contentType: 'Application/JSON' } }),
      expected: { status: 'True', reason: Reason.Verified, message: /exactly the published documents/ },
    },
    {
      name: 'reports a correct answer slower than slowThreshold as TooSlow, with the latency',
      seen: () => servedAs(PUBLISHED.objects, SLOW_MS + 1),
      expected: {
        status: 'False',
        reason: Reason.TooSlow,
        message: literal(`took ${SLOW_MS + 1} ms (more than ${SLOW_MS} ms`),
      },
    },
    {
      name: 'accepts a latency of exactly slowThreshold',
      seen: () => servedAs(PUBLISHED.objects, SLOW_MS),
      expected: { status: 'True', reason: Reason.Verified, message: /exactly the published documents/ },
    },
    {
      name: 'accepts a latency that rounds to slowThreshold',
      seen: () => servedAs(PUBLISHED.objects, SLOW_MS + 0.4),
      expected: { status: 'True', reason: Reason.Verified, message: /exactly the published documents/ },
    },
    {
      name: 'reports unreachability before other bytes and slowness',
      seen: () => ({
        discovery: { ...good().discovery, sha256: STALE_DISCOVERY.sha256 },
        jwks: { url: PUBLIC_JWKS_URI, status: 403 },
        latencyMs: 10 * SLOW_MS,
      }),
      expected: { status: 'False', reason: Reason.NotReachable, message: /HTTP 403/ },
    },
    {
      name: 'reports other bytes before a wrong Content-Type and slowness',
      seen: () => ({
        discovery: { ...good().discovery, contentType: 'text/plain' },
        jwks: { ...good().jwks!, sha256: STALE_JWKS.sha256 },
        latencyMs: 10 * SLOW_MS,
      }),
      expected: { status: 'False', reason: Reason.ContentMismatch, message: /serves other bytes/ },
    },
    {
      name: 'reports a wrong Content-Type before slowness',
      seen: () => ({
        ...good(),
        jwks: { ...good().jwks!, contentType: 'text/plain' },
        latencyMs: 10 * SLOW_MS,
      }),
      expected: { status: 'False', reason: Reason.WrongContentType, message: /text\/plain/ },
    },
  ];

  for (const { name, seen, issuer, expected } of cases) {
    it(name, () => {
      const got = judge(issuer ?? ISSUER, PUBLISHED.objects, seen(), SLOW_MS);
      const summary = `${got.status}/${got.reason}`;
      assert.equal(
        summary,
        `${expected.status}/${expected.reason}`,
        `expected ${expected.status}/${expected.reason}, got ${summary}: ${got.message}`,
      );
      assert.match(got.message, expected.message);
    });
  }

  it('compares against the hashes of the bodies prepare() rendered', () => {
    const seen = good();
    const [jwks, discovery] = PUBLISHED.objects;
    assert.equal(seen.jwks?.sha256, jwks?.sha256);
    assert.equal(seen.discovery.sha256, discovery?.sha256);
    assert.notEqual(STALE_JWKS.sha256, jwks?.sha256, 'expected the stale JWKS to differ');
    assert.notEqual(STALE_DISCOVERY.sha256, discovery?.sha256, 'expected the stale discovery to differ');
  });
});

describe('servedAsRendered: whether a sync can skip the HEADs and writes', () => {
  const served = servedAs(PUBLISHED.objects);
  const cases: { name: string; seen: Observation; expected: boolean }[] = [
    {
      name: 'skips when both objects are served with the published bytes and headers',
      seen: served,
      expected: true,
    },
    {
      name: 'does not skip when the JWKS bytes differ (a key was added)',
      seen: { ...served, jwks: { ...(served.jwks ?? served.discovery), sha256: STALE_JWKS.sha256 } },
      expected: false,
    },
    {
      name: 'does not skip when Cache-Control differs (spec.cacheControl changed)',
      seen: { ...served, discovery: { ...served.discovery, cacheControl: 'no-store' } },
      expected: false,
    },
    {
      name: 'does not skip when the Content-Type differs',
      seen: { ...served, jwks: { ...(served.jwks ?? served.discovery), contentType: 'application/json' } },
      expected: false,
    },
    {
      name: 'does not skip when the JWKS was not read',
      seen: { discovery: served.discovery, latencyMs: 10 },
      expected: false,
    },
    {
      name: 'does not skip when the discovery document answered 404',
      seen: { ...served, discovery: { ...served.discovery, status: 404 } },
      expected: false,
    },
    {
      name: 'does not skip when the jwks_uri read is not the published JWKS object',
      seen: {
        ...served,
        jwks: { ...(served.jwks ?? served.discovery), url: 'https://elsewhere.example.com/jwks' },
      },
      expected: false,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(servedAsRendered(PUBLISHED.objects, c.seen), c.expected);
    });
  }
  it('does not skip when the public URLs do not address the storage keys (published under another prefix)', () => {
    const elsewhere = ready(
      prepare(
        resolvedSpec({
          storage: {
            kind: 's3',
            bucket: 'oidc',
            region: 'eu-west-1',
            prefix: 'other',
            forcePathStyle: false,
          },
        }),
        { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC, EC_PUBLIC]) },
        { previous: undefined, now: NOW },
      ),
    );
    assert.equal(servedAsRendered(elsewhere.objects, served), false);
  });
});
