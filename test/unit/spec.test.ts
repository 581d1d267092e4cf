import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OidcPublisherSpec } from '../../src/api/types.ts';
import {
  issuerBase,
  objectKey,
  type ResolvedSpec,
  resolveSpec,
  type StorageTarget,
  storageURL,
} from '../../src/core/spec.ts';
import { OidcPublisherError } from '../../src/errors.ts';

const ISSUER = 'https://issuer.example.com';
const S3 = { bucket: 'oidc', region: 'eu-west-1' };

/** A spec as the informer hands it over: JSON the schema vouched for, or not. */
function untyped(value: unknown): OidcPublisherSpec {
  return value as OidcPublisherSpec;
}

describe('resolveSpec', () => {
  const cases: { name: string; input: OidcPublisherSpec; expected: ResolvedSpec }[] = [
    {
      name: 'applies every default to a minimal S3 spec',
      input: { issuerURL: ISSUER, storage: { s3: S3 } },
      expected: {
        issuerURL: ISSUER,
        jwksURI: `${ISSUER}/openid/v1/jwks`,
        storage: { kind: 's3', bucket: 'oidc', region: 'eu-west-1', prefix: '', forcePathStyle: false },
        syncIntervalMs: 60_000,
        cacheControl: 'public, max-age=300',
        deletionPolicy: 'Retain',
      },
    },
    {
      name: 'derives jwksURI without a double slash from an issuer with a trailing slash',
      input: { issuerURL: `${ISSUER}/`, storage: { s3: S3 } },
      expected: {
        issuerURL: `${ISSUER}/`,
        jwksURI: `${ISSUER}/openid/v1/jwks`,
        storage: { kind: 's3', bucket: 'oidc', region: 'eu-west-1', prefix: '', forcePathStyle: false },
        syncIntervalMs: 60_000,
        cacheControl: 'public, max-age=300',
        deletionPolicy: 'Retain',
      },
    },
    {
      name: 'keeps every explicit S3 value',
      input: {
        issuerURL: ISSUER,
        jwksURI: 'https://keys.example.com/jwks',
        source: { kubeconfigSecretRef: { name: 'remote', key: 'config' } },
        storage: {
          s3: {
            ...S3,
            prefix: 'a/b',
            endpoint: 'https://minio.example.com',
            forcePathStyle: true,
            credentialsSecretRef: { name: 'aws' },
          },
        },
        syncInterval: '1m30s',
        cacheControl: 'no-cache',
        deletionPolicy: 'Delete',
      },
      expected: {
        issuerURL: ISSUER,
        jwksURI: 'https://keys.example.com/jwks',
        kubeconfigSecret: { name: 'remote', key: 'config' },
        storage: {
          kind: 's3',
          bucket: 'oidc',
          region: 'eu-west-1',
          prefix: 'a/b',
          endpoint: 'https://minio.example.com',
          forcePathStyle: true,
          credentialsSecret: 'aws',
        },
        syncIntervalMs: 90_000,
        cacheControl: 'no-cache',
        deletionPolicy: 'Delete',
      },
    },
    {
      name: 'defaults the kubeconfig Secret key to "kubeconfig"',
      input: { issuerURL: ISSUER, source: { kubeconfigSecretRef: { name: 'remote' } }, storage: { s3: S3 } },
      expected: {
        issuerURL: ISSUER,
        jwksURI: `${ISSUER}/openid/v1/jwks`,
        kubeconfigSecret: { name: 'remote', key: 'kubeconfig' },
        storage: { kind: 's3', bucket: 'oidc', region: 'eu-west-1', prefix: '', forcePathStyle: false },
        syncIntervalMs: 60_000,
        cacheControl: 'public, max-age=300',
        deletionPolicy: 'Retain',
      },
    },
    {
      name: 'resolves GCS and defaults its credentials key to "credentials.json"',
      input: {
        issuerURL: ISSUER,
        storage: { gcs: { bucket: 'g', prefix: 'p', credentialsSecretRef: { name: 'gcp' } } },
        syncInterval: '10s',
      },
      expected: {
        issuerURL: ISSUER,
        jwksURI: `${ISSUER}/openid/v1/jwks`,
        storage: {
          kind: 'gcs',
          bucket: 'g',
          prefix: 'p',
          credentialsSecret: { name: 'gcp', key: 'credentials.json' },
        },
        syncIntervalMs: 10_000,
        cacheControl: 'public, max-age=300',
        deletionPolicy: 'Retain',
      },
    },
    {
      name: 'keeps a GCS endpoint and explicit credentials key',
      input: {
        issuerURL: ISSUER,
        storage: {
          gcs: {
            bucket: 'g',
            endpoint: 'http://fake-gcs:4443',
            credentialsSecretRef: { name: 'gcp', key: 'k' },
          },
        },
      },
      expected: {
        issuerURL: ISSUER,
        jwksURI: `${ISSUER}/openid/v1/jwks`,
        storage: {
          kind: 'gcs',
          bucket: 'g',
          prefix: '',
          endpoint: 'http://fake-gcs:4443',
          credentialsSecret: { name: 'gcp', key: 'k' },
        },
        syncIntervalMs: 60_000,
        cacheControl: 'public, max-age=300',
        deletionPolicy: 'Retain',
      },
    },
  ];
  for (const { name, input, expected } of cases) {
    it(name, () => {
      const got = resolveSpec(input);
      assert.deepEqual(got, expected, `expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
    });
  }

  const refused: { name: string; input: OidcPublisherSpec; expected: RegExp }[] = [
    {
      name: 'refuses a syncInterval under 10s',
      input: { issuerURL: ISSUER, storage: { s3: S3 }, syncInterval: '9s' },
      expected: /syncInterval "9s" is not a duration of at least 10s/,
    },
    {
      name: 'refuses a syncInterval that is not a duration',
      input: { issuerURL: ISSUER, storage: { s3: S3 }, syncInterval: '1 minute' },
      expected: /syncInterval "1 minute"/,
    },
    {
      name: 'refuses an http issuerURL',
      input: { issuerURL: 'http://issuer.example.com', storage: { s3: S3 } },
      expected: /issuerURL must be an https URL/,
    },
    {
      name: 'refuses a missing issuerURL',
      input: untyped({ storage: { s3: S3 } }),
      expected: /issuerURL must be an https URL/,
    },
    {
      name: 'refuses storage with both s3 and gcs',
      input: { issuerURL: ISSUER, storage: { s3: S3, gcs: { bucket: 'g' } } },
      expected: /exactly one of s3 or gcs/,
    },
    {
      name: 'refuses storage with neither s3 nor gcs',
      input: { issuerURL: ISSUER, storage: {} },
      expected: /exactly one of s3 or gcs/,
    },
    {
      name: 'refuses a spec without storage',
      input: untyped({ issuerURL: ISSUER }),
      expected: /exactly one of s3 or gcs/,
    },
  ];
  for (const { name, input, expected } of refused) {
    it(name, () => {
      assert.throws(
        () => resolveSpec(input),
        (err: unknown) => {
          assert.ok(err instanceof OidcPublisherError, `expected an OidcPublisherError, got ${String(err)}`);
          assert.equal(err.code, 'SPEC_INVALID', `expected SPEC_INVALID, got ${err.code}`);
          assert.equal(err.retry, 'terminal', `expected an invalid spec to be terminal, got ${err.retry}`);
          assert.match(err.message, expected);
          return true;
        },
      );
    });
  }
});

describe('objectKey', () => {
  const cases: { name: string; input: [string, string]; expected: string }[] = [
    {
      name: 'uses the path alone when there is no prefix',
      input: ['', 'openid/v1/jwks'],
      expected: 'openid/v1/jwks',
    },
    {
      name: 'joins prefix and path with one slash',
      input: ['a/b', 'openid/v1/jwks'],
      expected: 'a/b/openid/v1/jwks',
    },
    {
      name: 'drops a trailing slash of the prefix',
      input: ['a/', 'openid/v1/jwks'],
      expected: 'a/openid/v1/jwks',
    },
    { name: 'drops several trailing slashes', input: ['a///', 'x'], expected: 'a/x' },
    { name: 'treats a prefix of only slashes as none', input: ['/', 'x'], expected: 'x' },
  ];
  for (const { name, input, expected } of cases) {
    it(name, () => {
      const got = objectKey(...input);
      assert.equal(got, expected, `expected ${expected}, got ${got}`);
    });
  }
});

describe('storageURL', () => {
  const cases: { name: string; input: StorageTarget; expected: string }[] = [
    {
      name: 'names an S3 target s3://bucket/prefix',
      input: { kind: 's3', bucket: 'b', region: 'r', prefix: 'p/', forcePathStyle: false },
      expected: 's3://b/p',
    },
    {
      name: 'names a GCS target gs://bucket/prefix',
      input: { kind: 'gcs', bucket: 'b', prefix: 'x/y' },
      expected: 'gs://b/x/y',
    },
    {
      name: 'ends with a slash when there is no prefix',
      input: { kind: 'gcs', bucket: 'b', prefix: '' },
      expected: 'gs://b/',
    },
  ];
  for (const { name, input, expected } of cases) {
    it(name, () => {
      const got = storageURL(input);
      assert.equal(got, expected, `expected ${expected}, got ${got}`);
    });
  }
});

describe('issuerBase', () => {
  it('removes one trailing slash and leaves other issuers alone', () => {
    assert.equal(issuerBase(`${ISSUER}/`), ISSUER);
    assert.equal(issuerBase(ISSUER), ISSUER);
    assert.equal(issuerBase(`${ISSUER}/path`), `${ISSUER}/path`);
  });
});
