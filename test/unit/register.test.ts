/**
 * `register`'s pure decisions: the IAM calls that create a provider or bring
 * one in line, the trust policy, which certificate of a chain IAM takes a
 * thumbprint of (and when none is needed), and the arguments of the three
 * clouds. The IAM calls themselves are tested against moto in
 * test/e2e/register-aws.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runRegister } from '../../src/commands/register.ts';
import { renderCommand } from '../../src/core/federation-commands.ts';
import {
  clientIdChanges,
  findProviderArn,
  planProvider,
  providerPath,
  trustPolicy,
} from '../../src/core/iam-oidc-provider.ts';
import { parseServiceAccountRef } from '../../src/core/service-account-ref.ts';
import { sha1Thumbprint, thumbprintCertificate, thumbprintDecision } from '../../src/core/tls-thumbprint.ts';

const ISSUER = 'https://my-oidc-bucket.s3.eu-west-1.amazonaws.com/clusters/prod';
const ARN = 'arn:aws:iam::111122223333:oidc-provider/my-oidc-bucket.s3.eu-west-1.amazonaws.com/clusters/prod';
const T1 = '0123456789abcdef0123456789abcdef01234567';

describe('the IAM OIDC provider plan', () => {
  it('creates a missing provider with the client IDs and, only when needed, the thumbprint', () => {
    assert.deepEqual(
      planProvider(undefined, { url: ISSUER, clientIds: ['sts.amazonaws.com'], thumbprint: undefined }),
      [
        {
          action: 'CreateOpenIDConnectProvider',
          url: ISSUER,
          clientIds: ['sts.amazonaws.com'],
          thumbprints: [],
        },
      ],
    );
    assert.deepEqual(planProvider(undefined, { url: ISSUER, clientIds: ['a', 'b', 'a'], thumbprint: T1 }), [
      { action: 'CreateOpenIDConnectProvider', url: ISSUER, clientIds: ['a', 'b'], thumbprints: [T1] },
    ]);
  });

  it('makes no call for a provider already in line', () => {
    const existing = { arn: ARN, clientIds: ['sts.amazonaws.com'], thumbprints: [T1.toUpperCase()] };
    assert.deepEqual(
      planProvider(existing, { url: ISSUER, clientIds: ['sts.amazonaws.com'], thumbprint: T1 }),
      [],
    );
    assert.deepEqual(
      planProvider(existing, { url: ISSUER, clientIds: ['sts.amazonaws.com'], thumbprint: undefined }),
      [],
      'a thumbprint IAM no longer uses is left alone',
    );
  });

  it('adds the missing client IDs first, then removes the others', () => {
    const existing = { arn: ARN, clientIds: ['old', 'sts.amazonaws.com'], thumbprints: [] };
    assert.deepEqual(clientIdChanges(existing.clientIds, ['sts.amazonaws.com', 'new']), {
      add: ['new'],
      remove: ['old'],
    });
    assert.deepEqual(
      planProvider(existing, { url: ISSUER, clientIds: ['sts.amazonaws.com', 'new'], thumbprint: undefined }),
      [
        { action: 'AddClientIDToOpenIDConnectProvider', arn: ARN, clientId: 'new' },
        { action: 'RemoveClientIDFromOpenIDConnectProvider', arn: ARN, clientId: 'old' },
      ],
    );
  });

  it('puts a needed thumbprint in front of the others, keeping at most 5', () => {
    const others = ['1', '2', '3', '4', '5'].map((d) => d.repeat(40));
    assert.deepEqual(
      planProvider(
        { arn: ARN, clientIds: ['a'], thumbprints: others },
        { url: ISSUER, clientIds: ['a'], thumbprint: T1 },
      ),
      [
        {
          action: 'UpdateOpenIDConnectProviderThumbprint',
          arn: ARN,
          thumbprints: [T1, ...others.slice(0, 4)],
        },
      ],
    );
  });

  it("finds the issuer's provider by its ARN, the host without case", () => {
    const other =
      'arn:aws:iam::111122223333:oidc-provider/my-oidc-bucket.s3.eu-west-1.amazonaws.com/clusters/prod2';
    assert.equal(providerPath(ISSUER), 'my-oidc-bucket.s3.eu-west-1.amazonaws.com/clusters/prod');
    assert.equal(findProviderArn([other, ARN], ISSUER), ARN);
    assert.equal(findProviderArn([other], ISSUER), undefined);
    assert.equal(
      findProviderArn([ARN.replace('my-oidc-bucket', 'MY-OIDC-BUCKET')], ISSUER)?.length,
      ARN.length,
    );
    assert.equal(
      findProviderArn([ARN.replace('clusters/prod', 'Clusters/prod')], ISSUER),
      undefined,
      'the path keeps its case',
    );
  });
});

describe('the trust policy', () => {
  it('admits exactly the ServiceAccounts, for the audience, through the provider', () => {
    const refs = ['demo/app', 'jobs/batch'].map((s) => {
      const r = parseServiceAccountRef(s);
      assert.ok('ref' in r);
      return r.ref;
    });
    const path = providerPath(ISSUER);
    assert.deepEqual(trustPolicy(ARN, ISSUER, ['sts.amazonaws.com'], refs), {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Federated: ARN },
          Action: 'sts:AssumeRoleWithWebIdentity',
          Condition: {
            StringEquals: {
              [`${path}:aud`]: 'sts.amazonaws.com',
              [`${path}:sub`]: ['system:serviceaccount:demo:app', 'system:serviceaccount:jobs:batch'],
            },
          },
        },
      ],
    });
    const one = trustPolicy(ARN, ISSUER, ['a', 'b'], refs.slice(0, 1)).Statement[0]?.Condition.StringEquals;
    assert.deepEqual(one, { [`${path}:aud`]: ['a', 'b'], [`${path}:sub`]: 'system:serviceaccount:demo:app' });
  });

  it('refuses ServiceAccounts that are not NAMESPACE/NAME', () => {
    for (const bad of [
      'app',
      'demo/',
      '/app',
      'Demo/app',
      'demo/app/x',
      'demo:app',
      `${'a'.repeat(64)}/app`,
    ]) {
      assert.ok('problem' in parseServiceAccountRef(bad), bad);
    }
    assert.deepEqual(parseServiceAccountRef('demo/app.v1'), { ref: { namespace: 'demo', name: 'app.v1' } });
  });
});

describe('the thumbprint of a TLS chain', () => {
  const dir = mkdtempSync(join(tmpdir(), 'register-chain-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const openssl = (args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const key = (name: string) =>
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
  /** A certificate for `name`, signed by `issuer` (self-signed when absent). */
  function cert(name: string, ca: boolean, issuer?: string): X509Certificate {
    key(name);
    writeFileSync(
      join(dir, `${name}.ext`),
      ca
        ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n'
        : 'basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:issuer.example\n',
    );
    openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`]);
    const signer = issuer
      ? ['-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-set_serial', '7']
      : ['-key', `${name}.key`];
    openssl([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      ...signer,
      '-days',
      '30',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ]);
    return new X509Certificate(readFileSync(join(dir, `${name}.crt`)));
  }
  const root = cert('root', true);
  const intermediate = cert('intermediate', true, 'root');
  const leaf = cert('leaf', false, 'intermediate');
  const direct = cert('direct', false, 'root');
  const otherRoot = cert('other-root', true);

  it('is the hex SHA-1 of the certificate, as IAM writes it', () => {
    assert.equal(sha1Thumbprint(root), createHash('sha1').update(root.raw).digest('hex'));
    assert.match(sha1Thumbprint(root), /^[0-9a-f]{40}$/);
  });

  it('is of the top intermediate, or of the root when the server certificate is signed by it', () => {
    assert.equal(thumbprintCertificate([leaf, intermediate, root]), intermediate);
    assert.equal(thumbprintCertificate([leaf, intermediate]), intermediate);
    assert.equal(thumbprintCertificate([direct, root]), root);
    assert.equal(thumbprintCertificate([root]), root, 'a self-signed server certificate is its own');
  });

  it('is not needed when the chain ends at a root IAM trusts', () => {
    assert.deepEqual(thumbprintDecision([leaf, intermediate], [otherRoot, root]), {
      needed: false,
      root: 'CN=root',
    });
    assert.deepEqual(thumbprintDecision([leaf, intermediate, root], [root]), {
      needed: false,
      root: 'CN=root',
    });
    assert.deepEqual(thumbprintDecision([leaf, intermediate, root], [otherRoot]), {
      needed: true,
      thumbprint: sha1Thumbprint(intermediate),
      certificate: 'CN=intermediate',
    });
  });
});

/** runRegister with captured output and no network: anything past the arguments fails the test. */
async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runRegister(
    argv,
    {},
    {
      stdout: (t) => {
        stdout += t;
      },
      stderr: (t) => {
        stderr += t;
      },
      checkIssuer: () => Promise.reject(new Error('the issuer must not be read')),
      iam: () => Promise.reject(new Error('IAM must not be called')),
      roots: () => [],
    },
  );
  return { code, stdout, stderr };
}

describe('register arguments', () => {
  it('refuses a non-https issuer with exit 2 before reading anything', async () => {
    for (const issuer of [
      'http://issuer.example/cluster',
      'ftp://issuer.example',
      'issuer.example',
      'https://issuer.example/x?y=1',
    ]) {
      const r = await run(['aws', '--issuer', issuer]);
      assert.equal(r.code, 2, `${issuer}: ${r.stderr}`);
      assert.match(r.stderr, /^oidc-publisher register aws: --issuer: /);
      assert.equal(r.stderr.split('\n').length, 2, 'one line');
    }
  });

  it('names every problem at once, and needs a cloud', async () => {
    const r = await run(['gcp', '--issuer', 'http://x', '--pool', 'P']);
    assert.equal(r.code, 2);
    for (const flag of ['--issuer', '--project:', '--project-number:', '--pool:', '--provider:'])
      assert.ok(r.stderr.includes(flag), r.stderr);
    assert.equal((await run([])).code, 2);
    assert.match((await run(['oci'])).stderr, /"oci" is not a cloud: aws, gcp or azure/);
    assert.match(
      (await run(['azure', '--issuer', ISSUER, '--identity', 'id'])).stderr,
      /--identity and --resource-group: required/,
    );
    assert.match((await run(['aws', '--issuer', ISSUER, '--unknown'])).stderr, /Unknown option '--unknown'/);
  });

  it('prints the usage of each cloud with --help', async () => {
    for (const cloud of ['aws', 'gcp', 'azure']) {
      const r = await run([cloud, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`^oidc-publisher register ${cloud}: `));
    }
    assert.match((await run(['--help'])).stdout, /register aws .*register gcp .*register azure/s);
  });
});

/** The arguments /bin/sh reads from the text of one command. */
function shellCommand(text: string): string[] {
  const out = execFileSync('sh', ['-c', `set -- ${text.trim()}\nprintf '%s\\0' "$@"`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

/** The argument lists /bin/sh reads from printed commands, each starting a line. */
function shellArgv(text: string): string[][] {
  return text
    .split(/\n(?=\S)/)
    .filter((c) => c.trim() !== '')
    .map(shellCommand);
}

describe('shell text', () => {
  it('reads back as the same arguments in /bin/sh, whatever they hold', () => {
    const hostile = [
      "it's",
      'say "hi"',
      '$HOME and $(id) and `id`',
      'back\\slash',
      'bang!',
      'two\nlines',
      'a\'b"c$d',
      '',
      "--flag=it's $HOME",
      '--flag=',
    ];
    const argv = ['printf', ...hostile, '--x', ...hostile];
    assert.deepEqual(shellCommand(renderCommand(argv)), argv);
  });
});

describe('register gcp and register azure print the documented commands', () => {
  it('gcp: the pool, its OIDC provider for the issuer, a binding per ServiceAccount, the credential configuration', async () => {
    const r = await run([
      'gcp',
      '--issuer',
      ISSUER,
      '--project',
      'my-project',
      '--project-number',
      '123456789012',
      '--pool',
      'prod-cluster',
      '--provider',
      'kubernetes',
      '--service-account',
      'demo/app',
      '--service-account',
      'jobs/batch',
      '--role',
      'roles/storage.objectViewer',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const pool = 'projects/123456789012/locations/global/workloadIdentityPools/prod-cluster';
    assert.deepEqual(shellArgv(r.stdout), [
      [
        'gcloud',
        'iam',
        'workload-identity-pools',
        'create',
        'prod-cluster',
        '--project=my-project',
        '--location=global',
      ],
      [
        'gcloud',
        'iam',
        'workload-identity-pools',
        'providers',
        'create-oidc',
        'kubernetes',
        '--project=my-project',
        '--location=global',
        '--workload-identity-pool=prod-cluster',
        `--issuer-uri=${ISSUER}`,
        `--allowed-audiences=https://iam.googleapis.com/${pool}/providers/kubernetes`,
        "--attribute-mapping=google.subject=assertion.sub,attribute.namespace=assertion['kubernetes.io']['namespace'],attribute.service_account_name=assertion['kubernetes.io']['serviceaccount']['name']",
        "--attribute-condition=assertion['kubernetes.io']['namespace'] in ['demo', 'jobs']",
      ],
      [
        'gcloud',
        'projects',
        'add-iam-policy-binding',
        'my-project',
        '--role=roles/storage.objectViewer',
        `--member=principal://iam.googleapis.com/${pool}/subject/system:serviceaccount:demo:app`,
      ],
      [
        'gcloud',
        'projects',
        'add-iam-policy-binding',
        'my-project',
        '--role=roles/storage.objectViewer',
        `--member=principal://iam.googleapis.com/${pool}/subject/system:serviceaccount:jobs:batch`,
      ],
      [
        'gcloud',
        'iam',
        'workload-identity-pools',
        'create-cred-config',
        `${pool}/providers/kubernetes`,
        '--credential-source-file=/var/run/service-account/token',
        '--credential-source-type=text',
        '--output-file=credential-configuration.json',
      ],
    ]);
  });

  it('azure: a federated identity credential per ServiceAccount on a managed identity, or on an app', async () => {
    const identity = await run([
      'azure',
      '--issuer',
      ISSUER,
      '--identity',
      'demo-app',
      '--resource-group',
      'my-rg',
      '--service-account',
      'demo/app',
      '--credential-prefix',
      'prod-cluster',
    ]);
    assert.equal(identity.code, 0, identity.stderr);
    assert.deepEqual(shellArgv(identity.stdout), [
      [
        'az',
        'identity',
        'federated-credential',
        'create',
        '--name',
        'prod-cluster-demo-app',
        '--identity-name',
        'demo-app',
        '--resource-group',
        'my-rg',
        '--issuer',
        ISSUER,
        '--subject',
        'system:serviceaccount:demo:app',
        '--audiences',
        'api://AzureADTokenExchange',
      ],
    ]);
    const appId = '00000000-0000-0000-0000-000000000000';
    const app = await run([
      'azure',
      '--issuer',
      ISSUER,
      '--app-id',
      appId,
      '--service-account',
      'demo/app',
      '--service-account',
      'jobs/batch.v2',
    ]);
    assert.equal(app.code, 0, app.stderr);
    const commands = shellArgv(app.stdout);
    assert.equal(commands.length, 2);
    assert.deepEqual(commands[1]?.slice(0, 8), [
      'az',
      'ad',
      'app',
      'federated-credential',
      'create',
      '--id',
      appId,
      '--parameters',
    ]);
    assert.deepEqual(JSON.parse(commands[1]?.[8] ?? ''), {
      name: 'jobs-batch-v2',
      issuer: ISSUER,
      subject: 'system:serviceaccount:jobs:batch.v2',
      description: 'Kubernetes ServiceAccount jobs/batch.v2',
      audiences: ['api://AzureADTokenExchange'],
    });
  });
});

