/**
 * `oidc-publisher register aws` end to end: the command run as a user runs it
 * (src/cli.ts, its own environment, AWS_ENDPOINT_URL_IAM), against the bed's
 * real published issuer on MinIO over HTTPS (the bed's CA, so IAM would need a
 * thumbprint) and moto's server as a stand-in for IAM, which no real server
 * here offers. What IAM holds is read back through the AWS SDK.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AddClientIDToOpenIDConnectProviderCommand,
  GetOpenIDConnectProviderCommand,
  IAMClient,
  ListOpenIDConnectProvidersCommand,
} from '@aws-sdk/client-iam';
import type { Bed } from '../bed/bed.ts';
import { type Moto, startMoto } from '../bed/moto.ts';
import { useBed } from '../bed/shared.ts';
import { ROOT } from './harness.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  lines: string[];
}

const ACCESS_KEY = 'AKIAREGISTERTEST0001';
const SECRET_KEY = `register-secret-${randomBytes(8).toString('hex')}`;

describe('oidc-publisher register aws: the IAM OIDC provider of the published issuer (moto as IAM)', () => {
  const useShared = useBed();
  let bed: Bed;
  let moto: Moto | undefined;
  let iam: IAMClient;
  const home = mkdtempSync(join(tmpdir(), 'oidc-register-'));

  const spawnCli = (args: string[], env: Record<string, string>): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [join(ROOT, 'src', 'cli.ts'), ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '', HOME: home, NODE_EXTRA_CA_CERTS: bed.state.caFile, ...env },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString('utf8');
      });
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString('utf8');
      });
      child.on('error', reject);
      child.on('exit', (code) =>
        resolve({ code: code ?? 128, stdout, stderr, lines: stdout.split('\n').filter((l) => l !== '') }),
      );
    });
  const motoOf = (): Moto => {
    if (!moto) throw new Error('moto is not running');
    return moto;
  };
  const register = (args: string[]) =>
    spawnCli(['register', 'aws', ...args], {
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: SECRET_KEY,
      AWS_ENDPOINT_URL_IAM: motoOf().endpoint,
    });
  const show = (r: Run) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  const providers = async () =>
    ((await iam.send(new ListOpenIDConnectProvidersCommand({}))).OpenIDConnectProviderList ?? []).map(
      (p) => p.Arn,
    );
  const provider = async (arn: string) => {
    const p = await iam.send(new GetOpenIDConnectProviderCommand({ OpenIDConnectProviderArn: arn }));
    return { clientIds: p.ClientIDList ?? [], thumbprints: p.ThumbprintList ?? [] };
  };
  /** No credential in what the command printed. */
  const assertNoSecrets = (r: Run) => {
    assert.ok(!`${r.stdout}${r.stderr}`.includes(SECRET_KEY), 'the secret key is never printed');
    assert.ok(!`${r.stdout}${r.stderr}`.includes(ACCESS_KEY), 'nor the access key');
  };

  let arn: string;
  let thumbprint: string;
  let mismatched: string;

  before(async () => {
    bed = useShared();
    moto = await startMoto();
    iam = new IAMClient({
      region: 'us-east-1',
      endpoint: moto.endpoint,
      credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    });
    arn = `arn:aws:iam::${moto.account}:oidc-provider/${bed.issuer.replace('https://', '')}`;
    // The bed's MinIO serves a certificate of the bed's CA, signed by it directly: IAM would need
    // the thumbprint of that root.
    thumbprint = createHash('sha1')
      .update(new X509Certificate(readFileSync(bed.state.caFile)).raw)
      .digest('hex');
    // The cluster's issuer published where its URL points, as the operator would, and a copy of
    // the same documents under another prefix, whose discovery document names another issuer.
    const s3 = bed.state.s3;
    const publish = (prefix: string) =>
      spawnCli(
        [
          'publish',
          '--kubeconfig',
          bed.adminKubeconfig,
          '--issuer',
          bed.issuer,
          '--to',
          `s3://${s3.bucket}/${prefix}`,
          '--s3-endpoint',
          s3.endpoint,
          '--s3-region',
          s3.region,
          '--s3-force-path-style',
        ],
        { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey },
      );
    const other = `public/register-${randomBytes(4).toString('hex')}`;
    mismatched = `${s3.endpoint}/${s3.bucket}/${other}`;
    for (const prefix of ['public/cluster-a', other]) {
      const r = await publish(prefix);
      assert.equal(r.code, 0, `publish to ${prefix}\n${show(r)}`);
    }
  });

  after(async () => {
    iam?.destroy();
    await moto?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  it('refuses a non-https issuer with exit 2 and creates nothing', async () => {
    const r = await register(['--issuer', bed.issuer.replace('https://', 'http://')]);
    assert.equal(r.code, 2, show(r));
    assert.match(r.stderr, /^oidc-publisher register aws: --issuer: .* is not https/);
    assert.equal(r.stdout, '');
    assert.deepEqual(await providers(), []);
  });

  it('refuses an issuer whose discovery document names another issuer, before anything is created', async () => {
    const r = await register(['--issuer', mismatched]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^oidc-publisher register aws: ISSUER_UNVERIFIED: .* names the issuer .*, not /);
    assert.equal(r.stderr.split('\n').length, 2, 'one line');
    assert.deepEqual(await providers(), [], 'moto holds no provider');
  });

  it('with --dry-run prints the create call and writes nothing', async () => {
    const r = await register(['--issuer', bed.issuer, '--dry-run']);
    assert.equal(r.code, 0, show(r));
    assert.match(
      r.lines.at(-1) ?? '',
      new RegExp(
        `^would call CreateOpenIDConnectProvider Url=${bed.issuer} ClientIDList=sts.amazonaws.com ThumbprintList=${thumbprint}$`,
      ),
    );
    assert.deepEqual(await providers(), [], 'moto still holds no provider');
    assertNoSecrets(r);
  });

  it('creates the provider with sts.amazonaws.com and the thumbprint of the bed CA', async () => {
    const r = await register(['--issuer', bed.issuer]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.lines[0] ?? '', new RegExp(`^verified ${bed.issuer}: .* serves 1 key$`));
    assert.match(
      r.lines[1] ?? '',
      new RegExp(`^thumbprint ${thumbprint} of CN=oidc-publisher test bed CA: `),
    );
    assert.equal(r.lines[2], `created ${arn} (client IDs sts.amazonaws.com; thumbprints ${thumbprint})`);
    assert.deepEqual(await providers(), [arn]);
    assert.deepEqual(await provider(arn), { clientIds: ['sts.amazonaws.com'], thumbprints: [thumbprint] });
    assertNoSecrets(r);
  });

  it('changes nothing on a second run and says so', async () => {
    const r = await register(['--issuer', bed.issuer]);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.lines.length, 3, show(r));
    assert.equal(r.lines[2], `no change ${arn} (client IDs sts.amazonaws.com; thumbprints ${thumbprint})`);
    assert.deepEqual(await provider(arn), { clientIds: ['sts.amazonaws.com'], thumbprints: [thumbprint] });
  });

  it('repairs drifted client IDs, a line per change (and --dry-run only says what it would do)', async () => {
    await iam.send(
      new AddClientIDToOpenIDConnectProviderCommand({ OpenIDConnectProviderArn: arn, ClientID: 'stale' }),
    );
    const args = ['--issuer', bed.issuer, '--audience', 'sts.amazonaws.com', '--audience', 'minio-sts'];
    const dry = await register([...args, '--dry-run']);
    assert.equal(dry.code, 0, show(dry));
    assert.deepEqual(dry.lines.slice(2), [
      `would call AddClientIDToOpenIDConnectProvider OpenIDConnectProviderArn=${arn} ClientID=minio-sts`,
      `would call RemoveClientIDFromOpenIDConnectProvider OpenIDConnectProviderArn=${arn} ClientID=stale`,
    ]);
    assert.deepEqual(
      (await provider(arn)).clientIds,
      ['sts.amazonaws.com', 'stale'],
      'the dry run wrote nothing',
    );
    const r = await register(args);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(r.lines.slice(2), [
      `added client ID minio-sts to ${arn}`,
      `removed client ID stale from ${arn}`,
    ]);
    assert.deepEqual(await provider(arn), {
      clientIds: ['sts.amazonaws.com', 'minio-sts'],
      thumbprints: [thumbprint],
    });
    const again = await register(args);
    assert.match(again.lines[2] ?? '', /^no change /, show(again));
  });

  it('prints the trust policy that admits exactly two ServiceAccounts', async () => {
    const r = await register([
      '--issuer',
      bed.issuer,
      '--service-account',
      'demo/app',
      '--service-account',
      'jobs/batch',
    ]);
    assert.equal(r.code, 0, show(r));
    const at = r.stdout.indexOf('{');
    assert.match(r.stdout.slice(0, at), /trust policy of a role for demo\/app, jobs\/batch:\n$/);
    const path = bed.issuer.replace('https://', '');
    assert.deepEqual(JSON.parse(r.stdout.slice(at)), {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Federated: arn },
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
  });
});
