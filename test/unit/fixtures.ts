/**
 * Shared data for the unit tests: real key pairs made once per process, the
 * documents an API server serves, and a resolved spec. Pure data, no I/O.
 */
import { generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import type {
  ObjectMeta,
  OidcPublisher,
  OidcPublisherSpec,
  OidcPublisherStatus,
} from '../../src/api/types.ts';
import { renderJwks, sha256Hex, validateJwks } from '../../src/core/documents.ts';
import { type StoredJwks, storedJwks } from '../../src/core/keys.ts';
import type { RenderedObject } from '../../src/core/plan.ts';
import type { ResolvedSpec } from '../../src/core/spec.ts';
import type { Fetched, Observation } from '../../src/core/verify.ts';

export const ISSUER = 'https://issuer.example.com';
/** Where the API server says its JWKS lives: its private address. */
export const SOURCE_JWKS_URI = 'https://10.96.0.1:443/openid/v1/jwks';
export const PUBLIC_JWKS_URI = `${ISSUER}/openid/v1/jwks`;

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');

/** A JWK member map as it comes off the wire. */
export type JwkJson = Record<string, unknown>;

/** The public RSA key as the API server serves it. */
export const RSA_PUBLIC: JwkJson = {
  use: 'sig',
  kty: 'RSA',
  kid: 'rsa-1',
  alg: 'RS256',
  ...pick(rsa.publicKey.export({ format: 'jwk' }), ['n', 'e']),
};

/** The same RSA key with its private parameters (d, p, q, dp, dq, qi). */
export const RSA_PRIVATE: JwkJson = {
  ...RSA_PUBLIC,
  ...pick(rsa.privateKey.export({ format: 'jwk' }), ['d', 'p', 'q', 'dp', 'dq', 'qi']),
};

export const EC_PUBLIC: JwkJson = {
  kty: 'EC',
  kid: 'ec-1',
  alg: 'ES256',
  use: 'sig',
  ...pick(ec.publicKey.export({ format: 'jwk' }), ['crv', 'x', 'y']),
};

export const OKP_PUBLIC: JwkJson = {
  kty: 'OKP',
  kid: 'ed-1',
  alg: 'EdDSA',
  ...pick(ed.publicKey.export({ format: 'jwk' }), ['crv', 'x']),
};

function pick(jwk: JsonWebKey, fields: readonly string[]): JwkJson {
  return Object.fromEntries(fields.map((f) => [f, jwk[f]]));
}

export function jwksJson(keys: readonly unknown[]): string {
  return JSON.stringify({ keys });
}

/**
 * A JWKS the operator wrote to storage, read back with the SHA-256 recorded with it: where key
 * retention takes retired keys from. By default the three fixture keys.
 */
export function storedJwksOf(keys: readonly JwkJson[] = [RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC]): StoredJwks {
  const body = renderJwks(validateJwks(jwksJson(keys)));
  return storedJwks(body, sha256Hex(body));
}

/** The API server's /.well-known/openid-configuration, with `overrides` merged in. */
export function discoveryJson(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    issuer: ISSUER,
    jwks_uri: SOURCE_JWKS_URI,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
    ...overrides,
  });
}

export function resolvedSpec(overrides: Partial<ResolvedSpec> = {}): ResolvedSpec {
  return {
    issuerURL: ISSUER,
    jwksURI: PUBLIC_JWKS_URI,
    storage: { kind: 's3', bucket: 'oidc', region: 'eu-west-1', prefix: '', forcePathStyle: false },
    syncIntervalMs: 60_000,
    cacheControl: 'public, max-age=300',
    deletionPolicy: 'Retain',
    keyRetentionMs: 24 * 3_600_000,
    verification: { enabled: true, timeoutMs: 5000, slowMs: 2000 },
    ...overrides,
  };
}

export const PUBLISHER_NAME = 'cluster-issuer';
export const PUBLISHER_UID = 'uid-cluster-issuer';

/**
 * An OidcPublisher as the informer hands it over: publishing ISSUER to s3://oidc/ with every
 * other field defaulted, and `over` merged into its metadata and spec.
 */
export function samplePublisher(
  over: {
    metadata?: Partial<ObjectMeta>;
    spec?: Partial<OidcPublisherSpec>;
    status?: OidcPublisherStatus;
  } = {},
): OidcPublisher {
  return {
    apiVersion: 'oidcpublisher.io/v1alpha1',
    kind: 'OidcPublisher',
    metadata: {
      name: PUBLISHER_NAME,
      uid: PUBLISHER_UID,
      generation: 1,
      resourceVersion: '1',
      creationTimestamp: '2025-01-01T00:00:00Z',
      ...over.metadata,
    },
    spec: { issuerURL: ISSUER, storage: { s3: { bucket: 'oidc', region: 'eu-west-1' } }, ...over.spec },
    ...(over.status ? { status: over.status } : {}),
  };
}

/** A JSON value with every object's members in sorted order, as the API server returns a custom resource. */
export function sortedKeys<T>(value: T): T {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return sort(JSON.parse(JSON.stringify(value))) as T;
}

/**
 * What an anonymous reader sees when the public issuer serves exactly `objects`, as prepare()
 * rendered them: status 200, the published Content-Type, the sha256 and the parsed JSON of each body.
 */
export function servedAs(objects: readonly RenderedObject[], latencyMs = 120): Observation {
  const fetched = (role: RenderedObject['role']): Fetched => {
    const o = objects.find((x) => x.role === role);
    if (!o) throw new Error(`fixture: no ${role} object to serve`);
    return {
      url: o.url,
      status: 200,
      contentType: o.contentType,
      cacheControl: o.cacheControl,
      sha256: o.sha256,
      json: JSON.parse(o.body.toString('utf8')),
    };
  };
  return { discovery: fetched('discovery'), jwks: fetched('jwks'), latencyMs };
}
