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
const AZURE_URL = 'https://acct.blob.core.windows.net';

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
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: true, timeoutMs: 5000, slowMs: 2000 },
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
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: true, timeoutMs: 5000, slowMs: 2000 },
      },
    },
    {
      name: 'keeps every explicit S3 value',
      input: {
        issuerURL: ISSUER,
        jwksURI: `${ISSUER}/keys/jwks`,
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
        keyRetention: '1h30m',
        verification: { enabled: false, timeout: '10s', slowThreshold: '3s' },
      },
      expected: {
        issuerURL: ISSUER,
        jwksURI: `${ISSUER}/keys/jwks`,
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
        keyRetentionMs: 90 * 60_000,
        verification: { enabled: false, timeoutMs: 10_000, slowMs: 3000 },
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
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: true, timeoutMs: 5000, slowMs: 2000 },
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
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: true, timeoutMs: 5000, slowMs: 2000 },
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
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: true, timeoutMs: 5000, slowMs: 2000 },
      },
    },
    {
      name: 'resolves azureBlob, names its account and defaults its credentials key to "connectionString"',
      input: {
        issuerURL: ISSUER,
        storage: {
          azureBlob: {
            accountURL: `${AZURE_URL}/`,
            container: 'oidc',
            prefix: 'clusters/a',
            credentialsSecretRef: { name: 'azure' },
          },
        },
      },
      expected: {
        issuerURL: ISSUER,
        jwksURI: `${ISSUER}/openid/v1/jwks`,
        storage: {
          kind: 'azureBlob',
          accountURL: AZURE_URL,
          account: 'acct',
          container: 'oidc',
          prefix: 'clusters/a',
          credentialsSecret: { name: 'azure', key: 'connectionString' },
        },
        syncIntervalMs: 60_000,
        cacheControl: 'public, max-age=300',
        deletionPolicy: 'Retain',
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: true, timeoutMs: 5000, slowMs: 2000 },
      },
    },
    {
      name: 'takes the account of an emulator URL from its path and leaves credentials to DefaultAzureCredential',
      input: {
        issuerURL: ISSUER,
        storage: { azureBlob: { accountURL: 'https://127.0.0.1:10000/devstoreaccount1', container: 'c1c' } },
      },
      expected: {
        issuerURL: ISSUER,
        jwksURI: `${ISSUER}/openid/v1/jwks`,
        storage: {
          kind: 'azureBlob',
          accountURL: 'https://127.0.0.1:10000/devstoreaccount1',
          account: 'devstoreaccount1',
          container: 'c1c',
          prefix: '',
        },
        syncIntervalMs: 60_000,
        cacheControl: 'public, max-age=300',
        deletionPolicy: 'Retain',
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: true, timeoutMs: 5000, slowMs: 2000 },
      },
    },
  ];
  for (const { name, input, expected } of cases) {
    it(name, () => {
      const got = resolveSpec(input);
      assert.deepEqual(got, expected, `expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
    });
  }

  /** Only keyRetention and verification, resolved from a minimal S3 spec plus `extra`. */
  const retentionAndVerification: {
    name: string;
    extra: Partial<OidcPublisherSpec>;
    expected: Pick<ResolvedSpec, 'keyRetentionMs' | 'verification'>;
  }[] = [
    {
      name: 'keeps a keyRetention of 0s: retired keys leave at once',
      extra: { keyRetention: '0s' },
      expected: { keyRetentionMs: 0, verification: { enabled: true, timeoutMs: 5000, slowMs: 2000 } },
    },
    {
      name: 'accepts the longest keyRetention the schema allows',
      extra: { keyRetention: '8760h' },
      expected: {
        keyRetentionMs: 8760 * 3_600_000,
        verification: { enabled: true, timeoutMs: 5000, slowMs: 2000 },
      },
    },
    {
      name: 'defaults the timeout and slowThreshold when verification only sets enabled',
      extra: { verification: { enabled: false } },
      expected: {
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: false, timeoutMs: 5000, slowMs: 2000 },
      },
    },
    {
      name: 'defaults enabled to true and slowThreshold to 2s when verification only sets a timeout',
      extra: { verification: { timeout: '10s' } },
      expected: {
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: true, timeoutMs: 10_000, slowMs: 2000 },
      },
    },
    {
      name: 'defaults the timeout to 5s when verification only sets a slowThreshold',
      extra: { verification: { slowThreshold: '500ms' } },
      expected: {
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: true, timeoutMs: 5000, slowMs: 500 },
      },
    },
    {
      name: 'accepts a slowThreshold equal to the timeout',
      extra: { verification: { timeout: '3s', slowThreshold: '3s' } },
      expected: {
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: true, timeoutMs: 3000, slowMs: 3000 },
      },
    },
    {
      name: 'accepts the shortest timeout, 1s, with a slowThreshold under it',
      extra: { verification: { timeout: '1s', slowThreshold: '800ms' } },
      expected: {
        keyRetentionMs: 24 * 3_600_000,
        verification: { enabled: true, timeoutMs: 1000, slowMs: 800 },
      },
    },
  ];
  for (const { name, extra, expected } of retentionAndVerification) {
    it(name, () => {
      const { keyRetentionMs, verification } = resolveSpec({
        issuerURL: ISSUER,
        storage: { s3: S3 },
        ...extra,
      });
      const got = { keyRetentionMs, verification };
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
      expected: /exactly one of s3, gcs or azureBlob/,
    },
    {
      name: 'refuses storage with neither s3 nor gcs',
      input: { issuerURL: ISSUER, storage: {} },
      expected: /exactly one of s3, gcs or azureBlob/,
    },
    {
      name: 'refuses a spec without storage',
      input: untyped({ issuerURL: ISSUER }),
      expected: /exactly one of s3, gcs or azureBlob/,
    },
    {
      name: 'refuses storage with both gcs and azureBlob',
      input: {
        issuerURL: ISSUER,
        storage: { gcs: { bucket: 'g' }, azureBlob: { accountURL: AZURE_URL, container: 'oidc' } },
      },
      expected: /exactly one of s3, gcs or azureBlob/,
    },
    {
      name: 'refuses an azureBlob accountURL with a query (a SAS token belongs in the Secret)',
      input: {
        issuerURL: ISSUER,
        storage: { azureBlob: { accountURL: `${AZURE_URL}?sv=2024&sig=x`, container: 'oidc' } },
      },
      expected: /accountURL must be an http or https URL without a query or fragment/,
    },
    {
      name: 'refuses a keyRetention that is not a duration',
      input: { issuerURL: ISSUER, storage: { s3: S3 }, keyRetention: '1 day' },
      expected: /^keyRetention "1 day" is not a duration$/,
    },
    {
      name: 'refuses a negative keyRetention',
      input: { issuerURL: ISSUER, storage: { s3: S3 }, keyRetention: '-1h' },
      expected: /^keyRetention "-1h" is not a duration$/,
    },
    {
      name: 'refuses an empty keyRetention',
      input: { issuerURL: ISSUER, storage: { s3: S3 }, keyRetention: '' },
      expected: /^keyRetention "" is not a duration$/,
    },
    {
      name: 'refuses a verification timeout under 1s',
      input: {
        issuerURL: ISSUER,
        storage: { s3: S3 },
        verification: { timeout: '500ms', slowThreshold: '100ms' },
      },
      expected: /^verification\.timeout "500ms" is not a duration of at least 1s$/,
    },
    {
      name: 'refuses a verification timeout that is not a duration',
      input: { issuerURL: ISSUER, storage: { s3: S3 }, verification: { timeout: 'soon' } },
      expected: /^verification\.timeout "soon" is not a duration of at least 1s$/,
    },
    {
      name: 'refuses a slowThreshold above the default timeout',
      input: { issuerURL: ISSUER, storage: { s3: S3 }, verification: { slowThreshold: '6s' } },
      expected: /^verification\.slowThreshold "6s" is not a duration up to verification\.timeout$/,
    },
    {
      name: 'refuses a slowThreshold above an explicit timeout',
      input: {
        issuerURL: ISSUER,
        storage: { s3: S3 },
        verification: { timeout: '3s', slowThreshold: '3001ms' },
      },
      expected: /^verification\.slowThreshold "3001ms" is not a duration up to verification\.timeout$/,
    },
    {
      name: 'refuses a slowThreshold that is not a duration',
      input: { issuerURL: ISSUER, storage: { s3: S3 }, verification: { slowThreshold: 'fast' } },
      expected: /^verification\.slowThreshold "fast" is not a duration up to verification\.timeout$/,
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

describe('resolveSpec: jwksURI under the issuer URL', () => {
  const spec = (issuerURL: string, jwksURI: string): OidcPublisherSpec => ({
    issuerURL,
    jwksURI,
    storage: { s3: S3 },
  });
  const table: [string, string, string, boolean][] = [
    ['the same origin, another path', ISSUER, `${ISSUER}/keys.json`, true],
    [
      'a path-style bucket issuer and its JWKS',
      'https://s3.example.com/b/p',
      'https://s3.example.com/b/p/openid/v1/jwks',
      true,
    ],
    ['the default port spelled out', ISSUER, 'https://issuer.example.com:443/jwks', true],
    ['the host in another case', ISSUER, 'https://ISSUER.example.com/jwks', true],
    ['another host', ISSUER, 'https://keys.example.com/jwks', false],
    ['a sub-domain of the issuer host', ISSUER, 'https://keys.issuer.example.com/jwks', false],
    ['another port', ISSUER, 'https://issuer.example.com:8443/jwks', false],
    ['user info naming the issuer host', ISSUER, 'https://issuer.example.com@evil.example/jwks', false],
    ['plain http on the same host', ISSUER, 'http://issuer.example.com/jwks', false],
    [
      "another owner's bucket on a path-style host",
      'https://storage.googleapis.com/victim-oidc/clusters/prod',
      'https://storage.googleapis.com/attacker-bucket/jwks.json',
      false,
    ],
    [
      'another bucket on an S3 regional host',
      'https://s3.eu-west-1.amazonaws.com/victim-oidc',
      'https://s3.eu-west-1.amazonaws.com/victim-oidc-evil/openid/v1/jwks',
      false,
    ],
    [
      'another container of the same Azure account',
      'https://acct.blob.core.windows.net/oidc/prod',
      'https://acct.blob.core.windows.net/attacker/jwks',
      false,
    ],
    [
      'a path climbing out of the issuer',
      'https://storage.googleapis.com/victim-oidc/clusters/prod',
      'https://storage.googleapis.com/victim-oidc/clusters/prod/../../../attacker/jwks',
      false,
    ],
    ['the issuer URL itself', 'https://s3.example.com/b/p', 'https://s3.example.com/b/p', false],
    ['user info on the issuer host', ISSUER, 'https://u:p@issuer.example.com/jwks', false],
  ];
  for (const [name, issuer, jwksURI, accepted] of table) {
    it(`${name}: ${accepted ? 'accepted' : 'refused as SPEC_INVALID'}`, () => {
      if (accepted) {
        assert.equal(resolveSpec(spec(issuer, jwksURI)).jwksURI, jwksURI);
        return;
      }
      assert.throws(
        () => resolveSpec(spec(issuer, jwksURI)),
        (err: unknown) =>
          err instanceof OidcPublisherError &&
          err.code === 'SPEC_INVALID' &&
          /jwksURI|https/.test(err.message),
      );
    });
  }

  it('says which URL it wanted and which flag allows others', () => {
    assert.throws(() => resolveSpec(spec(ISSUER, 'https://keys.example.com/jwks')), {
      code: 'SPEC_INVALID',
      message: `jwksURI "https://keys.example.com/jwks" is not under the issuer URL ${JSON.stringify(ISSUER)} (scheme, host and port must match and its path must be below the issuer's); the operator's --allow-foreign-jwks-uri flag allows others`,
    });
  });

  it('accepts another https origin with --allow-foreign-jwks-uri, never plain http', () => {
    const policy = { allowForeignJwksURI: true };
    assert.equal(
      resolveSpec(spec(ISSUER, 'https://keys.example.com/jwks'), policy).jwksURI,
      'https://keys.example.com/jwks',
    );
    assert.throws(() => resolveSpec(spec(ISSUER, 'http://keys.example.com/jwks'), policy), {
      code: 'SPEC_INVALID',
    });
    assert.throws(() => resolveSpec(spec(ISSUER, 'https://u:p@keys.example.com/jwks'), policy), {
      code: 'SPEC_INVALID',
      message: 'jwksURI must not carry a user name or password',
    });
  });
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
    {
      name: 'names an Azure Blob target azblob://account/container/prefix',
      input: {
        kind: 'azureBlob',
        accountURL: AZURE_URL,
        account: 'acct',
        container: 'oidc',
        prefix: 'clusters/a/',
      },
      expected: 'azblob://acct/oidc/clusters/a',
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

describe('resolveSpec: storage URLs name a target one way only', () => {
  const s3 = (endpoint: string): OidcPublisherSpec => ({
    issuerURL: ISSUER,
    storage: { s3: { bucket: 'x', region: 'eu-west-1', endpoint } },
  });
  const azure = (accountURL: string): OidcPublisherSpec => ({
    issuerURL: ISSUER,
    storage: { azureBlob: { accountURL, container: 'prod' } },
  });
  const table: [string, OidcPublisherSpec, boolean][] = [
    ['an S3 endpoint with a host and port', s3('https://minio.example.com:9000'), true],
    ['an S3 endpoint with a trailing slash', s3('https://minio.example.com/'), true],
    [
      'an S3 endpoint whose path names another bucket',
      s3('https://s3.eu-west-1.amazonaws.com/victim-oidc'),
      false,
    ],
    // On AWS's names only S3's service hosts: a bucket in the host is where every request goes.
    ['the S3 regional endpoint', s3('https://s3.eu-west-1.amazonaws.com'), true],
    ['the S3 dualstack endpoint', s3('https://s3.dualstack.eu-west-1.amazonaws.com'), true],
    ['the S3 FIPS endpoint', s3('https://s3-fips.us-gov-west-1.amazonaws.com'), true],
    ['the S3 China endpoint, upper case, trailing dot', s3('https://S3.CN-NORTH-1.AMAZONAWS.COM.CN.'), true],
    [
      'an S3 endpoint naming another bucket in its host',
      s3('https://victim-bucket.s3.us-east-1.amazonaws.com'),
      false,
    ],
    ['… in upper case', s3('https://VICTIM-BUCKET.S3.US-EAST-1.AMAZONAWS.COM'), false],
    ['… with a trailing dot', s3('https://victim-bucket.s3.us-east-1.amazonaws.com.'), false],
    ['… with two trailing dots', s3('https://victim-bucket.s3.us-east-1.amazonaws.com..'), false],
    ['… with a dotted bucket', s3('https://victim.bucket.s3.amazonaws.com'), false],
    ['… on the dualstack host', s3('https://victim.s3.dualstack.us-east-1.amazonaws.com'), false],
    ['… on the FIPS host', s3('https://victim.s3-fips.us-east-1.amazonaws.com'), false],
    ['… on the legacy s3-<region> host', s3('https://victim.s3-us-west-2.amazonaws.com'), false],
    ['… on the China partition', s3('https://victim.s3.cn-north-1.amazonaws.com.cn'), false],
    ['… percent-encoded', s3('https://victim%2Es3.us-east-1.amazonaws.com'), false],
    ['… as a punycode label', s3('https://xn--vctim-9qa.s3.us-east-1.amazonaws.com'), false],
    ['… with user info', s3('https://u:p@victim.s3.us-east-1.amazonaws.com'), false],
    ['an S3 service host with a port', s3('https://s3.us-east-1.amazonaws.com:8443'), false],
    ['an S3 service host with a query', s3('https://s3.us-east-1.amazonaws.com?x-id=1'), false],
    ['an access point host', s3('https://ap-123456789012.s3-accesspoint.us-east-1.amazonaws.com'), false],
    ['a website endpoint', s3('https://victim.s3-website-us-east-1.amazonaws.com'), false],
    ['a website endpoint (dot form)', s3('https://victim.s3-website.eu-west-1.amazonaws.com'), false],
    ['an Object Lambda host', s3('https://ol-1.s3-object-lambda.us-east-1.amazonaws.com'), false],
    [
      'a Multi-Region Access Point host',
      s3('https://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com'),
      false,
    ],
    ['the S3 control host', s3('https://123456789012.s3-control.us-east-1.amazonaws.com'), false],
    [
      'an S3 Express zonal host',
      s3('https://b--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com'),
      false,
    ],
    ['another AWS service host', s3('https://sts.amazonaws.com'), false],
    ['an IPv6 S3-compatible endpoint', s3('https://[2001:db8::1]:9000'), true],
    [
      'an R2 endpoint (its account in the host is not a bucket)',
      s3('https://0123abcd.r2.cloudflarestorage.com'),
      true,
    ],
    ['an Azure account URL', azure('https://acct.blob.core.windows.net'), true],
    ['an Azure account URL with a trailing slash', azure('https://acct.blob.core.windows.net/'), true],
    [
      'an emulator account URL (one path segment: the account)',
      azure('https://127.0.0.1:10000/devstoreaccount1'),
      true,
    ],
    ['an Azure account URL naming a container', azure('https://victim.blob.core.windows.net/oidc'), false],
    [
      'an Azure China account URL naming a container',
      azure('https://victim.blob.core.chinacloudapi.cn/oidc'),
      false,
    ],
    [
      'an emulator account URL with a container',
      azure('https://127.0.0.1:10000/devstoreaccount1/oidc'),
      false,
    ],
  ];
  for (const [name, spec, accepted] of table) {
    it(`${name}: ${accepted ? 'accepted' : 'refused as SPEC_INVALID'}`, () => {
      if (accepted) assert.ok(resolveSpec(spec));
      else assert.throws(() => resolveSpec(spec), { code: 'SPEC_INVALID' });
    });
  }
});
