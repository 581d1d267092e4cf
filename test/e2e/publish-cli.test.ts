/**
 * `oidc-publisher publish` end to end against the shared bed: the command run
 * as a user would run it (src/cli.ts on this Node, its own environment), the
 * results observed from outside: anonymous HTTPS GETs of the public URLs,
 * MinIO's own request counts, the files on disk.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { createS3Client } from '../bed/s3.ts';
import { useBed } from '../bed/shared.ts';
import { applyYaml, ROOT } from './harness.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  lines: string[];
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('oidc-publisher publish: one-shot publishing from the command line', () => {
  const useShared = useBed();
  let bed: Bed;
  /** A HOME of its own, so no ~/.aws or ~/.kube of the machine leaks in. */
  const home = mkdtempSync(join(tmpdir(), 'oidc-publish-cli-'));
  const run = (args: string[], env: Record<string, string> = {}): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [join(ROOT, 'src', 'cli.ts'), 'publish', ...args], {
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
  const show = (r: Run) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  const unique = () => `cli-${randomBytes(4).toString('hex')}`;

  before(() => {
    bed = useShared();
  });
  after(() => rmSync(home, { recursive: true, force: true }));

  /** Asserts the published pair at `base` (anonymous GETs) is the bed's issuer, with jwksURI, and returns them. */
  async function assertPublished(base: string, jwksURI: string) {
    const discovery = await request(`${base}/.well-known/openid-configuration`, { ca: bed.ca });
    assert.equal(discovery.status, 200, `anonymous GET of the discovery document: ${discovery.text()}`);
    assert.equal(discovery.headers['content-type'], 'application/json');
    assert.equal(discovery.headers['cache-control'], 'public, max-age=300');
    const doc = discovery.json() as { issuer: string; jwks_uri: string };
    assert.equal(doc.issuer, bed.issuer);
    assert.equal(doc.jwks_uri, jwksURI, 'jwks_uri is rewritten to --jwks-uri');
    const jwks = await request(`${base}/openid/v1/jwks`, { ca: bed.ca });
    assert.equal(jwks.status, 200);
    assert.equal(jwks.headers['content-type'], 'application/jwk-set+json');
    const keys = (jwks.json() as { keys: { kid: string; d?: string }[] }).keys;
    assert.deepEqual(
      keys.map((k) => k.kid),
      [bed.signingKey.kid],
    );
    assert.ok(
      keys.every((k) => k.d === undefined),
      'no private key material',
    );
    return { discovery: discovery.body, jwks: jwks.body };
  }

  function assertLines(r: Run, pattern: RegExp, count = 2) {
    assert.equal(r.code, 0, show(r));
    assert.equal(r.lines.length, count, `one line per object\n${show(r)}`);
    for (const l of r.lines) assert.match(l, pattern, show(r));
  }

  /** The PutObject requests MinIO counted while `action` ran. */
  async function putsDuring<T>(action: () => Promise<T>): Promise<{ puts: number; result: T }> {
    const before = (await bed.s3RequestCounts()).get('PutObject') ?? 0;
    const result = await action();
    const after = (await bed.s3RequestCounts()).get('PutObject') ?? 0;
    return { puts: after - before, result };
  }

  /**
   * Runs `args` until MinIO counts no PutObject during a run (at most 3 times): other suites share
   * this MinIO, and a run of ours that writes would show its PUTs on every attempt.
   */
  async function runWithoutPuts(args: string[], env: Record<string, string>): Promise<Run> {
    let last: { puts: number; result: Run } | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
      last = await putsDuring(() => run(args, env));
      assert.equal(last.result.code, 0, show(last.result));
      if (last.puts === 0) return last.result;
    }
    assert.fail(`PutObject requests during every run: ${last?.puts}\n${last && show(last.result)}`);
  }

  describe('to S3 (MinIO)', () => {
    let s3Args: (prefix: string) => string[];
    let s3Env: Record<string, string>;
    let publicBase: (prefix: string) => string;

    before(() => {
      const s3 = bed.state.s3;
      s3Env = { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
      publicBase = (prefix) => `${s3.endpoint}/${s3.bucket}/${prefix}`;
      s3Args = (prefix) => [
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
        '--jwks-uri',
        `${publicBase(prefix)}/openid/v1/jwks`,
      ];
    });

    async function keysUnder(prefix: string): Promise<string[]> {
      const client = createS3Client(bed.state.s3, bed.ca);
      try {
        const res = await client.send(
          new ListObjectsV2Command({ Bucket: bed.state.s3.bucket, Prefix: prefix }),
        );
        return (res.Contents ?? []).map((o) => o.Key ?? '');
      } finally {
        client.destroy();
      }
    }

    const prefix = `public/${unique()}`;

    it('publishes both documents on the first run, JWKS first, readable anonymously', async () => {
      const r = await run(s3Args(prefix), s3Env);
      assertLines(
        r,
        /^published s3:\/\/oidc-bed\/public\/cli-[0-9a-f]+\/\S+ \(missing\) sha256=[0-9a-f]{64} content-type=/,
      );
      assert.match(r.lines[0] ?? '', /openid\/v1\/jwks .*content-type=application\/jwk-set\+json/);
      assert.match(r.lines[1] ?? '', /\.well-known\/openid-configuration .*content-type=application\/json /);
      const docs = await assertPublished(publicBase(prefix), `${publicBase(prefix)}/openid/v1/jwks`);
      assert.match(
        r.lines[0] ?? '',
        new RegExp(`sha256=${sha256(docs.jwks)} `),
        'the printed hash is of the bytes',
      );
      assert.match(r.lines[1] ?? '', new RegExp(`sha256=${sha256(docs.discovery)} `));
    });

    it('writes nothing on a second run (no PutObject counted by MinIO) and says up to date', async () => {
      const r = await runWithoutPuts(s3Args(prefix), s3Env);
      assertLines(r, /^up to date s3:\/\/oidc-bed\/public\/cli-[0-9a-f]+\/\S+ sha256=[0-9a-f]{64} /);
      await assertPublished(publicBase(prefix), `${publicBase(prefix)}/openid/v1/jwks`);
    });

    it('with --dry-run prints what it would write and why, and writes nothing', async () => {
      const fresh = `public/${unique()}`;
      const r = await runWithoutPuts([...s3Args(fresh), '--dry-run'], s3Env);
      assertLines(
        r,
        /^would publish s3:\/\/oidc-bed\/public\/cli-[0-9a-f]+\/\S+ \(missing\) sha256=[0-9a-f]{64} content-type=\S+ /,
      );
      assert.deepEqual(await keysUnder(fresh), [], 'the new prefix stays empty');
      assert.equal((await request(`${publicBase(fresh)}/openid/v1/jwks`, { ca: bed.ca })).status, 404);
      // And over an existing prefix whose Cache-Control would change: the reason is given.
      const changed = await runWithoutPuts(
        [...s3Args(prefix), '--dry-run', '--cache-control', 'public, max-age=60'],
        s3Env,
      );
      assertLines(changed, /^would publish .* \(headers changed\) .* cache-control="public, max-age=60"$/);
    });

    it('with a wrong --issuer exits 1 with one IssuerMismatch line and writes nothing', async () => {
      const fresh = `public/${unique()}`;
      const args = s3Args(fresh);
      args[args.indexOf('--issuer') + 1] = `${bed.issuer}-elsewhere`;
      const r = await run(args, s3Env);
      assert.equal(r.code, 1, show(r));
      assert.equal(r.stdout, '', 'no object line');
      assert.match(
        r.stderr,
        /^oidc-publisher publish: IssuerMismatch: the API server's issuer "[^"]+" differs from --issuer "[^"]+-elsewhere"; nothing was written\n$/,
      );
      assert.deepEqual(await keysUnder(fresh), [], 'nothing was written under the prefix');
    });

    it('exits 1 with STORAGE_ACCESS_DENIED and one line when the credentials are wrong', async () => {
      const r = await run(s3Args(`public/${unique()}`), { ...s3Env, AWS_SECRET_ACCESS_KEY: 'not-the-key' });
      assert.equal(r.code, 1, show(r));
      assert.match(
        r.stderr,
        /^oidc-publisher publish: STORAGE_ACCESS_DENIED: HEAD s3:\/\/oidc-bed\/\S+: access denied/,
      );
      assert.equal(r.stderr.split('\n').length, 2, 'a single line');
    });
  });

  describe('to GCS (fake-gcs-server)', () => {
    const prefix = unique();
    let args: string[];
    let publicBase: string;

    before(() => {
      const gcs = bed.state.gcs;
      assert.ok(gcs, 'the shared bed runs fake-gcs-server');
      publicBase = `${gcs.endpoint}/${gcs.bucket}/${prefix}`;
      args = [
        '--kubeconfig',
        bed.adminKubeconfig,
        '--issuer',
        bed.issuer,
        '--to',
        `gs://${gcs.bucket}/${prefix}`,
        '--gcs-endpoint',
        gcs.endpoint,
        '--jwks-uri',
        `${publicBase}/openid/v1/jwks`,
      ];
    });

    it('publishes both documents on the first run, readable anonymously', async () => {
      const r = await run(args);
      assertLines(r, /^published gs:\/\/oidc-bed\/cli-[0-9a-f]+\/\S+ \(missing\) sha256=[0-9a-f]{64} /);
      await assertPublished(publicBase, `${publicBase}/openid/v1/jwks`);
    });

    it('writes nothing on a second run (the objects keep their generation)', async () => {
      const gcs = bed.state.gcs;
      assert.ok(gcs);
      const generation = async () => {
        const res = await request(
          `${gcs.endpoint}/storage/v1/b/${gcs.bucket}/o/${encodeURIComponent(`${prefix}/openid/v1/jwks`)}`,
          { ca: bed.ca },
        );
        return (res.json() as { generation?: string }).generation;
      };
      const before = await generation();
      assert.ok(before, 'the JWKS has a generation');
      const r = await run(args);
      assertLines(r, /^up to date gs:\/\/oidc-bed\/cli-[0-9a-f]+\/\S+ sha256=[0-9a-f]{64} /);
      assert.equal(await generation(), before, 'the object was not rewritten');
    });

    it('with --dry-run writes nothing under a new prefix', async () => {
      const fresh = unique();
      const dry = args.map((a) => a.replace(`/${prefix}`, `/${fresh}`));
      const r = await run([...dry, '--dry-run']);
      assertLines(r, /^would publish gs:\/\/oidc-bed\/cli-[0-9a-f]+\/\S+ \(missing\) /);
      const gcs = bed.state.gcs;
      const list = await request(
        `${gcs?.endpoint}/storage/v1/b/${gcs?.bucket}/o?prefix=${encodeURIComponent(`${fresh}/`)}`,
        { ca: bed.ca },
      );
      assert.equal(list.status, 200);
      assert.deepEqual((list.json() as { items?: unknown[] }).items ?? [], [], 'the new prefix stays empty');
    });
  });

  describe('to a directory (file://)', () => {
    let dir: string;
    let kubeconfig: string;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'oidc-publish-file-'));
      // A least-privilege reader, through an exec plugin: the user's own kubeconfig is trusted
      // (the operator refuses exec in kubeconfigs from Secrets).
      await bed.serviceAccountKubeconfig('publish-cli', 'reader');
      await applyYaml(
        bed,
        `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: publish-cli-reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:service-account-issuer-discovery
subjects:
- kind: ServiceAccount
  name: reader
  namespace: publish-cli
`,
      );
      const token = await bed.mintToken({ namespace: 'publish-cli', serviceAccount: 'reader' });
      const credential = join(home, 'credential.json');
      writeFileSync(
        credential,
        JSON.stringify({
          apiVersion: 'client.authentication.k8s.io/v1',
          kind: 'ExecCredential',
          status: { token },
        }),
      );
      const marker = join(home, 'exec-ran');
      kubeconfig = join(home, 'exec.kubeconfig');
      writeFileSync(
        kubeconfig,
        `apiVersion: v1
kind: Config
clusters:
- name: bed
  cluster:
    server: ${bed.apiserverURL}
    certificate-authority: ${bed.state.caFile}
users:
- name: exec-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: sh
      args: ["-c", "touch ${marker} && cat ${credential}"]
      interactiveMode: Never
contexts:
- name: bed
  context: {cluster: bed, user: exec-user}
current-context: bed
`,
      );
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    const args = () => ['--kubeconfig', kubeconfig, '--issuer', bed.issuer, '--to', `file://${dir}`];

    it('publishes both files with the rendered content, through an exec-plugin kubeconfig', async () => {
      const r = await run(args());
      assertLines(r, /^published \/\S+ \(missing\) sha256=[0-9a-f]{64} /);
      assert.ok(readdirSync(home).includes('exec-ran'), 'the exec plugin ran');
      const discovery = readFileSync(join(dir, '.well-known', 'openid-configuration'));
      const doc = JSON.parse(discovery.toString('utf8')) as { issuer: string; jwks_uri: string };
      assert.equal(doc.issuer, bed.issuer);
      assert.equal(doc.jwks_uri, `${bed.issuer}/openid/v1/jwks`, 'the default jwks_uri');
      const jwks = readFileSync(join(dir, 'openid', 'v1', 'jwks'));
      assert.deepEqual(
        (JSON.parse(jwks.toString('utf8')) as { keys: { kid: string }[] }).keys.map((k) => k.kid),
        [bed.signingKey.kid],
      );
      // The files are exactly what the S3 run published for the same issuer and jwks_uri would be:
      // the printed hash is of the bytes on disk.
      assert.match(r.stdout, new RegExp(`openid/v1/jwks \\(missing\\) sha256=${sha256(jwks)} `));
      assert.match(r.stdout, new RegExp(`openid-configuration \\(missing\\) sha256=${sha256(discovery)} `));
      const meta = JSON.parse(
        readFileSync(join(dir, '.oidc-publisher', 'openid', 'v1', 'jwks.json'), 'utf8'),
      );
      assert.deepEqual(meta, {
        contentType: 'application/jwk-set+json',
        cacheControl: 'public, max-age=300',
        sha256: sha256(jwks),
      });
    });

    it('writes nothing on a second run', async () => {
      const file = join(dir, 'openid', 'v1', 'jwks');
      const inode = statSync(file).ino;
      const r = await run(args());
      assertLines(r, /^up to date \/\S+ sha256=[0-9a-f]{64} /);
      assert.equal(statSync(file).ino, inode, 'the file was not replaced');
    });

    it('with --dry-run creates nothing in an empty directory', async () => {
      const empty = join(dir, '..', `${dir.split('/').at(-1)}-dry`);
      mkdirSync(empty);
      try {
        const r = await run([
          '--kubeconfig',
          kubeconfig,
          '--issuer',
          bed.issuer,
          '--to',
          `file://${empty}`,
          '--dry-run',
        ]);
        assertLines(r, /^would publish \/\S+ \(missing\) /);
        assert.deepEqual(readdirSync(empty), []);
      } finally {
        rmSync(empty, { recursive: true, force: true });
      }
    });

    it('with a wrong --issuer exits 1 with one IssuerMismatch line and writes nothing', async () => {
      const empty = mkdtempSync(join(tmpdir(), 'oidc-publish-mismatch-'));
      try {
        const r = await run([
          '--kubeconfig',
          kubeconfig,
          '--issuer',
          'https://other.example.com',
          '--to',
          `file://${empty}`,
        ]);
        assert.equal(r.code, 1, show(r));
        assert.match(
          r.stderr,
          /^oidc-publisher publish: IssuerMismatch: .*"https:\/\/other\.example\.com"; nothing was written\n$/,
        );
        assert.deepEqual(readdirSync(empty), []);
      } finally {
        rmSync(empty, { recursive: true, force: true });
      }
    });
  });

  it('exits 2 for bad arguments, before reading anything', async () => {
    const r = await run(['--issuer', 'http://not-https', '--to', 's3://Bad_Bucket']);
    assert.equal(r.code, 2, show(r));
    assert.match(
      r.stderr,
      /^oidc-publisher publish: .*--to: "Bad_Bucket" is not an S3 bucket name.*--issuer: /,
    );
  });
});
