/**
 * `oidc-publisher serve` with several publishers, TLS and key retention,
 * without sockets: --publisher, TLS and HSTS arguments; which publisher
 * answers a host and path; and a retired key kept for --key-retention from
 * the JWKS the process served itself, then dropped.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { RawDocuments } from '../../src/core/plan.ts';
import { OidcPublisherError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { IssuerDocuments } from '../../src/server/serve.ts';
import { parseServeArgs, type ServeArgs } from '../../src/server/serve-args.ts';
import { ServeMetrics } from '../../src/server/serve-metrics.ts';
import {
  hstsHeader,
  notFound,
  requestHostName,
  selectPublisher,
  servePaths,
} from '../../src/server/serve-response.ts';
import { discoveryJson, EC_PUBLIC, ISSUER, jwksJson, RSA_PUBLIC, resolvedSpec } from './fixtures.ts';

function args(argv: string[]): ServeArgs {
  const a = parseServeArgs(argv);
  assert.equal(a.help, false);
  return a as ServeArgs;
}

function problems(argv: string[]): string {
  try {
    parseServeArgs(argv);
  } catch (err) {
    assert.ok(err instanceof OidcPublisherError);
    assert.equal(err.code, 'CONFIG_INVALID');
    return err.message;
  }
  assert.fail(`expected ${JSON.stringify(argv)} to be refused`);
}

describe('serve arguments: several publishers', () => {
  it('serves each --publisher on its issuer host name, under its issuer path', () => {
    const a = args([
      '--publisher',
      'issuer=https://Issuer.Example.com/cluster-a,kubeconfig=/a',
      '--publisher',
      'issuer=https://issuer.example.com/cluster-b,kubeconfig=/b,jwks-uri=https://keys.example.com/b',
      '--publisher',
      'issuer=https://other.example.com:8443,kubeconfig=/c',
    ]);
    assert.deepEqual(
      a.publishers.map((p) => [p.host, p.paths.discovery, p.kubeconfig, p.spec.jwksURI]),
      [
        [
          'issuer.example.com',
          '/cluster-a/.well-known/openid-configuration',
          '/a',
          'https://Issuer.Example.com/cluster-a/openid/v1/jwks',
        ],
        [
          'issuer.example.com',
          '/cluster-b/.well-known/openid-configuration',
          '/b',
          'https://keys.example.com/b',
        ],
        [
          'other.example.com',
          '/.well-known/openid-configuration',
          '/c',
          'https://other.example.com:8443/openid/v1/jwks',
        ],
      ],
    );
  });

  const refused: [string, string[], RegExp][] = [
    [
      '--publisher with --issuer',
      ['--publisher', 'issuer=https://a.example.com,kubeconfig=/a', '--issuer', ISSUER],
      /not with --issuer/,
    ],
    [
      'a publisher without kubeconfig',
      ['--publisher', 'issuer=https://a.example.com'],
      /kubeconfig=<file> required/,
    ],
    ['a publisher without issuer', ['--publisher', 'kubeconfig=/a'], /issuer=<https url> required/],
    [
      'an unknown key',
      ['--publisher', 'issuer=https://a.example.com,kubeconfig=/a,port=1'],
      /"port" is not one of/,
    ],
    [
      'a key twice',
      ['--publisher', 'issuer=https://a.example.com,issuer=https://b.example.com,kubeconfig=/a'],
      /issuer given twice/,
    ],
    [
      'an http issuer',
      ['--publisher', 'issuer=http://a.example.com,kubeconfig=/a'],
      /#1: issuer: .* is not an absolute https URL/,
    ],
    [
      'two publishers at one host and path (port and case do not count)',
      [
        '--publisher',
        'issuer=https://a.example.com/x,kubeconfig=/a',
        '--publisher',
        'issuer=https://A.example.com:8443/x,kubeconfig=/b',
      ],
      /#2: served at the same host and path as --publisher #1/,
    ],
    [
      'an issuer path that cannot be served',
      ['--publisher', 'issuer=https://a.example.com/a%20b,kubeconfig=/a'],
      /the issuer's path cannot be served/,
    ],
  ];
  for (const [what, argv, expected] of refused) {
    it(`refuses ${what}`, () => assert.match(problems(argv), expected));
  }
});

describe('serve arguments: TLS, HSTS, key retention', () => {
  const tls = ['--tls-cert-file', '/tls/tls.crt', '--tls-private-key-file', '/tls/tls.key'];

  it('serves HTTPS on :8443 with a year of HSTS by default', () => {
    const a = args(['--issuer', ISSUER, ...tls]);
    assert.deepEqual(a.tls, { certFile: '/tls/tls.crt', keyFile: '/tls/tls.key' });
    assert.deepEqual(a.listen, { port: 8443 });
    assert.equal(a.hstsMaxAgeMs, 365 * 86_400_000);
  });

  it('takes --hsts-max-age, 0s for none, and --key-retention from 0s', () => {
    assert.equal(args(['--issuer', ISSUER, ...tls, '--hsts-max-age', '1h']).hstsMaxAgeMs, 3_600_000);
    assert.equal(args(['--issuer', ISSUER, ...tls, '--hsts-max-age', '0s']).hstsMaxAgeMs, 0);
    const a = args(['--issuer', ISSUER, '--key-retention', '0s']);
    assert.equal(a.keyRetentionMs, 0);
    assert.equal(a.publishers[0]?.spec.keyRetentionMs, 0);
  });

  const refused: [string, string[], RegExp][] = [
    ['a certificate without its key', ['--issuer', ISSUER, '--tls-cert-file', '/c'], /give both, or neither/],
    [
      'a key without its certificate',
      ['--issuer', ISSUER, '--tls-private-key-file', '/k'],
      /give both, or neither/,
    ],
    [
      'an empty certificate path',
      ['--issuer', ISSUER, '--tls-cert-file', '', '--tls-private-key-file', '/k'],
      /empty/,
    ],
    ['HSTS without TLS', ['--issuer', ISSUER, '--hsts-max-age', '1h'], /over HTTPS only/],
    ['a retention above 8760h', ['--issuer', ISSUER, '--key-retention', '8761h'], /--key-retention/],
    ['a retention that is not a duration', ['--issuer', ISSUER, '--key-retention', '1d'], /--key-retention/],
  ];
  for (const [what, argv, expected] of refused) {
    it(`refuses ${what}`, () => assert.match(problems(argv), expected));
  }
});

describe('serve: which publisher answers', () => {
  const a = { host: 'a.example.com', paths: servePaths('/cluster-a') };
  const b = { host: 'b.example.com', paths: servePaths('') };
  const any = { paths: servePaths('/any') };
  const publishers = [a, b, any];

  const cases: [string, string | undefined, string, number | undefined][] = [
    ['its host and path', 'a.example.com', '/cluster-a/openid/v1/jwks', 0],
    [
      'its host with a port, in upper case, with a trailing dot',
      'A.Example.COM.:8443',
      '/cluster-a/.well-known/openid-configuration',
      0,
    ],
    ['its host and root paths', 'b.example.com', '/.well-known/openid-configuration?x=1', 1],
    ['another publisher path on a host', 'b.example.com', '/cluster-a/openid/v1/jwks', undefined],
    ['an unknown host', 'c.example.com', '/.well-known/openid-configuration', undefined],
    ['no Host header', undefined, '/openid/v1/jwks', undefined],
    ['a publisher of any host', 'c.example.com', '/any/openid/v1/jwks', 2],
    ['an unknown path', 'a.example.com', '/cluster-a/', undefined],
  ];
  for (const [what, host, url, expected] of cases) {
    it(`${expected === undefined ? 'none' : `publisher #${expected}`} for ${what}`, () => {
      assert.equal(selectPublisher(publishers, host, url), expected);
    });
  }

  it('reads host names from Host headers, IPv6 literals included', () => {
    assert.equal(requestHostName('[::1]:8443'), '[::1]');
    assert.equal(requestHostName('127.0.0.1:8443'), '127.0.0.1');
    assert.equal(requestHostName('a.example.com'), 'a.example.com');
    assert.equal(requestHostName('a b'), 'a b');
    assert.equal(requestHostName('a:b:c'), undefined);
  });

  it('answers 404, never cached, where no publisher answers; no body to HEAD', () => {
    const get = notFound('GET');
    assert.equal(get.status, 404);
    assert.equal(get.headers['cache-control'], 'no-store');
    assert.ok(get.body);
    assert.equal(notFound('HEAD').body, undefined);
  });

  it('sends Strict-Transport-Security in whole seconds, none for 0', () => {
    assert.equal(hstsHeader(365 * 86_400_000), 'max-age=31536000');
    assert.equal(hstsHeader(1500), 'max-age=1');
    assert.equal(hstsHeader(0), undefined);
  });
});

describe('serve: retired keys kept for --key-retention', () => {
  const silent = createLogger({ level: 'debug', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  const RETENTION_MS = 60_000;

  function holder(reads: (() => RawDocuments)[]) {
    let clock = Date.parse('2025-06-01T00:00:00Z');
    const metrics = new ServeMetrics(new Registry());
    const source = {
      fetchDocuments: async () => {
        const next = reads.shift();
        if (!next) throw new Error('no more reads');
        return next();
      },
    };
    const docs = new IssuerDocuments({
      source,
      spec: { ...resolvedSpec(), keyRetentionMs: RETENTION_MS },
      log: silent,
      metrics,
      syncIntervalMs: 300_000,
      now: () => clock,
    });
    return { docs, metrics, tick: (ms: number) => (clock += ms) };
  }
  const serving =
    (...keys: unknown[]) =>
    () => ({ discovery: discoveryJson(), jwks: jwksJson(keys) });
  const kids = (docs: IssuerDocuments) =>
    (JSON.parse(docs.documents?.jwks.body.toString() ?? '{}') as { keys: { kid: string }[] }).keys.map(
      (k) => k.kid,
    );

  it('keeps a key the source dropped until the retention ends, then serves only the source keys', async () => {
    const { docs, metrics, tick } = holder([
      serving(RSA_PUBLIC),
      serving(EC_PUBLIC),
      serving(EC_PUBLIC),
      serving(EC_PUBLIC),
    ]);
    assert.equal(await docs.refresh(), true);
    assert.deepEqual(kids(docs), ['rsa-1']);
    tick(1000);
    assert.equal(await docs.refresh(), true);
    assert.deepEqual(kids(docs), ['ec-1', 'rsa-1'], 'the retired key is still served');
    assert.equal(docs.delayAfter(true, 0), RETENTION_MS, 'the next read when the retired key expires');
    assert.match(
      await metrics.registry.metrics(),
      new RegExp(`^oidc_publisher_serve_retained_keys\\{issuer="${ISSUER}"\\} 1$`, 'm'),
    );
    tick(RETENTION_MS - 1);
    await docs.refresh();
    assert.deepEqual(kids(docs), ['ec-1', 'rsa-1'], 'still within the retention');
    tick(1);
    await docs.refresh();
    assert.deepEqual(kids(docs), ['ec-1'], 'dropped when the retention ends');
    assert.equal(docs.delayAfter(true, 0), 300_000);
  });

  it('serves a key again as a source key when the source serves it again, and keeps nothing with 0s', async () => {
    const { docs, tick } = holder([serving(RSA_PUBLIC), serving(EC_PUBLIC), serving(EC_PUBLIC, RSA_PUBLIC)]);
    await docs.refresh();
    tick(1000);
    await docs.refresh();
    tick(RETENTION_MS * 2);
    await docs.refresh();
    assert.deepEqual(kids(docs), ['ec-1', 'rsa-1']);

    const none = new IssuerDocuments({
      source: {
        fetchDocuments: (() => {
          const reads = [serving(RSA_PUBLIC), serving(EC_PUBLIC)];
          return async () => (reads.shift() ?? serving(EC_PUBLIC))();
        })(),
      },
      spec: { ...resolvedSpec(), keyRetentionMs: 0 },
      log: silent,
      metrics: new ServeMetrics(new Registry()),
      syncIntervalMs: 1000,
    });
    await none.refresh();
    await none.refresh();
    assert.deepEqual(kids(none), ['ec-1']);
  });

  it('keeps the retired key through failed reads, as it keeps the documents', async () => {
    const { docs, tick } = holder([
      serving(RSA_PUBLIC),
      serving(EC_PUBLIC),
      () => {
        throw new OidcPublisherError('SOURCE_UNREACHABLE', 'connection refused');
      },
      serving(EC_PUBLIC),
    ]);
    await docs.refresh();
    tick(1000);
    await docs.refresh();
    tick(1000);
    assert.equal(await docs.refresh(), false);
    assert.deepEqual(kids(docs), ['ec-1', 'rsa-1']);
    tick(1000);
    await docs.refresh();
    assert.deepEqual(kids(docs), ['ec-1', 'rsa-1'], 'its retirement time is remembered across the failure');
  });
});
