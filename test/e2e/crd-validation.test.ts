/**
 * The CRD is the contract: invalid OidcPublishers are refused by `kubectl apply`
 * against the real API server, each with a message a person understands. Every
 * case changes one thing in a resource the server accepts (checked first), so a
 * refusal is caused by that change alone.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { useBed } from '../bed/shared.ts';
import { ROOT } from './harness.ts';

const execFileAsync = promisify(execFile);

type Obj = Record<string, unknown>;

function valid(name: string): Obj {
  return {
    apiVersion: 'oidcpublisher.io/v1alpha1',
    kind: 'OidcPublisher',
    metadata: { name },
    spec: {
      issuerURL: 'https://issuer.example.com/cluster-a',
      storage: {
        s3: { bucket: 'oidc-issuer', region: 'eu-west-1', prefix: 'cluster-a' },
      },
    },
  };
}

/** A copy of `o` with the value at `path` replaced (or removed when `value` is undefined). */
function withValue(o: Obj, path: string[], value: unknown): Obj {
  const copy = structuredClone(o);
  let cur: Obj = copy;
  for (const p of path.slice(0, -1)) {
    cur[p] ??= {};
    cur = cur[p] as Obj;
  }
  const last = path.at(-1) ?? '';
  if (value === undefined) delete cur[last];
  else cur[last] = value;
  return copy;
}

const s3 = (field: string) => ['spec', 'storage', 's3', field];
const AZURE = {
  accountURL: 'https://oidcissuer.blob.core.windows.net',
  container: 'oidc',
  prefix: 'cluster-a',
};

interface Case {
  name: string;
  object: Obj;
  /** A fragment of the refusal the user sees. */
  message: RegExp;
}

