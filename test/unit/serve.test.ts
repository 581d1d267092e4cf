/**
 * `oidc-publisher serve` without sockets: the answer to each request (method,
 * path, If-None-Match, documents held or not), the arguments, and the holder of
 * the documents, which only ever replaces them with validated ones.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { prepare, type RawDocuments, type RenderedObject } from '../../src/core/plan.ts';
import { OidcPublisherError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import { IssuerDocuments } from '../../src/server/serve.ts';
import { parseServeArgs, type ServeArgs } from '../../src/server/serve-args.ts';
import { ServeMetrics } from '../../src/server/serve-metrics.ts';
import {
  type HeldDocuments,
  noneMatchHits,
  pathPrefixProblems,
  respond,
  servePaths,
} from '../../src/server/serve-response.ts';
import { discoveryJson, EC_PUBLIC, ISSUER, jwksJson, RSA_PUBLIC, resolvedSpec } from './fixtures.ts';

function held(keys: unknown[] = [RSA_PUBLIC]): HeldDocuments {
  const p = prepare(resolvedSpec(), { discovery: discoveryJson(), jwks: jwksJson(keys) });
  assert.equal(p.kind, 'ready');
  const by = (role: RenderedObject['role']) => {
    const o = p.kind === 'ready' ? p.objects.find((x) => x.role === role) : undefined;
    assert.ok(o);
    return o;
  };
  return { jwks: by('jwks'), discovery: by('discovery') };
}

describe('serve: the answer to a request', () => {
  const docs = held();
  const paths = servePaths('');
  const etag = `"${docs.discovery.sha256}"`;

  it('serves the discovery document with its Content-Type, Cache-Control, a strong ETag and the bytes', () => {
    const r = respond({ method: 'GET', url: '/.well-known/openid-configuration' }, paths, docs);
    assert.equal(r.status, 200);
    assert.equal(r.route, 'discovery');
    assert.deepEqual(r.headers, {
      'content-type': 'application/json',
      'content-length': String(docs.discovery.body.length),
      'cache-control': 'public, max-age=300',
      etag,
      'x-content-type-options': 'nosniff',
    });
    assert.deepEqual(r.body, docs.discovery.body);
  });

  it('serves the JWKS as application/jwk-set+json, ignoring a query string', () => {
    const r = respond({ method: 'GET', url: '/openid/v1/jwks?cache-bust=1' }, paths, docs);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/jwk-set+json');
    assert.deepEqual(r.body, docs.jwks.body);
  });

  it('answers HEAD with the headers of GET and no body', () => {
    const get = respond({ method: 'GET', url: '/openid/v1/jwks' }, paths, docs);
    const head = respond({ method: 'HEAD', url: '/openid/v1/jwks' }, paths, docs);
    assert.equal(head.status, 200);
    assert.deepEqual(head.headers, get.headers);
    assert.equal(head.body, undefined);
  });

  const conditional: [string, string, number][] = [
    ['its own ETag', etag, 304],
    ['its ETag among others', `"x", ${etag}, "y"`, 304],
    ['its ETag, weak (If-None-Match compares weakly)', `W/${etag}`, 304],
    ['*', '*', 304],
    ['another ETag', '"0000"', 200],
    ['an unquoted hash', docs.discovery.sha256, 200],
  ];
  for (const [what, header, status] of conditional) {
    it(`answers ${status} to If-None-Match with ${what}`, () => {
      const r = respond(
        { method: 'GET', url: '/.well-known/openid-configuration', ifNoneMatch: header },
        paths,
        docs,
      );
      assert.equal(r.status, status);
      assert.equal(r.headers.etag, etag);
      if (status === 304) {
        assert.equal(r.body, undefined);
        assert.equal(r.headers['cache-control'], 'public, max-age=300');
      }
    });
  }

  const others: [string, string, string, number][] = [
    ['the root', 'GET', '/', 404],
    ['a trailing slash', 'GET', '/openid/v1/jwks/', 404],
    ['a path that only decodes to a document', 'GET', '/openid%2Fv1%2Fjwks', 404],
    ['a longer path', 'GET', '/.well-known/openid-configuration/x', 404],
    ['the other documents of an API server', 'GET', '/openid/v1/jwks.json', 404],
    ['POST to a document', 'POST', '/openid/v1/jwks', 405],
    ['PUT to a document', 'PUT', '/.well-known/openid-configuration', 405],
    ['DELETE to a document', 'DELETE', '/openid/v1/jwks', 405],
    ['OPTIONS to a document', 'OPTIONS', '/openid/v1/jwks', 405],
  ];
  for (const [what, method, url, status] of others) {
    it(`answers ${status} to ${what}, never cached`, () => {
      const r = respond({ method, url }, paths, docs);
      assert.equal(r.status, status);
      assert.equal(r.headers['cache-control'], 'no-store');
      if (status === 405) assert.equal(r.headers.allow, 'GET, HEAD');
      assert.equal(r.headers.etag, undefined);
    });
  }

  it('answers 503, never cached, to both documents before any has been validated', () => {
    for (const url of ['/.well-known/openid-configuration', '/openid/v1/jwks']) {
      const r = respond({ method: 'GET', url, ifNoneMatch: '*' }, paths, undefined);
      assert.equal(r.status, 503);
      assert.equal(r.headers['cache-control'], 'no-store');
      assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
      assert.equal(r.headers['retry-after'], '5');
    }
    assert.equal(respond({ method: 'GET', url: '/x' }, paths, undefined).status, 404);
  });

  it('serves exactly the two paths under a prefix', () => {
    const prefixed = servePaths('/clusters/prod/');
    assert.deepEqual(prefixed, {
      discovery: '/clusters/prod/.well-known/openid-configuration',
      jwks: '/clusters/prod/openid/v1/jwks',
    });
    assert.equal(respond({ method: 'GET', url: prefixed.jwks }, prefixed, docs).status, 200);
    assert.equal(respond({ method: 'GET', url: '/openid/v1/jwks' }, prefixed, docs).status, 404);
  });

  it('matches If-None-Match lists with spaces and weak tags', () => {
    assert.equal(noneMatchHits(undefined, '"a"'), false);
    assert.equal(noneMatchHits(' "b" ,W/"a"', '"a"'), true);
    assert.equal(noneMatchHits('"ab"', '"a"'), false);
  });
});

describe('serve arguments', () => {
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

  it('has defaults: :8080, no prefix, 1m sync, 5m stale, :8081 health', () => {
    const a = args(['--issuer', ISSUER]);
    assert.deepEqual(a.listen, { port: 8080 });
    assert.equal(a.publishers.length, 1);
    const [p] = a.publishers;
    assert.deepEqual(p?.paths, servePaths(''));
    assert.equal(p?.host, undefined, 'one publisher answers on any host');
    assert.equal(a.syncIntervalMs, 60_000);
    assert.equal(a.staleAfterMs, 300_000);
    assert.equal(a.keyRetentionMs, 86_400_000, 'the CRD default keyRetention, 24h');
    assert.equal(p?.spec.keyRetentionMs, 86_400_000);
    assert.equal(a.healthAddr, ':8081');
    assert.equal(p?.spec.jwksURI, `${ISSUER}/openid/v1/jwks`);
    assert.equal(p?.kubeconfig, undefined);
    assert.equal(a.tls, undefined);
    assert.equal(a.hstsMaxAgeMs, 0, 'no HSTS over plain HTTP');
  });

  it('takes every flag', () => {
    const a = args([
      '--issuer',
      ISSUER,
      '--kubeconfig',
      '/k',
      '--listen',
      '127.0.0.1:9000',
      '--path-prefix',
      '/cluster-a',
      '--sync-interval',
      '10s',
      '--stale-after',
      '1m',
      '--health-addr',
      '',
      '--jwks-uri',
      'https://keys.example.com/jwks',
      '--cache-control',
      'public, max-age=60',
      '--log-level',
      'debug',
    ]);
    assert.deepEqual(a.listen, { host: '127.0.0.1', port: 9000 });
    const [p] = a.publishers;
    assert.equal(p?.paths.jwks, '/cluster-a/openid/v1/jwks');
    assert.equal(a.healthAddr, '');
    assert.equal(p?.spec.jwksURI, 'https://keys.example.com/jwks');
    assert.equal(p?.spec.cacheControl, 'public, max-age=60');
    assert.equal(p?.kubeconfig, '/k');
    assert.equal(a.logLevel, 'debug');
  });

  const refused: [string, string[], RegExp][] = [
    ['no issuer', [], /--issuer \(or --publisher\): required/],
    ['a listen address without a port', ['--issuer', ISSUER, '--listen', '8080'], /--listen/],
    ['a port above 65535', ['--issuer', ISSUER, '--listen', ':70000'], /--listen/],
    [
      'the same address twice',
      ['--issuer', ISSUER, '--listen', ':9000', '--health-addr', ':9000'],
      /must differ/,
    ],
    ['a prefix without a slash', ['--issuer', ISSUER, '--path-prefix', 'x'], /must start with a slash/],
    ['a prefix with ..', ['--issuer', ISSUER, '--path-prefix', '/a/../b'], /'\.' or '\.\.'/],
    ['a prefix with a query', ['--issuer', ISSUER, '--path-prefix', '/a?b'], /must not contain \?/],
    ['a sync interval under 1s', ['--issuer', ISSUER, '--sync-interval', '500ms'], /--sync-interval/],
    ['stale-after not above the sync interval', ['--issuer', ISSUER, '--sync-interval', '5m'], /would flap/],
    ['an unknown log level', ['--issuer', ISSUER, '--log-level', 'loud'], /--log-level/],
  ];
  for (const [what, argv, expected] of refused) {
    it(`refuses ${what}`, () => assert.match(problems(argv), expected));
  }

  it('accepts an empty prefix and a bare slash', () => {
    assert.deepEqual(pathPrefixProblems(''), []);
    assert.deepEqual(pathPrefixProblems('/'), []);
  });
});

describe('serve: the documents held', () => {
  const silent = createLogger({
    level: 'debug',
    destination: new Writable({ write: (_c, _e, cb) => cb() }),
  });
  function holder(reads: (() => RawDocuments)[]) {
    let clock = 1_000_000;
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
      spec: { ...resolvedSpec(), keyRetentionMs: 0 },
      log: silent,
      metrics,
      syncIntervalMs: 1000,
      now: () => clock,
    });
    return { docs, metrics, tick: (ms: number) => (clock += ms) };
  }
  const good =
    (keys: unknown[] = [RSA_PUBLIC]) =>
    () => ({ discovery: discoveryJson(), jwks: jwksJson(keys) });
  const unreachable = () => {
    throw new OidcPublisherError('SOURCE_UNREACHABLE', 'GET https://api/openid/v1/jwks: connection refused');
  };

  it('holds nothing, and is not fresh, before the first good read', async () => {
    const { docs } = holder([unreachable]);
    assert.equal(await docs.refresh(), false);
    assert.equal(docs.documents, undefined);
    assert.equal(docs.fresh(60_000), false);
  });

  it('keeps the last good documents through failed reads, and goes stale after its limit', async () => {
    const { docs, tick } = holder([good(), unreachable, unreachable]);
    assert.equal(await docs.refresh(), true);
    const first = docs.documents;
    tick(2000);
    assert.equal(await docs.refresh(), false);
    assert.equal(docs.documents, first, 'the last good documents are still held');
    assert.equal(docs.fresh(3000), true);
    tick(2000);
    await docs.refresh();
    assert.equal(docs.documents, first);
    assert.equal(docs.fresh(3000), false, 'the last good read is 4s old');
  });

  it('never replaces them with invalid documents, private keys, or another issuer', async () => {
    const withPrivate = () => ({
      discovery: discoveryJson(),
      jwks: jwksJson([{ ...RSA_PUBLIC, d: 'AQAB' }]),
    });
    const otherIssuer = () => ({
      discovery: discoveryJson({ issuer: 'https://evil.example.com' }),
      jwks: jwksJson([RSA_PUBLIC]),
    });
    const notJson = () => ({ discovery: '<html>502 Bad Gateway</html>', jwks: 'x' });
    const { docs, metrics } = holder([good(), withPrivate, otherIssuer, notJson]);
    await docs.refresh();
    const first = docs.documents;
    for (let i = 0; i < 3; i++) assert.equal(await docs.refresh(), false);
    assert.equal(docs.documents, first);
    const text = await metrics.registry.metrics();
    const refresh = (result: string) =>
      new RegExp(`oidc_publisher_serve_refresh_total\\{issuer="${ISSUER}",result="${result}"\\}`);
    assert.match(text, new RegExp(`${refresh('ok').source} 1`));
    assert.match(text, new RegExp(`${refresh('DOCUMENT_INVALID').source} 2`));
    assert.match(text, new RegExp(`${refresh('IssuerMismatch').source} 1`));
  });

  it('takes new keys at the next good read, and records when and how many', async () => {
    const { docs, metrics } = holder([good(), good([RSA_PUBLIC, EC_PUBLIC])]);
    await docs.refresh();
    const before = docs.documents?.jwks.sha256;
    await docs.refresh();
    assert.notEqual(docs.documents?.jwks.sha256, before);
    const text = await metrics.registry.metrics();
    assert.match(text, new RegExp(`^oidc_publisher_serve_published_keys\\{issuer="${ISSUER}"\\} 2$`, 'm'));
    assert.match(
      text,
      new RegExp(
        `^oidc_publisher_serve_last_refresh_success_timestamp_seconds\\{issuer="${ISSUER}"\\} 1000$`,
        'm',
      ),
    );
  });
});
