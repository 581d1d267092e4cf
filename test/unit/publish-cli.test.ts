/**
 * `oidc-publisher publish`: the arguments (targets, the CRD's rules for the
 * issuer, jwks_uri, Cache-Control, buckets and prefixes), its output lines and
 * its exit codes for bad arguments. test/e2e/publish-cli.test.ts runs it
 * against the bed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  describeObject,
  objectLocation,
  type PublishArgs,
  type PublishIo,
  parsePublishArgs,
  runPublish,
} from '../../src/commands/publish.ts';
import { standaloneSpec } from '../../src/core/standalone.ts';
import { OidcPublisherError } from '../../src/errors.ts';

const ISSUER = 'https://issuer.example.com/clusters/prod';

function parsed(argv: string[], env: NodeJS.ProcessEnv = {}): PublishArgs {
  const out = parsePublishArgs(argv, env);
  assert.equal(out.help, false, 'expected arguments, got --help');
  return out as PublishArgs;
}

function problems(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parsePublishArgs(argv, env);
  } catch (err) {
    assert.ok(err instanceof OidcPublisherError, `expected an OidcPublisherError, got ${String(err)}`);
    assert.equal(err.code, 'CONFIG_INVALID');
    return err.message;
  }
  assert.fail(`expected ${JSON.stringify(argv)} to be refused`);
}

describe('publish arguments: targets', () => {
  it('reads s3://bucket/prefix with the region, endpoint and path style flags', () => {
    const a = parsed([
      '--issuer',
      ISSUER,
      '--to',
      's3://my-bucket/clusters/prod',
      '--s3-region',
      'eu-west-1',
      '--s3-endpoint',
      'https://minio.example.com:9000',
      '--s3-force-path-style',
      '--kubeconfig',
      '/home/me/.kube/config',
    ]);
    assert.deepEqual(a.target, {
      kind: 'storage',
      storage: {
        kind: 's3',
        bucket: 'my-bucket',
        region: 'eu-west-1',
        prefix: 'clusters/prod',
        forcePathStyle: true,
        endpoint: 'https://minio.example.com:9000',
      },
    });
    assert.equal(a.spec.storage.prefix, 'clusters/prod');
    assert.equal(a.kubeconfig, '/home/me/.kube/config');
    assert.equal(a.dryRun, false);
  });

  it('takes the S3 region from AWS_REGION, then AWS_DEFAULT_REGION, and requires one', () => {
    const base = ['--issuer', ISSUER, '--to', 's3://my-bucket'];
    const storage = (env: NodeJS.ProcessEnv) => {
      const t = parsed(base, env).target;
      assert.ok(t.kind === 'storage' && t.storage.kind === 's3');
      return t.storage;
    };
    assert.equal(storage({ AWS_REGION: 'us-west-2', AWS_DEFAULT_REGION: 'eu-west-1' }).region, 'us-west-2');
    assert.equal(storage({ AWS_DEFAULT_REGION: 'eu-west-1' }).region, 'eu-west-1');
    assert.equal(storage({ AWS_REGION: 'us-west-2' }).prefix, '', 'no prefix after the bucket');
    assert.match(problems(base), /--s3-region: required/);
  });

  it('reads gs://bucket/prefix with --gcs-endpoint', () => {
    const a = parsed([
      '--issuer',
      ISSUER,
      '--to',
      'gs://my_bucket/a/b/',
      '--gcs-endpoint',
      'http://localhost:4443',
    ]);
    assert.deepEqual(a.target, {
      kind: 'storage',
      storage: { kind: 'gcs', bucket: 'my_bucket', prefix: 'a/b/', endpoint: 'http://localhost:4443' },
    });
  });

  it('reads azblob://account/container/prefix, with the public endpoint or an emulator of that account', () => {
    const a = parsed(['--issuer', ISSUER, '--to', 'azblob://acct1/issuer/prod']);
    assert.deepEqual(a.target, {
      kind: 'storage',
      storage: {
        kind: 'azureBlob',
        accountURL: 'https://acct1.blob.core.windows.net',
        account: 'acct1',
        container: 'issuer',
        prefix: 'prod',
      },
    });
    const e = parsed([
      '--issuer',
      ISSUER,
      '--to',
      'azblob://devstoreaccount1/$web',
      '--azblob-endpoint',
      'https://127.0.0.1:10000/devstoreaccount1/',
    ]);
    assert.ok(e.target.kind === 'storage' && e.target.storage.kind === 'azureBlob');
    assert.equal(e.target.storage.accountURL, 'https://127.0.0.1:10000/devstoreaccount1');
    assert.equal(e.target.storage.container, '$web');
    assert.match(
      problems([
        '--issuer',
        ISSUER,
        '--to',
        'azblob://acct1/issuer',
        '--azblob-endpoint',
        'https://127.0.0.1:10000/other',
      ]),
      /not the endpoint of account acct1/,
    );
  });

  it('reads file://<dir>, absolute or relative, with no prefix', () => {
    assert.deepEqual(parsed(['--issuer', ISSUER, '--to', 'file:///srv/issuer']).target, {
      kind: 'file',
      dir: '/srv/issuer',
    });
    const rel = parsed(['--issuer', ISSUER, '--to', 'file://./out', '--dry-run']);
    assert.deepEqual(rel.target, { kind: 'file', dir: './out' });
    assert.equal(rel.spec.storage.prefix, '');
    assert.equal(rel.dryRun, true);
  });

  const refused: [string, string[], RegExp][] = [
    ['no --to', ['--issuer', ISSUER], /--to: required/],
    ['an unknown scheme', ['--issuer', ISSUER, '--to', 'ftp://x/y'], /is not s3:\/\/bucket\/prefix/],
    ['a plain path', ['--issuer', ISSUER, '--to', '/srv/issuer'], /is not s3:\/\/bucket\/prefix/],
    ['file:// without a directory', ['--issuer', ISSUER, '--to', 'file://'], /needs a directory/],
    [
      'an S3 bucket with capitals',
      ['--issuer', ISSUER, '--to', 's3://MyBucket', '--s3-region', 'eu-west-1'],
      /not an S3 bucket name/,
    ],
    [
      'an S3 bucket with dots, without path style',
      ['--issuer', ISSUER, '--to', 's3://a.b.c', '--s3-region', 'eu-west-1'],
      /--s3-force-path-style: required/,
    ],
    [
      'an S3 bucket that looks like an IP address',
      ['--issuer', ISSUER, '--to', 's3://10.0.0.1', '--s3-region', 'eu-west-1', '--s3-force-path-style'],
      /IP address/,
    ],
    [
      'a GCS bucket starting with goog',
      ['--issuer', ISSUER, '--to', 'gs://google-x'],
      /must not start with 'goog'/,
    ],
    [
      'a prefix with a .. segment',
      ['--issuer', ISSUER, '--to', 'gs://bucket/a/../b'],
      /must not contain '\.' or '\.\.' segments/,
    ],
    ['a prefix with //', ['--issuer', ISSUER, '--to', 'gs://bucket//a'], /must not start with a slash/],
    [
      'S3 flags with a GCS target',
      ['--issuer', ISSUER, '--to', 'gs://bucket', '--s3-region', 'eu-west-1'],
      /--s3-region: only used with --to s3/,
    ],
    [
      '--gcs-endpoint with a file target',
      ['--issuer', ISSUER, '--to', 'file:///x', '--gcs-endpoint', 'https://x'],
      /--gcs-endpoint: only used with --to gs/,
    ],
    [
      'an endpoint that is no URL',
      ['--issuer', ISSUER, '--to', 'gs://bucket', '--gcs-endpoint', 'x'],
      /not an http/,
    ],
    ['a positional argument', ['--issuer', ISSUER, '--to', 'file:///x', 'extra'], /Unexpected argument/],
    ['an unknown flag', ['--issuer', ISSUER, '--to', 'file:///x', '--bucket', 'x'], /Unknown option/],
  ];
  for (const [what, argv, expected] of refused) {
    it(`refuses ${what}`, () => assert.match(problems(argv), expected));
  }

  it('reports every problem at once', () => {
    const message = problems(['--issuer', 'http://x', '--to', 's3://A', '--cache-control', '']);
    for (const p of [/--issuer/, /--to: "A"/, /--s3-region/, /--cache-control/]) assert.match(message, p);
  });
});

describe('publish arguments: the documents (the CRD rules for issuerURL, jwksURI, cacheControl)', () => {
  it('defaults jwks_uri to <issuer>/openid/v1/jwks and Cache-Control to the operator default', () => {
    const { spec, problems: p } = standaloneSpec({ issuer: `${ISSUER}/`, prefix: 'x' });
    assert.deepEqual(p, []);
    assert.deepEqual(spec, {
      issuerURL: `${ISSUER}/`,
      jwksURI: `${ISSUER}/openid/v1/jwks`,
      cacheControl: 'public, max-age=300',
      keyRetentionMs: 0,
      storage: { prefix: 'x' },
    });
  });

  it('takes --jwks-uri and --cache-control as given', () => {
    const a = parsed([
      '--issuer',
      ISSUER,
      '--to',
      'file:///x',
      '--jwks-uri',
      'https://keys.example.com/jwks.json',
      '--cache-control',
      'public, max-age=60',
    ]);
    assert.equal(a.spec.jwksURI, 'https://keys.example.com/jwks.json');
    assert.equal(a.spec.cacheControl, 'public, max-age=60');
  });

  const refused: [string, Parameters<typeof standaloneSpec>[0], RegExp][] = [
    ['no issuer', {}, /--issuer: required/],
    ['an http issuer', { issuer: 'http://issuer.example.com' }, /not an absolute https URL/],
    ['an issuer without a host', { issuer: 'https://' }, /not an absolute https URL/],
    ['an issuer with a query', { issuer: `${ISSUER}?a=b` }, /query/],
    ['an issuer with a fragment', { issuer: `${ISSUER}#x` }, /fragment/],
    ['an http jwks_uri', { issuer: ISSUER, jwksURI: 'http://x/jwks' }, /--jwks-uri/],
    ['a jwks_uri with a fragment', { issuer: ISSUER, jwksURI: 'https://x/jwks#a' }, /--jwks-uri: must not/],
    ['an empty Cache-Control', { issuer: ISSUER, cacheControl: '' }, /--cache-control/],
    [
      'a Cache-Control with a line break',
      { issuer: ISSUER, cacheControl: 'public\r\nx: y' },
      /--cache-control/,
    ],
    ['a prefix with a backslash', { issuer: ISSUER, prefix: 'a\\b' }, /backslash/],
  ];
  for (const [what, input, expected] of refused) {
    it(`refuses ${what}`, () => {
      const { problems: p } = standaloneSpec(input);
      assert.match(p.join('; '), expected);
    });
  }
});

describe('publish output', () => {
  const object = {
    role: 'jwks' as const,
    key: 'prod/openid/v1/jwks',
    url: `${ISSUER}/openid/v1/jwks`,
    body: Buffer.from('{}'),
    contentType: 'application/jwk-set+json',
    cacheControl: 'public, max-age=300',
    sha256: 'ab'.repeat(32),
  };

  it('names each object where the user will find it', () => {
    const s3 = parsed(['--issuer', ISSUER, '--to', 's3://b-1/prod', '--s3-region', 'eu-west-1']).target;
    assert.equal(objectLocation(s3, object.key), 's3://b-1/prod/openid/v1/jwks');
    const gs = parsed(['--issuer', ISSUER, '--to', 'gs://b-1/prod']).target;
    assert.equal(objectLocation(gs, object.key), 'gs://b-1/prod/openid/v1/jwks');
    const az = parsed(['--issuer', ISSUER, '--to', 'azblob://acct1/c-1/prod']).target;
    assert.equal(objectLocation(az, object.key), 'azblob://acct1/c-1/prod/openid/v1/jwks');
    assert.equal(objectLocation({ kind: 'file', dir: '/srv/x' }, 'openid/v1/jwks'), '/srv/x/openid/v1/jwks');
  });

  it('prints one line per object with why, sha256 and Content-Type', () => {
    assert.equal(
      describeObject('would publish', 's3://b/k', object, 'content changed'),
      `would publish s3://b/k (content changed) sha256=${'ab'.repeat(32)} content-type=application/jwk-set+json cache-control="public, max-age=300"\n`,
    );
    assert.match(describeObject('up to date', 's3://b/k', object), /^up to date s3:\/\/b\/k sha256=/);
  });
});

describe('publish exit codes without I/O', () => {
  function io(): PublishIo & { out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t) };
  }

  it('exits 2 with one line naming the problems for bad arguments, writing nothing to stdout', async () => {
    const o = io();
    assert.equal(await runPublish(['--to', 'ftp://x'], {}, o), 2);
    assert.deepEqual(o.out, []);
    assert.equal(o.err.length, 1);
    assert.match(o.err[0] ?? '', /^oidc-publisher publish: .*--to: .*--issuer: required\n$/);
    assert.equal((o.err[0] ?? '').split('\n').length, 2, 'a single line');
  });

  it('exits 0 and prints the usage, with the exit codes, for --help', async () => {
    const o = io();
    assert.equal(await runPublish(['--help'], {}, o), 0);
    const text = o.out.join('');
    assert.match(text, /Exit codes:\n {2}0 {2}published, or already up to date\n {2}1 {2}failed/);
    assert.match(text, /trusted: exec plugins/);
  });

  it('exits 1 with the error code when the kubeconfig cannot be loaded', async () => {
    const o = io();
    const code = await runPublish(
      ['--issuer', ISSUER, '--to', 'file:///nonexistent', '--kubeconfig', '/nonexistent/kubeconfig'],
      {},
      o,
    );
    assert.equal(code, 1);
    assert.match(
      o.err.join(''),
      /^oidc-publisher publish: KUBECONFIG_INVALID: kubeconfig "\/nonexistent\/kubeconfig"/,
    );
  });
});