const base = valid('invalid-case');
const CASES: Case[] = [
  {
    name: 'no storage at all',
    object: withValue(base, ['spec', 'storage'], undefined),
    message: /spec\.storage: Required value/,
  },
  {
    name: 'an empty storage (none of s3, gcs and azureBlob)',
    object: withValue(base, ['spec', 'storage'], {}),
    message: /storage must set exactly one of s3, gcs or azureBlob/,
  },
  {
    name: 'both s3 and gcs',
    object: withValue(base, ['spec', 'storage', 'gcs'], { bucket: 'oidc-issuer' }),
    message: /storage must set exactly one of s3, gcs or azureBlob/,
  },
  {
    name: 'both s3 and azureBlob',
    object: withValue(base, ['spec', 'storage', 'azureBlob'], AZURE),
    message: /storage must set exactly one of s3, gcs or azureBlob/,
  },
  {
    name: 'an Azure container name with consecutive hyphens',
    object: withValue(base, ['spec', 'storage'], { azureBlob: { ...AZURE, container: 'oidc--issuer' } }),
    message: /container must not contain consecutive hyphens/,
  },
  {
    name: 'an Azure container name with upper-case letters',
    object: withValue(base, ['spec', 'storage'], { azureBlob: { ...AZURE, container: 'OIDC' } }),
    message: /spec\.storage\.azureBlob\.container: Invalid value/,
  },
  {
    name: 'an Azure accountURL carrying a SAS token',
    object: withValue(base, ['spec', 'storage'], {
      azureBlob: { ...AZURE, accountURL: `${AZURE.accountURL}?sv=2024-08-04&sig=abc` },
    }),
    message: /accountURL must not contain a query/,
  },
  {
    name: 'an Azure prefix with a leading slash',
    object: withValue(base, ['spec', 'storage'], { azureBlob: { ...AZURE, prefix: '/cluster-a' } }),
    message: /prefix must not start with a slash/,
  },
  {
    name: 'an http issuer',
    object: withValue(base, ['spec', 'issuerURL'], 'http://issuer.example.com'),
    message: /issuerURL must be an https URL/,
  },
  {
    name: 'an issuer with a query',
    object: withValue(base, ['spec', 'issuerURL'], 'https://issuer.example.com/?tenant=a'),
    message: /issuerURL must not contain a query/,
  },
  {
    name: 'an issuer with a fragment',
    object: withValue(base, ['spec', 'issuerURL'], 'https://issuer.example.com/#a'),
    message: /issuerURL must not contain a query \(\?\) or a fragment/,
  },
  {
    name: 'no issuerURL',
    object: withValue(base, ['spec', 'issuerURL'], undefined),
    message: /spec\.issuerURL: Required value/,
  },
  {
    name: 'an issuer longer than 2048 characters',
    object: withValue(base, ['spec', 'issuerURL'], `https://issuer.example.com/${'a'.repeat(2100)}`),
    message: /spec\.issuerURL: Too long/,
  },
  {
    name: 'an http jwksURI',
    object: withValue(base, ['spec', 'jwksURI'], 'http://issuer.example.com/keys'),
    message: /jwksURI must be an https URL/,
  },
  {
    name: 'an S3 bucket name with dots without forcePathStyle',
    object: withValue(base, s3('bucket'), 'oidc.example.com'),
    message: /bucket names with dots break TLS/,
  },
  {
    name: 'an S3 bucket name with upper-case letters',
    object: withValue(base, s3('bucket'), 'OIDC-Issuer'),
    message: /spec\.storage\.s3\.bucket: Invalid value/,
  },
  {
    name: 'an S3 bucket name longer than 63 characters',
    object: withValue(base, s3('bucket'), 'b'.repeat(64)),
    message: /spec\.storage\.s3\.bucket: Too long/,
  },
  {
    name: 'an S3 bucket formatted as an IP address (with forcePathStyle)',
    object: withValue(withValue(base, s3('bucket'), '192.168.10.1'), s3('forcePathStyle'), true),
    message: /bucket must not be formatted as an IP address/,
  },
  {
    name: 'an S3 storage without a region',
    object: withValue(base, s3('region'), undefined),
    message: /spec\.storage\.s3\.region: Required value/,
  },
  {
    name: 'a prefix with a leading slash',
    object: withValue(base, s3('prefix'), '/cluster-a'),
    message: /prefix must not start with a slash/,
  },
  {
    name: "a prefix with a '..' segment",
    object: withValue(base, s3('prefix'), 'cluster-a/../other'),
    message: /prefix must not contain '\.' or '\.\.' segments/,
  },
  {
    name: 'a GCS bucket starting with goog',
    object: withValue(base, ['spec', 'storage'], { gcs: { bucket: 'google-issuer' } }),
    message: /bucket must not start with 'goog'/,
  },
  {
    name: 'a syncInterval below 10s',
    object: withValue(base, ['spec', 'syncInterval'], '1s'),
    message: /syncInterval must be between 10s and 24h/,
  },
  {
    name: 'an absurd syncInterval (a year)',
    object: withValue(base, ['spec', 'syncInterval'], '8760h'),
    message: /syncInterval must be between 10s and 24h/,
  },
  {
    name: 'a syncInterval that is not a duration',
    object: withValue(base, ['spec', 'syncInterval'], 'often'),
    message: /spec\.syncInterval: Invalid value/,
  },
  {
    name: 'an unknown deletionPolicy',
    object: withValue(base, ['spec', 'deletionPolicy'], 'Orphan'),
    message: /supported values: "Retain", "Delete"/,
  },
  {
    name: 'an unknown field (a typo of syncInterval)',
    object: withValue(base, ['spec', 'syncIntervall'], '1m'),
    message: /unknown field "spec\.syncIntervall"/,
  },
  {
    name: 'a kubeconfig Secret reference with an invalid name',
    object: withValue(base, ['spec', 'source'], { kubeconfigSecretRef: { name: 'Bad_Name' } }),
    message: /spec\.source\.kubeconfigSecretRef\.name: Invalid value/,
  },
  {
    name: 'a canary ServiceAccount reference with an invalid name',
    object: withValue(base, ['spec', 'verification'], {
      canary: { serviceAccountRef: { name: 'Bad_Name' } },
    }),
    message: /spec\.verification\.canary\.serviceAccountRef\.name: Invalid value/,
  },
  {
    name: 'a canary without a ServiceAccount reference',
    object: withValue(base, ['spec', 'verification'], { canary: {} }),
    message: /spec\.verification\.canary\.serviceAccountRef: Required value/,
  },
  {
    name: "a canary with another cluster as the source (its tokens come from the operator's cluster)",
    object: withValue(
      withValue(base, ['spec', 'verification'], {
        canary: { serviceAccountRef: { name: 'oidc-publisher-canary' } },
      }),
      ['spec', 'source'],
      { kubeconfigSecretRef: { name: 'cluster-b' } },
    ),
    message: /verification\.canary verifies tokens of the cluster the operator runs in/,
  },
  {
    name: 'a credentials Secret reference without a name',
    object: withValue(base, s3('credentialsSecretRef'), {}),
    message: /spec\.storage\.s3\.credentialsSecretRef\.name: Required value/,
  },
  {
    name: 'a huge cacheControl string',
    object: withValue(base, ['spec', 'cacheControl'], `public, max-age=${'9'.repeat(300)}`),
    message: /spec\.cacheControl: Too long/,
  },
  {
    name: 'a cacheControl with a line break (header injection)',
    object: withValue(base, ['spec', 'cacheControl'], 'public\r\nx-evil: 1'),
    message: /spec\.cacheControl: Invalid value/,
  },
  {
    name: 'a relying party the operator knows no algorithms of',
    object: withValue(base, ['spec', 'relyingParties'], ['aws', 'oracle']),
    message: /spec\.relyingParties\[1\]: Unsupported value: "oracle"/,
  },
  {
    name: 'a relying party named twice',
    object: withValue(base, ['spec', 'relyingParties'], ['aws', 'aws']),
    message: /spec\.relyingParties\[1\]: Duplicate value: "aws"/,
  },
];