describe('IAM errors', () => {
  it('are CLOUD_ACCESS_DENIED for refused or missing credentials, CLOUD_ERROR otherwise, by name', async () => {
    const { iamError } = await import('../../src/commands/iam-providers.ts');
    const sdk = (name: string, status?: number, message = `${name} happened`) =>
      Object.assign(new Error(message), {
        name,
        ...(status ? { $metadata: { httpStatusCode: status } } : {}),
      });
    for (const name of [
      'AccessDenied',
      'InvalidClientTokenId',
      'SignatureDoesNotMatch',
      'ExpiredToken',
      'CredentialsProviderError',
    ]) {
      assert.equal(iamError('ListOpenIDConnectProviders', sdk(name)).code, 'CLOUD_ACCESS_DENIED', name);
    }
    assert.equal(iamError('x', sdk('Whatever', 403)).code, 'CLOUD_ACCESS_DENIED');
    const err = iamError(
      'CreateOpenIDConnectProvider',
      sdk('LimitExceeded', 409, 'Cannot exceed quota\nsecond line'),
    );
    assert.equal(err.code, 'CLOUD_ERROR');
    assert.equal(
      err.message,
      'IAM CreateOpenIDConnectProvider: LimitExceeded (HTTP 409): Cannot exceed quota',
    );
    assert.equal(iamError('x', sdk('ServiceFailure', 500)).code, 'CLOUD_ERROR');
  });
});
