/**
 * The storage endpoint allowlist, the GCS credentials a Secret may hold, and
 * the Azure credential that only asks for the storage scope: pure decisions,
 * as tables.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OidcPublisherError } from '../../src/errors.ts';
import { AZURE_STORAGE_SCOPE, storageScopedCredential } from '../../src/stores/azure-pipeline.ts';
import {
  type CredentialKind,
  EndpointPolicy,
  isAwsRegion,
  matchesHost,
  parseAllowedHost,
  parseHostPattern,
  type StorageKind,
} from '../../src/stores/endpoints.ts';
import {
  GOOGLE_STS_TOKEN_URL,
  GOOGLE_TOKEN_URI,
  parseGcsCredentials,
  parseServiceAccountKey,
} from '../../src/stores/gcs-credentials.ts';
import { readLimited, withDeadline } from '../../src/stores/limits.ts';
import { S3Store, s3Error } from '../../src/stores/s3.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof OidcPublisherError ? err.code : `not ours: ${String(err)}`;
  }
}

describe('parseHostPattern', () => {
  const good: [string, { host: string; wildcard: boolean; http: boolean }][] = [
    ['minio.storage.svc', { host: 'minio.storage.svc', wildcard: false, http: false }],
    ['*.R2.CloudflareStorage.com', { host: 'r2.cloudflarestorage.com', wildcard: true, http: false }],
    ['http://127.0.0.1', { host: '127.0.0.1', wildcard: false, http: true }],
    ['[::1]', { host: '::1', wildcard: false, http: false }],
    ['fd00:ec2::254', { host: 'fd00:ec2::254', wildcard: false, http: false }],
    ['localhost.', { host: 'localhost', wildcard: false, http: false }],
  ];
  for (const [entry, expected] of good) {
    it(`parses ${entry}`, () => {
      const p = parseHostPattern(entry);
      assert.ok(typeof p !== 'string', `refused: ${String(p)}`);
      assert.deepEqual({ host: p.host, wildcard: p.wildcard, http: p.http }, expected);
    });
  }
  const bad = [
    '*',
    '*.',
    '',
    'minio:9000',
    'https://minio',
    'minio/path',
    'a.*.example.com',
    '*.1.2',
    'x_y.example',
  ];
  for (const entry of bad) {
    it(`refuses ${JSON.stringify(entry)}`, () => {
      assert.equal(typeof parseHostPattern(entry), 'string');
    });
  }
});

describe('parseAllowedHost: every entry names the one backend it is for', () => {
  const good: [string, { kind: StorageKind; host: string; wildcard: boolean; http: boolean }][] = [
    ['s3=minio.storage.svc', { kind: 's3', host: 'minio.storage.svc', wildcard: false, http: false }],
    ['gcs=http://127.0.0.1', { kind: 'gcs', host: '127.0.0.1', wildcard: false, http: true }],
    [
      'azureBlob=*.blob.example.net',
      { kind: 'azureBlob', host: 'blob.example.net', wildcard: true, http: false },
    ],
    ['AzureBlob=[::1]', { kind: 'azureBlob', host: '::1', wildcard: false, http: false }],
    [' S3=Minio.Example. ', { kind: 's3', host: 'minio.example', wildcard: false, http: false }],
  ];
  for (const [entry, expected] of good) {
    it(`parses ${JSON.stringify(entry)}`, () => {
      const p = parseAllowedHost(entry);
      assert.ok(typeof p !== 'string', `refused: ${String(p)}`);
      assert.deepEqual({ kind: p.kind, host: p.host, wildcard: p.wildcard, http: p.http }, expected);
    });
  }
  const bad: [string, RegExp][] = [
    ['minio.storage.svc', /name the backend the host is for/],
    ['http://127.0.0.1', /name the backend the host is for/],
    ['*.r2.cloudflarestorage.com', /name the backend the host is for/],
    ['[::1]', /name the backend the host is for/],
    ['s3:minio.example', /name the backend the host is for/],
    ['blob=minio.example', /the backend must be one of s3, gcs, azureBlob/],
    ['s3=', /name a host or a \*\.suffix/],
    ['s3=*', /name a host or a \*\.suffix/],
    ['s3=minio:9000', /not a host name or IP address/],
    ['s3=gcs=minio', /not a host name or IP address/],
    ['gcs=https://x.example', /only http:\/\/ may prefix a host/],
  ];
  for (const [entry, message] of bad) {
    it(`refuses ${JSON.stringify(entry)}`, () => {
      const p = parseAllowedHost(entry);
      assert.equal(typeof p, 'string');
      assert.match(String(p), message);
    });
  }
});

describe('matchesHost', () => {
  const pattern = (text: string) => {
    const p = parseHostPattern(text);
    assert.ok(typeof p !== 'string');
    return p;
  };
  const cases: [string, string, boolean][] = [
    ['*.blob.core.windows.net', 'acct.blob.core.windows.net', true],
    ['*.blob.core.windows.net', 'blob.core.windows.net', false],
    ['*.blob.core.windows.net', 'acct.blob.core.windows.net.evil.example', false],
    ['*.blob.core.windows.net', 'evilblob.core.windows.net', false],
    ['*.amazonaws.com', 'bucket.s3.eu-west-1.amazonaws.com', true],
    ['storage.googleapis.com', 'storage.googleapis.com', true],
    ['storage.googleapis.com', 'x.storage.googleapis.com', false],
    ['127.0.0.1', '127.0.0.1', true],
    ['127.0.0.1', '127.0.0.2', false],
    // Metadata addresses: only an exact entry names them.
    ['*.internal', 'metadata.google.internal', false],
    ['metadata.google.internal', 'metadata.google.internal', true],
    ['169.254.169.254', '169.254.169.254', true],
    ['*.svc', 'minio.storage.svc', true],
  ];
  for (const [p, host, expected] of cases) {
    it(`${p} ${expected ? 'matches' : 'does not match'} ${host}`, () => {
      assert.equal(matchesHost(pattern(p), host), expected);
    });
  }
});

describe('EndpointPolicy.check', () => {
  const none = EndpointPolicy.of([]);
  const lab = EndpointPolicy.of([
    's3=127.0.0.1',
    'gcs=127.0.0.1',
    's3=http://minio.storage.svc',
    's3=*.r2.cloudflarestorage.com',
  ]);
  const cases: {
    name: string;
    policy: EndpointPolicy;
    kind: StorageKind;
    url: string;
    carries: CredentialKind;
    refused: boolean;
  }[] = [
    {
      name: 'an Azure public account',
      policy: none,
      kind: 'azureBlob',
      url: 'https://acct.blob.core.windows.net',
      carries: 'bearer',
      refused: false,
    },
    {
      name: 'an Azure China account',
      policy: none,
      kind: 'azureBlob',
      url: 'https://acct.blob.core.chinacloudapi.cn',
      carries: 'bearer',
      refused: false,
    },
    {
      name: 'an Azure Government account',
      policy: none,
      kind: 'azureBlob',
      url: 'https://acct.blob.core.usgovcloudapi.net',
      carries: 'bearer',
      refused: false,
    },
    {
      name: 'an Azure account on plain http',
      policy: none,
      kind: 'azureBlob',
      url: 'http://acct.blob.core.windows.net',
      carries: 'signature',
      refused: true,
    },
    {
      name: 'any other host for Azure',
      policy: none,
      kind: 'azureBlob',
      url: 'https://attacker.example/acct',
      carries: 'bearer',
      refused: true,
    },
    {
      name: 'an S3 host for Azure (each backend has its own built-ins)',
      policy: none,
      kind: 'azureBlob',
      url: 'https://bucket.s3.amazonaws.com',
      carries: 'bearer',
      refused: true,
    },
    {
      name: 'a regional S3 endpoint',
      policy: none,
      kind: 's3',
      url: 'https://s3.eu-west-1.amazonaws.com',
      carries: 'bearer',
      refused: false,
    },
    {
      name: 'an S3 China endpoint',
      policy: none,
      kind: 's3',
      url: 'https://s3.cn-north-1.amazonaws.com.cn',
      carries: 'bearer',
      refused: false,
    },
    {
      name: 'the EC2 metadata address',
      policy: none,
      kind: 's3',
      url: 'http://169.254.169.254',
      carries: 'none',
      refused: true,
    },
    {
      name: 'the EC2 IPv6 metadata address',
      policy: none,
      kind: 's3',
      url: 'http://[fd00:ec2::254]',
      carries: 'none',
      refused: true,
    },
    {
      name: 'the metadata address written in hex',
      policy: none,
      kind: 's3',
      url: 'http://0xa9.0xfe.0xa9.0xfe',
      carries: 'none',
      refused: true,
    },
    {
      name: 'the GCE metadata server',
      policy: none,
      kind: 'gcs',
      url: 'http://metadata.google.internal',
      carries: 'none',
      refused: true,
    },
    {
      name: 'an in-cluster service',
      policy: none,
      kind: 's3',
      url: 'https://minio.storage.svc.cluster.local',
      carries: 'signature',
      refused: true,
    },
    {
      name: "Google's endpoint",
      policy: none,
      kind: 'gcs',
      url: 'https://storage.googleapis.com',
      carries: 'bearer',
      refused: false,
    },
    {
      name: 'a GCS emulator not allowed',
      policy: none,
      kind: 'gcs',
      url: 'https://127.0.0.1:4443',
      carries: 'none',
      refused: true,
    },
    {
      name: 'a GCS emulator allowed',
      policy: lab,
      kind: 'gcs',
      url: 'https://127.0.0.1:4443',
      carries: 'none',
      refused: false,
    },
    {
      name: 'an allowed host on plain http without an http:// entry',
      policy: lab,
      kind: 's3',
      url: 'http://127.0.0.1:9000',
      carries: 'signature',
      refused: true,
    },
    {
      name: 'an http:// host with an S3 signature',
      policy: lab,
      kind: 's3',
      url: 'http://minio.storage.svc:9000',
      carries: 'signature',
      refused: false,
    },
    {
      name: 'an http:// host with a bearer secret',
      policy: lab,
      kind: 's3',
      url: 'http://minio.storage.svc:9000',
      carries: 'bearer',
      refused: true,
    },
    {
      name: 'an added wildcard',
      policy: lab,
      kind: 's3',
      url: 'https://acct.r2.cloudflarestorage.com',
      carries: 'signature',
      refused: false,
    },
    {
      name: 'user info in the endpoint',
      policy: lab,
      kind: 's3',
      url: 'https://user:pw@127.0.0.1:9000',
      carries: 'signature',
      refused: true,
    },
    {
      name: 'another scheme',
      policy: lab,
      kind: 's3',
      url: 'ftp://127.0.0.1',
      carries: 'none',
      refused: true,
    },
  ];
  for (const c of cases) {
    it(`${c.refused ? 'refuses' : 'allows'} ${c.name}`, () => {
      const code = codeOf(() => c.policy.check(c.kind, c.url, c.carries));
      assert.equal(code, c.refused ? 'STORAGE_ENDPOINT_REFUSED' : undefined);
    });
  }

  it('names the host, the built-in endpoints and the flag when it refuses', () => {
    assert.throws(
      () => none.check('azureBlob', 'https://attacker.example/acct', 'bearer'),
      /endpoint https:\/\/attacker\.example is not allowed for azureBlob: the built-in endpoints are \*\.blob\.core\.windows\.net.*--storage-allowed-hosts adds others with azureBlob=<host> entries/,
    );
  });

  describe("S3's built-in hosts: S3's own names, not everything under amazonaws.com", () => {
    const hosts: [string, boolean][] = [
      ['s3.amazonaws.com', true],
      ['bucket.s3.amazonaws.com', true],
      ['s3.eu-west-1.amazonaws.com', true],
      ['my.bucket.s3.eu-west-1.amazonaws.com', true],
      ['s3-us-west-2.amazonaws.com', true],
      ['s3.dualstack.ap-southeast-4.amazonaws.com', true],
      ['s3-fips.dualstack.us-gov-west-1.amazonaws.com', true],
      ['s3-external-1.amazonaws.com', true],
      ['s3.cn-north-1.amazonaws.com.cn', true],
      ['bucket.s3.cn-northwest-1.amazonaws.com.cn', true],
      ['S3.EU-WEST-1.AMAZONAWS.COM.', true],
      // Names under amazonaws.com that customers point at servers of their own.
      ['abcdef.execute-api.us-east-1.amazonaws.com', false],
      ['internal-x.us-east-1.elb.amazonaws.com', false],
      ['ec2-169-254-169-254.compute-1.amazonaws.com', false],
      ['x.s3.us-east-1.elb.amazonaws.com', false],
      ['s3.amazonaws.com.evil.example', false],
      ['evils3.amazonaws.com', false],
      ['sts.us-east-1.amazonaws.com', false],
      ['s3.us-isof-south-1.csp.hci.ic.gov', false],
    ];
    for (const [host, allowed] of hosts) {
      it(`${host}: ${allowed ? 'allowed' : 'refused'}`, () => {
        assert.equal(
          codeOf(() => none.check('s3', `https://${host}`, 'bearer')),
          allowed ? undefined : 'STORAGE_ENDPOINT_REFUSED',
        );
      });
    }
  });

  describe('a host added for one backend is allowed for that backend only', () => {
    const minio = EndpointPolicy.of([
      's3=minio.example.com',
      's3=*.lab.example',
      'gcs=http://127.0.0.1',
      'S3=[FD00::5]',
    ]);
    const cases: [StorageKind, string, CredentialKind, boolean][] = [
      ['s3', 'https://minio.example.com:9000', 'signature', true],
      ['s3', 'https://minio.example.com', 'bearer', true],
      ['azureBlob', 'https://minio.example.com/acct', 'signature', false],
      ['azureBlob', 'https://minio.example.com/acct', 'bearer', false],
      ['gcs', 'https://minio.example.com', 'none', false],
      ['azureBlob', 'https://x.lab.example/acct', 'signature', false],
      ['gcs', 'http://127.0.0.1:4443', 'none', true],
      ['s3', 'http://127.0.0.1:9000', 'signature', false],
      ['azureBlob', 'http://127.0.0.1:10000/devstoreaccount1', 'signature', false],
      ['s3', 'https://MINIO.EXAMPLE.COM.:9000', 'signature', true],
      ['azureBlob', 'https://MINIO.EXAMPLE.COM./acct', 'signature', false],
      ['s3', 'https://[fd00::5]:9000', 'signature', true],
      ['s3', 'https://[fd00:0:0:0:0:0:0:5]:9000', 'signature', true],
      ['azureBlob', 'https://[fd00::5]:10000/acct', 'signature', false],
      ['gcs', 'https://[fd00::5]:4443', 'none', false],
      ['s3', 'https://u:p@minio.example.com', 'signature', false],
      // A Secret's key to a built-in name on another port: not the provider's endpoint.
      ['azureBlob', 'https://acct.blob.core.windows.net:8443', 'signature', false],
      ['s3', 'https://s3.us-east-1.amazonaws.com:8443', 'signature', false],
    ];
    for (const [kind, url, carries, allowed] of cases) {
      it(`${kind} ${url} (${carries}): ${allowed ? 'allowed' : 'refused'}`, () => {
        assert.equal(
          codeOf(() => minio.check(kind, url, carries)),
          allowed ? undefined : 'STORAGE_ENDPOINT_REFUSED',
        );
      });
    }
  });

  describe("the operator's own identity goes only to its cloud's built-in endpoints", () => {
    const all = EndpointPolicy.of([
      's3=minio.example.com',
      's3=*.amazonaws.com',
      'azureBlob=azurite.example.com',
      'azureBlob=*.windows.net',
      'gcs=gcs.example.com',
      'gcs=*.googleapis.com',
    ]);
    const cases: [StorageKind, string, boolean][] = [
      ['s3', 'https://s3.us-east-1.amazonaws.com', true],
      ['s3', 'https://bucket.s3.us-east-1.amazonaws.com', true],
      ['s3', 'https://minio.example.com', false],
      ['s3', 'https://minio.example.com:9000', false],
      ['s3', 'https://abc.execute-api.us-east-1.amazonaws.com', false],
      ['s3', 'https://s3.us-east-1.amazonaws.com:8443', false],
      ['s3', 'http://s3.us-east-1.amazonaws.com', false],
      ['azureBlob', 'https://acct.blob.core.windows.net', true],
      ['azureBlob', 'https://ACCT.BLOB.CORE.WINDOWS.NET.', true],
      ['azureBlob', 'https://acct.blob.core.windows.net:444', false],
      ['azureBlob', 'https://azurite.example.com/devstoreaccount1', false],
      ['azureBlob', 'https://acct.web.core.windows.net', false],
      ['azureBlob', 'https://attacker.azurewebsites.windows.net', false],
      ['gcs', 'https://storage.googleapis.com', true],
      ['gcs', 'https://gcs.example.com', false],
      ['gcs', 'https://attacker.googleapis.com', false],
      ['gcs', 'https://storage.googleapis.com:8443', false],
    ];
    for (const [kind, url, allowed] of cases) {
      it(`${kind} ${url}: ${allowed ? 'allowed' : 'refused'}`, () => {
        assert.equal(
          codeOf(() => all.check(kind, url, 'ambient')),
          allowed ? undefined : 'STORAGE_ENDPOINT_REFUSED',
        );
      });
    }
    it('says why, and that a credentials Secret may use the host', () => {
      assert.throws(
        () => all.check('azureBlob', 'https://azurite.example.com/devstoreaccount1', 'ambient'),
        /not one of azureBlob's built-in endpoints, and the operator's own identity goes only to those: name a credentials Secret/,
      );
    });
  });

  describe('an S3 endpoint naming a bucket in its host is refused, whatever the allowlist adds', () => {
    const none = EndpointPolicy.of([]);
    const wide = EndpointPolicy.of(['s3=*.amazonaws.com', 's3=*.amazonaws.com.cn', 's3=minio.example.com']);
    const cases: [string, boolean][] = [
      ['https://s3.us-east-1.amazonaws.com', true],
      ['https://s3.amazonaws.com', true],
      ['https://S3.DUALSTACK.US-EAST-1.AMAZONAWS.COM.', true],
      ['https://s3-fips.us-gov-west-1.amazonaws.com', true],
      ['https://minio.example.com:9000', true],
      ['https://victim-bucket.s3.us-east-1.amazonaws.com', false],
      ['https://VICTIM-BUCKET.S3.US-EAST-1.AMAZONAWS.COM', false],
      ['https://victim-bucket.s3.us-east-1.amazonaws.com.', false],
      ['https://victim-bucket.s3.us-east-1.amazonaws.com..', false],
      ['https://victim.bucket.s3.amazonaws.com', false],
      ['https://victim.s3.dualstack.us-east-1.amazonaws.com', false],
      ['https://victim.s3-fips.dualstack.us-east-1.amazonaws.com', false],
      ['https://victim.s3-us-west-2.amazonaws.com', false],
      ['https://victim.s3-external-1.amazonaws.com', false],
      ['https://victim.s3.cn-north-1.amazonaws.com.cn', false],
      ['https://victim%2es3.us-east-1.amazonaws.com', false],
      ['https://xn--vctim-9qa.s3.us-east-1.amazonaws.com', false],
      ['https://vİctim.s3.us-east-1.amazonaws.com', false],
      ['https://victim\uff0es3.us-east-1.amazonaws.com', false],
      ['https://s3.us-east-1.amazonaws.com:8443', false],
      ['https://s3.us-east-1.amazonaws.com:443', true],
      ['https://u@s3.us-east-1.amazonaws.com', false],
      ['https://ap-123456789012.s3-accesspoint.us-east-1.amazonaws.com', false],
      ['https://ap-123456789012.s3-accesspoint.dualstack.us-east-1.amazonaws.com', false],
      ['https://victim.s3-website-us-east-1.amazonaws.com', false],
      ['https://victim.s3-website.eu-west-1.amazonaws.com', false],
      ['https://ol-123456789012.s3-object-lambda.us-east-1.amazonaws.com', false],
      ['https://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com', false],
      ['https://123456789012.s3-control.us-east-1.amazonaws.com', false],
      ['https://b--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com', false],
    ];
    for (const [url, allowed] of cases) {
      for (const [policyName, policy] of [
        ['built-ins', none],
        ['s3=*.amazonaws.com added', wide],
      ] as const) {
        if (url.includes('minio') && policy === none) continue;
        it(`${url} (${policyName}): ${allowed ? 'allowed' : 'refused'}`, () => {
          assert.equal(
            codeOf(() => policy.checkS3Endpoint(url, 'signature')),
            allowed ? undefined : 'STORAGE_ENDPOINT_REFUSED',
          );
        });
      }
    }

    it('refuses it when the store is made, with forcePathStyle or without, before any request', () => {
      for (const forcePathStyle of [true, false]) {
        for (const credentials of [undefined, { accessKeyId: 'a', secretAccessKey: 's' }]) {
          assert.equal(
            codeOf(
              () =>
                new S3Store({
                  bucket: 'mine',
                  prefix: 'p',
                  region: 'us-east-1',
                  endpoint: 'https://victim-bucket.s3.us-east-1.amazonaws.com',
                  forcePathStyle,
                  timeoutMs: 1000,
                  endpoints: wide,
                  ...(credentials ? { credentials } : {}),
                }),
            ),
            'STORAGE_ENDPOINT_REFUSED',
          );
        }
      }
    });
  });

  describe("every S3 request on S3's own names reaches the store's bucket", () => {
    const none = EndpointPolicy.of([]);
    const cases: [string, string, boolean][] = [
      ['https://mine.s3.us-east-1.amazonaws.com', '/key', true],
      ['https://MINE.s3.us-east-1.amazonaws.com.', '/key', true],
      ['https://s3.us-east-1.amazonaws.com', '/mine/key', true],
      ['https://s3.us-east-1.amazonaws.com', '/mine', true],
      ['https://victim.s3.us-east-1.amazonaws.com', '/mine/key', false],
      ['https://mine.victim.s3.us-east-1.amazonaws.com', '/key', false],
      ['https://s3.us-east-1.amazonaws.com', '/victim/mine/key', false],
      ['https://s3.us-east-1.amazonaws.com', '//victim/key', false],
      ['https://s3.us-east-1.amazonaws.com', '/%76ictim/key', false],
      ['https://s3.us-east-1.amazonaws.com', '/', false],
    ];
    for (const [url, path, allowed] of cases) {
      it(`${url}${path}: ${allowed ? 'allowed' : 'refused'}`, () => {
        assert.equal(
          codeOf(() => none.checkS3Request({ url, path }, 'ambient', 'mine')),
          allowed ? undefined : 'STORAGE_ENDPOINT_REFUSED',
        );
      });
    }
  });

  describe('isAwsRegion: the partitions whose STS the credential chain may call', () => {
    const regions: [string, boolean][] = [
      ['us-east-1', true],
      ['ap-southeast-4', true],
      ['eu-central-2', true],
      ['cn-north-1', true],
      ['us-gov-west-1', true],
      ['us-isof-south-1', false],
      ['eu-isoe-west-1', false],
      ['us-iso-east-1', false],
      ['garage', false],
      ['us-east-1.evil.example', false],
    ];
    for (const [region, expected] of regions) {
      it(`${region}: ${expected}`, () => assert.equal(isAwsRegion(region), expected));
    }
  });

  it("refuses the operator's own AWS credentials in a region outside the public partitions, before any request", () => {
    const store = (region: string, credentials?: { accessKeyId: string; secretAccessKey: string }) =>
      codeOf(
        () =>
          new S3Store({
            bucket: 'b',
            prefix: 'p',
            region,
            forcePathStyle: false,
            timeoutMs: 1000,
            endpoints: none,
            ...(credentials ? { credentials } : {}),
          }),
      );
    assert.equal(store('us-isof-south-1'), 'STORAGE_ENDPOINT_REFUSED');
    assert.equal(store('eu-isoe-west-1'), 'STORAGE_ENDPOINT_REFUSED');
    assert.equal(store('eu-west-1'), undefined);
    // A Secret's key pair signs; no STS is asked.
    assert.equal(store('us-isof-south-1', { accessKeyId: 'a', secretAccessKey: 's' }), undefined);
  });

  it('lets everything through when unrestricted (publish: the user chose the endpoint)', () => {
    assert.equal(
      codeOf(() => EndpointPolicy.unrestricted().check('s3', 'http://127.0.0.1:9000', 'bearer')),
      undefined,
    );
  });
});

describe('parseServiceAccountKey', () => {
  const key = {
    type: 'service_account',
    project_id: 'p',
    private_key_id: 'k',
    private_key: '-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n',
    client_email: 'sa@p.iam.gserviceaccount.com',
    client_id: '1',
    token_uri: GOOGLE_TOKEN_URI,
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    universe_domain: 'googleapis.com',
  };

  it('accepts a service account key and passes on only what a key needs', () => {
    assert.deepEqual(parseServiceAccountKey(JSON.stringify(key)), {
      type: 'service_account',
      client_email: key.client_email,
      private_key: key.private_key,
      token_uri: GOOGLE_TOKEN_URI,
      project_id: 'p',
      private_key_id: 'k',
      client_id: '1',
    });
  });

  const refusals: [string, unknown, RegExp][] = [
    [
      'an external_account that would read a file and post it to a token_url',
      {
        type: 'external_account',
        token_url: 'https://attacker.example/token',
        credential_source: { file: '/var/run/secrets/kubernetes.io/serviceaccount/token' },
      },
      /type is "external_account"; only "service_account"/,
    ],
    ['an authorized_user', { type: 'authorized_user', refresh_token: 'r' }, /type is "authorized_user"/],
    [
      'an impersonated_service_account',
      { type: 'impersonated_service_account', service_account_impersonation_url: 'https://x' },
      /type is "impersonated_service_account"/,
    ],
    [
      'a key with another token_uri',
      { ...key, token_uri: 'https://attacker.example/token' },
      /token_uri must be/,
    ],
    ['a key of another universe', { ...key, universe_domain: 'attacker.example' }, /universe_domain/],
    ['a key without a private key', { ...key, private_key: undefined }, /private_key is missing/],
    ['no type', { client_email: 'x' }, /type is missing/],
    ['a JSON array', [key], /not a JSON object/],
  ];
  for (const [name, json, message] of refusals) {
    it(`refuses ${name} as STORAGE_CREDENTIALS_INVALID`, () => {
      assert.throws(
        () => parseServiceAccountKey(JSON.stringify(json)),
        (err: unknown) =>
          err instanceof OidcPublisherError &&
          err.code === 'STORAGE_CREDENTIALS_INVALID' &&
          message.test(err.message) &&
          !err.message.includes('BEGIN PRIVATE KEY'),
      );
    });
  }

  it('refuses text that is not JSON', () => {
    assert.equal(
      codeOf(() => parseServiceAccountKey('not json')),
      'STORAGE_CREDENTIALS_INVALID',
    );
  });
});

describe('parseGcsCredentials: external_account in the one shape that sends a token file to Google only', () => {
  const dirs = ['/var/run/secrets/oidc-publisher/gcp'];
  const tokenFile = '/var/run/secrets/oidc-publisher/gcp/token';
  const audience =
    '//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/prod-cluster/providers/kubernetes';
  const impersonation =
    'https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/oidc-publisher@my-project.iam.gserviceaccount.com:generateAccessToken';
  // What `gcloud iam workload-identity-pools create-cred-config --credential-source-file=...
  // --credential-source-type=text --service-account=...` writes.
  const gcloud = {
    universe_domain: 'googleapis.com',
    type: 'external_account',
    audience,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    token_url: GOOGLE_STS_TOKEN_URL,
    credential_source: { file: tokenFile, format: { type: 'text' } },
    service_account_impersonation_url: impersonation,
    service_account_impersonation: { token_lifetime_seconds: 3600 },
  };

  it("accepts gcloud's credential configuration and passes on only the checked members", () => {
    assert.deepEqual(parseGcsCredentials(JSON.stringify(gcloud), dirs), gcloud);
  });

  it('accepts one without impersonation (the federated token used directly), a json token file and a directory given with a trailing slash', () => {
    const { service_account_impersonation_url: _u, service_account_impersonation: _i, ...direct } = gcloud;
    assert.deepEqual(parseGcsCredentials(JSON.stringify(direct), dirs), direct);
    const json = {
      ...direct,
      credential_source: { file: tokenFile, format: { type: 'json', subject_token_field_name: 'id_token' } },
    };
    assert.deepEqual(
      parseGcsCredentials(JSON.stringify(json), ['/var/run/secrets/oidc-publisher/gcp/']),
      json,
    );
  });

  it("accepts Google's token_info_url and does not pass it on (the library never calls it)", () => {
    const withInfo = { ...gcloud, token_info_url: 'https://sts.googleapis.com/v1/introspect' };
    assert.deepEqual(parseGcsCredentials(JSON.stringify(withInfo), dirs), gcloud);
  });

  it('still parses a service account key', () => {
    const key = {
      type: 'service_account',
      private_key: '-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n',
      client_email: 'sa@p.iam.gserviceaccount.com',
    };
    assert.equal(parseGcsCredentials(JSON.stringify(key), dirs).type, 'service_account');
  });

  const { credential_source: _source, ...noSource } = gcloud;
  const refusals: [string, unknown, RegExp, (readonly string[])?][] = [
    [
      'a token_url of the writer (the original finding)',
      { ...gcloud, token_url: 'https://attacker.example/token' },
      /token_url must be https:\/\/sts\.googleapis\.com\/v1\/token/,
    ],
    [
      'no token_url (the library would build one from universe_domain)',
      { ...gcloud, token_url: undefined },
      /token_url must be/,
    ],
    [
      "an http token_url on Google's host",
      { ...gcloud, token_url: 'http://sts.googleapis.com/v1/token' },
      /token_url must be/,
    ],
    [
      'a token_url with user info',
      { ...gcloud, token_url: 'https://sts.googleapis.com@attacker.example/v1/token' },
      /token_url must be/,
    ],
    [
      'a token_url on a look-alike host',
      { ...gcloud, token_url: 'https://sts.googleapis.com.attacker.example/v1/token' },
      /token_url must be/,
    ],
    [
      'a camelCase tokenUrl, which the library reads as an alias',
      { ...gcloud, tokenUrl: 'https://attacker.example/token' },
      /member "tokenUrl" is not accepted/,
    ],
    [
      'an impersonation URL of the writer',
      {
        ...gcloud,
        service_account_impersonation_url:
          'https://attacker.example/v1/projects/-/serviceAccounts/a@b.iam.gserviceaccount.com:generateAccessToken',
      },
      /service_account_impersonation_url must be/,
    ],
    [
      'an impersonation URL with a query',
      { ...gcloud, service_account_impersonation_url: `${impersonation}?x=https://attacker.example` },
      /service_account_impersonation_url must be/,
    ],
    [
      'an impersonation URL whose email carries a path',
      {
        ...gcloud,
        service_account_impersonation_url:
          'https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/a/../../x@b.iam.gserviceaccount.com:generateAccessToken',
      },
      /service_account_impersonation_url must be/,
    ],
    [
      'a camelCase serviceAccountImpersonationUrl',
      { ...gcloud, serviceAccountImpersonationUrl: 'https://attacker.example/' },
      /member "serviceAccountImpersonationUrl" is not accepted/,
    ],
    [
      'credential_source.url (a metadata address)',
      {
        ...gcloud,
        credential_source: {
          url: 'http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/identity',
          headers: { 'Metadata-Flavor': 'Google' },
        },
      },
      /credential_source member "url" is not accepted/,
    ],
    [
      'credential_source.url next to a file',
      { ...gcloud, credential_source: { file: tokenFile, url: 'http://10.0.0.1/' } },
      /credential_source member "url"/,
    ],
    [
      'credential_source.executable (runs a command)',
      { ...gcloud, credential_source: { executable: { command: '/bin/sh -c id', timeout_millis: 5000 } } },
      /credential_source member "executable"/,
    ],
    [
      'credential_source.environment_id (AWS, reads the metadata service)',
      {
        ...gcloud,
        credential_source: {
          environment_id: 'aws1',
          region_url: 'http://169.254.169.254/latest/meta-data/placement/availability-zone',
          regional_cred_verification_url: 'https://attacker.example',
        },
      },
      /credential_source member "environment_id"/,
    ],
    [
      'credential_source.certificate',
      { ...gcloud, credential_source: { certificate: { certificate_config_location: '/etc/x' } } },
      /credential_source member "certificate"/,
    ],
    [
      'a camelCase credentialSource (url inside)',
      { ...noSource, credentialSource: { url: 'http://10.0.0.1/' } },
      /member "credentialSource" is not accepted/,
    ],
    ['no credential_source', noSource, /credential_source must be an object/],
    [
      "the operator's own ServiceAccount token as the file",
      { ...gcloud, credential_source: { file: '/var/run/secrets/kubernetes.io/serviceaccount/token' } },
      /credential_source\.file must be in \/var\/run\/secrets\/oidc-publisher\/gcp/,
    ],
    [
      'a file that climbs out of the allowed directory',
      {
        ...gcloud,
        credential_source: {
          file: '/var/run/secrets/oidc-publisher/gcp/../../kubernetes.io/serviceaccount/token',
        },
      },
      /credential_source\.file must be a plain absolute path/,
    ],
    [
      'a file in a sibling directory sharing the prefix',
      { ...gcloud, credential_source: { file: '/var/run/secrets/oidc-publisher/gcp-other/token' } },
      /credential_source\.file must be in/,
    ],
    [
      'a relative file',
      { ...gcloud, credential_source: { file: 'token' } },
      /credential_source\.file must be a plain absolute path/,
    ],
    [
      'a file with a doubled slash',
      { ...gcloud, credential_source: { file: '/var/run/secrets/oidc-publisher/gcp//token' } },
      /plain absolute path/,
    ],
    [
      'the allowed directory itself',
      { ...gcloud, credential_source: { file: '/var/run/secrets/oidc-publisher/gcp' } },
      /credential_source\.file must be in/,
    ],
    [
      'any file when the administrator allows none',
      gcloud,
      /--gcs-token-file-dirs allows no token files/,
      [],
    ],
    [
      'a format of another kind',
      { ...gcloud, credential_source: { file: tokenFile, format: { type: 'xml' } } },
      /credential_source\.format must be/,
    ],
    [
      'an unknown format member',
      { ...gcloud, credential_source: { file: tokenFile, format: { type: 'text', headers: {} } } },
      /credential_source\.format member "headers"/,
    ],
    [
      'a token_info_url',
      { ...gcloud, token_info_url: 'https://attacker.example/introspect' },
      /token_info_url must be https:\/\/sts\.googleapis\.com\/v1\/introspect or absent/,
    ],
    [
      'a workforce_pool_user_project',
      { ...gcloud, workforce_pool_user_project: 'p' },
      /member "workforce_pool_user_project" is not accepted/,
    ],
    [
      'a workforce pool audience',
      { ...gcloud, audience: '//iam.googleapis.com/locations/global/workforcePools/p/providers/x' },
      /audience must be a workload identity pool provider/,
    ],
    [
      'an audience of another host',
      {
        ...gcloud,
        audience: '//iam.attacker.example/projects/1/locations/global/workloadIdentityPools/p/providers/x',
      },
      /audience must be/,
    ],
    [
      'client_id and client_secret (basic auth to the token_url)',
      { ...gcloud, client_id: 'c', client_secret: 's' },
      /member "client_id" is not accepted/,
    ],
    [
      'a cloud_resource_manager_url',
      { ...gcloud, cloud_resource_manager_url: 'https://attacker.example/' },
      /member "cloud_resource_manager_url" is not accepted/,
    ],
    [
      'a quota_project_id',
      { ...gcloud, quota_project_id: 'someone-elses' },
      /member "quota_project_id" is not accepted/,
    ],
    [
      'scopes',
      { ...gcloud, scopes: ['https://www.googleapis.com/auth/cloud-platform'] },
      /member "scopes" is not accepted/,
    ],
    [
      'a subject_token_supplier',
      { ...gcloud, subject_token_supplier: {} },
      /member "subject_token_supplier"/,
    ],
    [
      'a __proto__ member',
      JSON.parse(`{"__proto__":{"token_url":"https://attacker.example"},${JSON.stringify(gcloud).slice(1)}`),
      /member "__proto__" is not accepted/,
    ],
    [
      'another universe',
      { ...gcloud, universe_domain: 'attacker.example' },
      /universe_domain must be googleapis\.com/,
    ],
    [
      'a subject token type of AWS',
      { ...gcloud, subject_token_type: 'urn:ietf:params:aws:token-type:aws4_request' },
      /subject_token_type must be/,
    ],
    [
      'a token lifetime out of range',
      { ...gcloud, service_account_impersonation: { token_lifetime_seconds: 86_400 } },
      /token_lifetime_seconds must be/,
    ],
    [
      'an unknown impersonation member',
      { ...gcloud, service_account_impersonation: { token_lifetime_seconds: 3600, delegates: ['x'] } },
      /service_account_impersonation member "delegates"/,
    ],
  ];
  for (const [name, json, message, allowed] of refusals) {
    it(`refuses ${name} as STORAGE_CREDENTIALS_INVALID`, () => {
      assert.throws(
        () => parseGcsCredentials(JSON.stringify(json), allowed ?? dirs),
        (err: unknown) => {
          assert.ok(err instanceof OidcPublisherError, `expected our error, got ${String(err)}`);
          assert.equal(err.code, 'STORAGE_CREDENTIALS_INVALID');
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }
});

describe('storageScopedCredential', () => {
  it('asks the inner credential for the storage scope of its own tenant, whatever the caller asks', async () => {
    const asked: unknown[] = [];
    const inner = {
      async getToken(scopes: string | string[], options?: object) {
        asked.push({ scopes, options });
        return { token: 't', expiresOnTimestamp: 1 };
      },
    };
    const signal = new AbortController().signal;
    const credential = storageScopedCredential(inner);
    await credential.getToken('https://management.azure.com/.default', {
      tenantId: 'another-tenant',
      claims: 'eyJ...',
      abortSignal: signal,
    });
    await credential.getToken(['https://vault.azure.net/.default', AZURE_STORAGE_SCOPE]);
    assert.deepEqual(asked, [
      { scopes: AZURE_STORAGE_SCOPE, options: { abortSignal: signal } },
      { scopes: AZURE_STORAGE_SCOPE, options: {} },
    ]);
  });
});

describe('readLimited', () => {
  it('reads a body up to the limit and refuses one byte more', async () => {
    const { Readable } = await import('node:stream');
    assert.equal((await readLimited(Readable.from([Buffer.alloc(5), Buffer.alloc(5)]), 10)).length, 10);
    await assert.rejects(
      readLimited(Readable.from([Buffer.alloc(6), Buffer.alloc(5)]), 10),
      (err: unknown) => err instanceof OidcPublisherError && /larger than 10 bytes/.test(err.message),
    );
  });
});

describe('storage errors of ours, as the error of an operation', () => {
  it('names the operation and object once, whether or not the error named it already', async () => {
    const where = 'PUT s3://b/p/openid/v1/jwks';
    const late = await withDeadline(10, where, () => new Promise<never>(() => {})).catch((e: unknown) => e);
    assert.equal(
      s3Error('PUT', 's3://b/p/openid/v1/jwks', late).message,
      `${where}: no complete answer within 10 ms`,
    );
    const wrapped = new Error('stream failed', {
      cause: new OidcPublisherError('STORAGE_ERROR', 'answer larger than 2 MiB'),
    });
    const mapped = s3Error('GET', 's3://b/p/openid/v1/jwks', wrapped);
    assert.equal(mapped.code, 'STORAGE_ERROR');
    assert.equal(mapped.message, 'GET s3://b/p/openid/v1/jwks: answer larger than 2 MiB');
  });
});