describe('the CRD refuses invalid OidcPublishers at kubectl apply', () => {
  const useShared = useBed();
  let apply: (o: Obj) => Promise<{ code: number; stderr: string }>;

  before(async () => {
    const bed = useShared();
    await bed.kubectl(['apply', '-f', join(ROOT, 'crds')]);
    await bed.kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      'crd/oidcpublishers.oidcpublisher.io',
    ]);
    apply = async (o) => {
      const child = execFileAsync(bed.state.kubectl, ['apply', '--dry-run=server', '-f', '-'], {
        env: { ...process.env, KUBECONFIG: bed.adminKubeconfig },
      });
      child.child.stdin?.end(JSON.stringify(o));
      try {
        await child;
        return { code: 0, stderr: '' };
      } catch (err) {
        const e = err as { code?: number; stderr?: string };
        return { code: e.code ?? 1, stderr: e.stderr ?? '' };
      }
    };
  });

  it('accepts the resource every case starts from', async () => {
    const res = await apply(base);
    assert.equal(res.code, 0, `the base resource is valid, but kubectl said: ${res.stderr}`);
  });

  it('accepts an Azure Blob storage, and the static website container $web', async () => {
    for (const container of ['oidc', '$web']) {
      const res = await apply(withValue(base, ['spec', 'storage'], { azureBlob: { ...AZURE, container } }));
      assert.equal(
        res.code,
        0,
        `azureBlob with container ${container} is valid, but kubectl said: ${res.stderr}`,
      );
    }
  });

  it("accepts a canary on the operator's own cluster, and another cluster as the source without one", async () => {
    const canary = { canary: { serviceAccountRef: { name: 'oidc-publisher-canary' } } };
    for (const [what, o] of [
      ['a canary', withValue(base, ['spec', 'verification'], canary)],
      [
        'a kubeconfig source',
        withValue(base, ['spec', 'source'], { kubeconfigSecretRef: { name: 'cluster-b' } }),
      ],
    ] as const) {
      const res = await apply(o);
      assert.equal(res.code, 0, `${what} is valid, but kubectl said: ${res.stderr}`);
    }
  });

  it(`has at least 15 cases (has ${CASES.length})`, () => {
    assert.ok(CASES.length >= 15);
  });

  for (const c of CASES) {
    it(`refuses ${c.name}`, async () => {
      const res = await apply(c.object);
      assert.notEqual(res.code, 0, `kubectl apply accepted ${c.name}`);
      assert.match(res.stderr, c.message, `kubectl's refusal of ${c.name} should match ${c.message}`);
    });
  }
});
