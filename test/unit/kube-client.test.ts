/**
 * The Kubernetes client's policies, table-driven and without a network: the
 * User-Agent's form, which answers are retried and after how long, the token
 * bucket of the client-side rate limit, and lists in pages. The same code
 * against the real API server (and a stand-in for 429) is in
 * test/integration/kube-client.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_RETRY,
  isRetryable,
  KubeHttpError,
  parseRetryAfter,
  retryWaitMs,
  USER_AGENT,
} from '../../src/kube/http.ts';
import { listAll } from '../../src/kube/list.ts';
import { TokenBucket } from '../../src/kube/rate-limit.ts';
import { VERSION } from '../../src/version.ts';

describe('User-Agent', () => {
  it("has client-go's form: oidc-publisher/<version> (<os>/<arch>) node/<version>", () => {
    assert.match(USER_AGENT, /^oidc-publisher\/[^ /]+ \([a-z0-9]+\/[a-z0-9]+\) node\/\d+\.\d+\.\d+$/);
    assert.ok(
      USER_AGENT.startsWith(`oidc-publisher/${VERSION} (`),
      `expected version ${VERSION}: ${USER_AGENT}`,
    );
    if (process.arch === 'x64') assert.ok(USER_AGENT.includes('/amd64)'), 'x64 is spelled as Go does: amd64');
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const cases: [string | string[] | undefined, number | undefined][] = [
    ['1', 1000],
    [' 30 ', 30_000],
    ['0', 0],
    [['2', '5'], 2000],
    ['Thu, 01 Jan 2026 00:00:10 GMT', 10_000],
    ['Wed, 31 Dec 2025 23:59:00 GMT', 0],
    ['-1', undefined],
    ['1.5', undefined],
    ['soon', undefined],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [header, ms] of cases) {
    it(`${JSON.stringify(header)} is ${ms === undefined ? 'no Retry-After' : `${ms} ms`}`, () => {
      assert.equal(parseRetryAfter(header, now), ms);
    });
  }
});

describe('which answers are sent again', () => {
  const cases: [string, unknown, boolean][] = [
    ['GET', new KubeHttpError(429, 'TooManyRequests', 1000), true],
    ['GET', new KubeHttpError(429, undefined), true],
    ['POST', new KubeHttpError(429, 'TooManyRequests', 1000), true],
    ['PATCH', new KubeHttpError(429, 'TooManyRequests', 1000), true],
    ['PUT', new KubeHttpError(429, 'TooManyRequests'), true],
    ['GET', new KubeHttpError(503, 'ServiceUnavailable', 1000), true],
    ['GET', new KubeHttpError(500, 'InternalError', 1000), true],
    ['GET', new KubeHttpError(503, 'ServiceUnavailable'), false],
    ['POST', new KubeHttpError(503, 'ServiceUnavailable', 1000), false],
    ['PATCH', new KubeHttpError(504, 'Timeout', 1000), false],
    ['GET', new KubeHttpError(409, 'Conflict', 1000), false],
    ['GET', new KubeHttpError(410, 'Expired'), false],
    ['GET', Object.assign(new Error('reset'), { code: 'ECONNRESET' }), false],
  ];
  for (const [method, err, retried] of cases) {
    const e = err as KubeHttpError;
    it(`${method} answered ${e.status ?? (err as { code?: string }).code}${e.retryAfterMs !== undefined ? ' with Retry-After' : ''}: ${retried ? 'retried' : 'not retried'}`, () => {
      assert.equal(isRetryable(method, err), retried);
    });
  }

  it('waits Retry-After or the doubling backoff, the longer, and never more than the cap', () => {
    const policy = { ...DEFAULT_RETRY, baseMs: 500, maxWaitMs: 60_000 };
    const waits = [0, 1, 2, 3, 4, 5, 6, 7].map((n) =>
      retryWaitMs(new KubeHttpError(429, undefined, 1000), n, policy),
    );
    assert.deepEqual(waits, [1000, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000]);
    assert.equal(
      retryWaitMs(new KubeHttpError(429, undefined), 0, policy),
      500,
      'no Retry-After: the backoff',
    );
    assert.equal(
      retryWaitMs(new KubeHttpError(429, undefined, 3_600_000), 0, policy),
      60_000,
      'an hour is capped',
    );
  });
});

describe('TokenBucket', () => {
  it('lets a burst through at once, then one request per 1/qps seconds', () => {
    let now = 0;
    const bucket = new TokenBucket(5, 2, () => now);
    assert.deepEqual([bucket.reserve(), bucket.reserve()], [0, 0], 'the burst');
    assert.equal(bucket.reserve(), 200);
    assert.equal(bucket.reserve(), 400, 'each waiting request holds its own place');
    now = 1000;
    // 0.8 s later the line has moved on: 5 tokens gained, -2 + 5 = 3, capped at the burst (2).
    assert.deepEqual([bucket.reserve(), bucket.reserve(), bucket.reserve()], [0, 0, 200]);
  });

  it('gives back a token that was reserved and not used', () => {
    const bucket = new TokenBucket(1, 1, () => 0);
    assert.equal(bucket.reserve(), 0);
    assert.equal(bucket.reserve(), 1000);
    bucket.cancel();
    assert.equal(bucket.reserve(), 1000, 'the same place again');
  });

  it('refuses at once a wait that would pass the deadline, and waits for one that does not', async () => {
    const bucket = new TokenBucket(10, 1);
    await bucket.take();
    await assert.rejects(
      bucket.take({ deadline: performance.now() + 20 }),
      (err: Error & { code?: string }) =>
        err.code === 'ETIMEDOUT' && /client-side rate limit/.test(err.message),
    );
    const t0 = performance.now();
    await bucket.take({ deadline: performance.now() + 1000 });
    const waited = performance.now() - t0;
    assert.ok(
      waited >= 80 && waited < 1000,
      `expected to wait about 100 ms for the token, waited ${waited} ms`,
    );
  });

  it('stops waiting when the signal aborts', async () => {
    const bucket = new TokenBucket(0.1, 1);
    await bucket.take();
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 20);
    const t0 = performance.now();
    await bucket.take({ signal: abort.signal });
    assert.ok(performance.now() - t0 < 1000, 'expected the abort to end a 10 s wait');
  });

  it('refuses a rate or burst it cannot use', () => {
    assert.throws(() => new TokenBucket(0, 1), RangeError);
    assert.throws(() => new TokenBucket(1, 0), RangeError);
    assert.throws(() => new TokenBucket(1, 1.5), RangeError);
  });
});

describe('lists in pages', () => {
  type Item = { name: string };
  const pages = (all: Item[]) => {
    const calls: string[] = [];
    const get = async (path: string) => {
      calls.push(path);
      const q = new URL(path, 'https://x').searchParams;
      const start = Number(q.get('continue') ?? 0);
      const limit = Number(q.get('limit') ?? all.length);
      const end = Math.min(all.length, start + (limit || all.length));
      return {
        metadata: { resourceVersion: '42', ...(end < all.length ? { continue: String(end) } : {}) },
        items: all.slice(start, end),
      };
    };
    return { calls, get };
  };
  const items = [1, 2, 3, 4, 5].map((n) => ({ name: `p${n}` }));

  it('follows continue tokens until the last page, with the limit on every request', async () => {
    const { calls, get } = pages(items);
    const list = await listAll<Item>(get, '/apis/x/v1/things', 2);
    assert.deepEqual(list, { metadata: { resourceVersion: '42' }, items });
    assert.deepEqual(calls, [
      '/apis/x/v1/things?limit=2',
      '/apis/x/v1/things?limit=2&continue=2',
      '/apis/x/v1/things?limit=2&continue=4',
    ]);
  });

  it('lists in one request with page size 0', async () => {
    const { calls, get } = pages(items);
    assert.equal((await listAll<Item>(get, '/x', 0)).items.length, 5);
    assert.deepEqual(calls, ['/x']);
  });

  it('restarts the list once when a continue token has expired (410), and gives up on a second', async () => {
    const { calls, get } = pages(items);
    let expired = 1;
    const flaky = async (path: string) => {
      if (path.includes('continue=4') && expired-- > 0) {
        calls.push(`${path} -> 410`);
        throw new KubeHttpError(410, 'Expired');
      }
      return get(path);
    };
    assert.deepEqual((await listAll<Item>(flaky, '/x', 2)).items, items, 'no item twice, none missing');
    assert.deepEqual(calls, [
      '/x?limit=2',
      '/x?limit=2&continue=2',
      '/x?limit=2&continue=4 -> 410',
      '/x?limit=2',
      '/x?limit=2&continue=2',
      '/x?limit=2&continue=4',
    ]);
    const always = async (path: string) => {
      if (path.includes('continue=')) throw new KubeHttpError(410, 'Expired');
      return get(path);
    };
    await assert.rejects(
      listAll<Item>(always, '/x', 2),
      (err) => err instanceof KubeHttpError && err.status === 410,
    );
  });

  it("does not restart on a 410 of the first page: that is the caller's (a resourceVersion too old)", async () => {
    let calls = 0;
    const gone = async () => {
      calls += 1;
      throw new KubeHttpError(410, 'Gone');
    };
    await assert.rejects(listAll(gone, '/x', 2), (err) => err instanceof KubeHttpError && err.status === 410);
    assert.equal(calls, 1);
  });
});
