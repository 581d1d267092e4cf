/**
 * What every Kubernetes client does, proven on the operator's own: its
 * User-Agent reaches the bed's real API server on every kind of request
 * (the API server's audit log shows it), lists go in pages over the real API
 * server, and the client-side rate limit spaces requests out. Answers the
 * real API server cannot be made to give on demand (429 with Retry-After, a
 * 5xx with Retry-After, 410 on a continue token) come from a stand-in.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { OidcPublisher } from '../../src/api/types.ts';
import { INTEGRITY_SECRET_KEY, IntegrityKey } from '../../src/controller/integrity-key.ts';
import { macKey } from '../../src/core/record-mac.ts';
import { loadKubeAccess, StaticAccess } from '../../src/kube/access.ts';
import { ClusterClient } from '../../src/kube/cluster-client.ts';
import { KubeHttp, KubeHttpError, type KubeRequestResult, USER_AGENT } from '../../src/kube/http.ts';
import { listAll } from '../../src/kube/list.ts';
import { TokenBucket } from '../../src/kube/rate-limit.ts';
import { createLogger } from '../../src/log.ts';
import { ApiServerSource } from '../../src/sources/apiserver.ts';
import { AUDITED_NAMESPACE, type Bed } from '../bed/bed.ts';
import { createCa, issueCert } from '../bed/pki.ts';
import { useBed } from '../bed/shared.ts';
import { applyYaml, eventually, installOperator } from '../e2e/harness.ts';

interface AuditEvent {
  stage?: string;
  verb?: string;
  requestURI?: string;
  userAgent?: string;
  objectRef?: { namespace?: string; name?: string };
}

describe('the Kubernetes client against the real API server', () => {
  const useShared = useBed();
  let bed: Bed;
  const run = randomBytes(4).toString('hex');

  before(async () => {
    bed = useShared();
    const ns = await bed.kubectl([
      'create',
      'namespace',
      AUDITED_NAMESPACE,
      '--dry-run=client',
      '-o',
      'yaml',
    ]);
    await bed.kubectl(['apply', '-f', '-'], { input: ns });
  });

  it('sends its User-Agent on every request (create, get, patch, paginated list, watch): the audit log shows it', async () => {
    const http = new KubeHttp(await loadKubeAccess(bed.adminKubeconfig, {}));
    const base = `/api/v1/namespaces/${AUDITED_NAMESPACE}/configmaps`;
    const names = [0, 1, 2].map((i) => `ua-${run}-${i}`);
    const [first = ''] = names;
    try {
      for (const name of names) {
        await http.send('POST', base, {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name, labels: { run } },
          data: { a: '1' },
        });
      }
      await http.send('GET', `${base}/${first}`);
      await http.send(
        'PATCH',
        `${base}/${first}`,
        { data: { a: '2' } },
        { contentType: 'application/merge-patch+json' },
      );
      const listed = await listAll<{ metadata: { name: string } }>(
        (p) => http.send('GET', p),
        `${base}?labelSelector=run%3D${run}`,
        1,
      );
      assert.deepEqual(listed.items.map((i) => i.metadata.name).sort(), names, 'three pages of one');
      const watched: unknown[] = [];
      await http.stream(
        `${base}?watch=true&labelSelector=run%3D${run}&timeoutSeconds=1`,
        (e) => watched.push(e),
        {
          signal: new AbortController().signal,
          idleMs: 30_000,
        },
      );
      assert.equal(watched.length, 3, 'the watch saw the three ConfigMaps');
    } finally {
      await http.send('DELETE', `${base}?labelSelector=run%3D${run}`).catch(() => undefined);
      http.close();
    }
    const ours = (e: AuditEvent) => Boolean(e.requestURI?.includes(run) || e.objectRef?.name?.includes(run));
    const events = await eventually('audit events of every verb', async () => {
      const all = readFileSync(bed.auditLog, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as AuditEvent)
        .filter((e) => e.stage === 'ResponseComplete' && ours(e));
      const verbs = new Set(all.map((e) => e.verb));
      return ['create', 'get', 'patch', 'list', 'watch'].every((v) => verbs.has(v)) ? all : undefined;
    });
    for (const e of events) {
      assert.equal(
        e.userAgent,
        USER_AGENT,
        `${e.verb} ${e.requestURI}: expected the User-Agent ${USER_AGENT}`,
      );
    }
    const pages = events
      .filter((e) => e.verb === 'list')
      .map((e) => new URL(e.requestURI ?? '', 'https://x'));
    assert.equal(pages.length, 3, `expected three list requests, got ${pages.length}`);
    assert.ok(
      pages.every((u) => u.searchParams.get('limit') === '1'),
      'every page asked for limit=1',
    );
    assert.equal(
      pages.filter((u) => u.searchParams.has('continue')).length,
      2,
      'two pages continued the first',
    );
  });

  it('lists OidcPublishers in pages: more objects than one page, each once, and a resourceVersion to watch from', async () => {
    await installOperator(bed);
    const names = [0, 1, 2, 3, 4].map((i) => `page-${run}-${i}`);
    for (const name of names) {
      await applyYaml(
        bed,
        JSON.stringify({
          apiVersion: 'oidcpublisher.io/v1alpha1',
          kind: 'OidcPublisher',
          metadata: { name },
          spec: {
            issuerURL: 'https://issuer.example.com/cluster',
            storage: { s3: { bucket: 'issuer', region: 'us-east-1', prefix: `pages/${name}` } },
          },
        }),
      );
    }
    const requests: KubeRequestResult[] = [];
    const client = new ClusterClient(await loadKubeAccess(bed.adminKubeconfig, {}), (r) => requests.push(r), {
      pageSize: 2,
    });
    try {
      const list = await client.listPublishers();
      const listedNames = list.items.map((p: OidcPublisher) => p.metadata.name);
      assert.equal(
        new Set(listedNames).size,
        listedNames.length,
        `no publisher twice: ${listedNames.join(', ')}`,
      );
      for (const name of names) assert.ok(listedNames.includes(name), `expected ${name} in the list`);
      assert.ok(
        requests.length >= Math.ceil(listedNames.length / 2),
        `expected at least ${Math.ceil(listedNames.length / 2)} pages of 2 for ${listedNames.length} publishers, got ${requests.length} requests`,
      );
      assert.ok(
        requests.every((r) => r.method === 'GET' && r.code === 200),
        'every page a GET answered 200',
      );
      assert.match(list.metadata?.resourceVersion ?? '', /^\d+$/, 'the snapshot resourceVersion');
    } finally {
      client.close();
      await bed.kubectl(['delete', 'oidcpublisher', ...names, '--wait=false', '--ignore-not-found']);
    }
  });

  it('two replicas filling the empty record MAC key Secret at once settle on one key; the manifests applied again leave it in place', async () => {
    const secretName = `integrity-${run}`;
    const manifest = JSON.stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: secretName,
        namespace: AUDITED_NAMESPACE,
        labels: { 'app.kubernetes.io/name': 'oidc-publisher' },
      },
    });
    await applyYaml(bed, manifest);
    const access = await loadKubeAccess(bed.adminKubeconfig, {});
    const clients = [new ClusterClient(access), new ClusterClient(access)];
    const log = createLogger({ level: 'silent' });
    try {
      for (let round = 0; round < 3; round++) {
        const keys = clients.map((c) => new IntegrityKey(c, AUDITED_NAMESPACE, log, { name: secretName }));
        const now = new Date();
        const [a, b] = await Promise.all(keys.map((k) => k.get(now)));
        assert.equal(a?.id, b?.id, `round ${round}: both replicas seal with one key`);
        const stored = JSON.parse(
          await bed.kubectl(['get', 'secret', '-n', AUDITED_NAMESPACE, secretName, '-o', 'json']),
        ) as { metadata: { labels?: Record<string, string> }; data?: Record<string, string> };
        const bytes = Buffer.from(stored.data?.[INTEGRITY_SECRET_KEY] ?? '', 'base64');
        assert.equal(macKey(bytes).id, a?.id, 'the Secret holds the key both use');
        assert.deepEqual(
          stored.metadata.labels,
          { 'app.kubernetes.io/name': 'oidc-publisher' },
          'labels kept',
        );
        // The manifests applied again (kubectl apply, no data in them) keep the key.
        await applyYaml(bed, manifest);
        const again = new IntegrityKey(clients[0] as ClusterClient, AUDITED_NAMESPACE, log, {
          name: secretName,
        });
        assert.equal(
          (await again.get(new Date())).id,
          a?.id,
          'the key survives kubectl apply of the manifests',
        );
        // Next round: the Secret as a fresh install has it, empty.
        await bed.kubectl(['delete', 'secret', '-n', AUDITED_NAMESPACE, secretName]);
        await applyYaml(bed, manifest);
      }
    } finally {
      for (const c of clients) c.close();
      await bed.kubectl(['delete', 'secret', '-n', AUDITED_NAMESPACE, secretName, '--ignore-not-found']);
    }
  });

  it('spaces requests out by the client-side rate limit (5/s, burst 2), the API server answering each', async () => {
    const http = new KubeHttp(await loadKubeAccess(bed.adminKubeconfig, {}), {
      limiter: new TokenBucket(5, 2),
    });
    try {
      const t0 = performance.now();
      const at: number[] = [];
      await Promise.all(
        [0, 1, 2, 3, 4, 5].map(async () => {
          await http.send('GET', '/version');
          at.push(performance.now() - t0);
        }),
      );
      at.sort((a, b) => a - b);
      // Two at once, then one every 200 ms: the sixth no sooner than 800 ms.
      assert.ok(
        (at[5] ?? 0) >= 780,
        `expected the sixth answer after 800 ms, got ${at.map(Math.round).join(', ')}`,
      );
      assert.ok(
        (at[1] ?? 0) < 700,
        `expected the burst of two at once, got ${at.map(Math.round).join(', ')}`,
      );
    } finally {
      http.close();
    }
  });
});

/**
 * A stand-in HTTPS server: the real API server answers 429 with Retry-After only under an
 * overload (API Priority and Fairness is off in the bed, and even on it cannot be made to refuse
 * one given request), and a continue token expires only after etcd compaction, which would
 * disturb every other suite on the shared bed. This stand-in gives those answers on purpose.
 */
describe('retries after 429 and Retry-After, and an expired continue token (stand-in server)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kube-client-standin-'));
  let server: Server;
  let access: StaticAccess;
  type Seen = { method: string; url: string; userAgent: string | undefined; body: string; at: number };
  let seen: Seen[] = [];
  let handler: (req: IncomingMessage, res: ServerResponse, n: number) => void = () => undefined;

  const status = (
    res: ServerResponse,
    code: number,
    reason: string,
    headers: Record<string, string> = {},
  ) => {
    res.writeHead(code, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, code }));
  };
  const ok = (res: ServerResponse, body: unknown) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  before(async () => {
    const ca = createCa(dir, 'stand-in CA');
    const serving = issueCert(ca, 'serving', { commonName: 'stand-in', serverNames: ['127.0.0.1'] });
    server = createServer(
      { cert: readFileSync(serving.cert), key: readFileSync(serving.key) },
      (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          seen.push({
            method: req.method ?? '',
            url: req.url ?? '',
            userAgent: req.headers['user-agent'],
            body: Buffer.concat(chunks).toString('utf8'),
            at: performance.now(),
          });
          handler(req, res, seen.length);
        });
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    access = new StaticAccess({ server: `https://127.0.0.1:${port}`, ca: { data: readFileSync(ca.cert) } });
  });
  after(() => {
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const fresh = (h: typeof handler) => {
    seen = [];
    handler = h;
  };

  it('a GET answered 429 with Retry-After: 1 twice is sent again after a second each, then succeeds', async () => {
    fresh((_req, res, n) =>
      n <= 2 ? status(res, 429, 'TooManyRequests', { 'retry-after': '1' }) : ok(res, { n }),
    );
    const http = new KubeHttp(access);
    try {
      assert.deepEqual(await http.send('GET', '/api/v1/namespaces/x/secrets/y'), { n: 3 });
    } finally {
      http.close();
    }
    assert.equal(seen.length, 3);
    const gaps = [1, 2].map((i) => (seen[i]?.at ?? 0) - (seen[i - 1]?.at ?? 0));
    assert.ok(
      gaps.every((g) => g >= 950 && g < 3000),
      `expected about 1 s between attempts, got ${gaps.join(', ')} ms`,
    );
    assert.ok(
      seen.every((s) => s.userAgent === USER_AGENT),
      'the User-Agent on every attempt',
    );
  });

  it('a PATCH or POST answered 429 is sent again with the same body: the API server refused it before running it', async () => {
    for (const method of ['PATCH', 'POST']) {
      fresh((_req, res, n) =>
        n === 1 ? status(res, 429, 'TooManyRequests', { 'retry-after': '0' }) : ok(res, {}),
      );
      const http = new KubeHttp(access, { retry: { baseMs: 10 } });
      try {
        await http.send(method, '/apis/x/v1/things/a', { spec: { n: 1 } });
      } finally {
        http.close();
      }
      assert.deepEqual(
        seen.map((s) => [s.method, s.body]),
        [
          [method, '{"spec":{"n":1}}'],
          [method, '{"spec":{"n":1}}'],
        ],
      );
    }
  });

  it('a 503 with Retry-After is retried for a GET only: a write may have been carried out', async () => {
    fresh((_req, res, n) =>
      n === 1 ? status(res, 503, 'ServiceUnavailable', { 'retry-after': '0' }) : ok(res, { ok: true }),
    );
    const http = new KubeHttp(access, { retry: { baseMs: 10 } });
    try {
      assert.deepEqual(await http.send('GET', '/a'), { ok: true });
      assert.equal(seen.length, 2, 'GET retried');
      fresh((_req, res) => status(res, 503, 'ServiceUnavailable', { 'retry-after': '0' }));
      await assert.rejects(
        http.send('POST', '/a', {}),
        (err) => err instanceof KubeHttpError && err.status === 503,
      );
      assert.equal(seen.length, 1, 'POST not retried');
      fresh((_req, res) => status(res, 503, 'ServiceUnavailable'));
      await assert.rejects(
        http.send('GET', '/a'),
        (err) => err instanceof KubeHttpError && err.status === 503,
      );
      assert.equal(seen.length, 1, 'a 503 without Retry-After is not retried');
    } finally {
      http.close();
    }
  });

  it('gives up after the last retry, and at once when the wait would pass the deadline', async () => {
    fresh((_req, res) => status(res, 429, 'TooManyRequests', { 'retry-after': '0' }));
    const http = new KubeHttp(access, { retry: { maxRetries: 3, baseMs: 5 } });
    try {
      await assert.rejects(
        http.send('GET', '/a'),
        (err) => err instanceof KubeHttpError && err.status === 429,
      );
      assert.equal(seen.length, 4, 'the first attempt and three retries');
      fresh((_req, res) => status(res, 429, 'TooManyRequests', { 'retry-after': '3600' }));
      const t0 = performance.now();
      await assert.rejects(
        http.send('GET', '/a', undefined, { timeoutMs: 2000 }),
        (err) => err instanceof KubeHttpError && err.status === 429 && err.retryAfterMs === 3_600_000,
      );
      assert.equal(seen.length, 1, 'no retry an hour later');
      assert.ok(performance.now() - t0 < 1500, 'the 429 came back at once, not after the deadline');
    } finally {
      http.close();
    }
  });

  it('caps a long Retry-After at the policy maximum', async () => {
    fresh((_req, res, n) =>
      n === 1 ? status(res, 429, 'TooManyRequests', { 'retry-after': '3600' }) : ok(res, {}),
    );
    const http = new KubeHttp(access, { retry: { maxWaitMs: 300 } });
    try {
      await http.send('GET', '/a');
    } finally {
      http.close();
    }
    const gap = (seen[1]?.at ?? 0) - (seen[0]?.at ?? 0);
    assert.ok(gap >= 280 && gap < 2000, `expected the 300 ms cap, waited ${gap} ms`);
  });

  it('retries a watch refused with 429 before it opens, then streams its events', async () => {
    fresh((_req, res, n) => {
      if (n === 1) return status(res, 429, 'TooManyRequests', { 'retry-after': '0' });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ type: 'ADDED', object: { metadata: { name: 'a' } } })}\n`);
    });
    const http = new KubeHttp(access, { retry: { baseMs: 10 } });
    const events: unknown[] = [];
    try {
      await http.stream('/apis/x/v1/things?watch=true', (e) => events.push(e), {
        signal: new AbortController().signal,
        idleMs: 5000,
      });
    } finally {
      http.close();
    }
    assert.equal(seen.length, 2);
    assert.equal(events.length, 1);
    assert.ok(
      seen.every((s) => s.userAgent === USER_AGENT),
      'the User-Agent on the watch',
    );
  });

  it('restarts a list whose continue token expired (410) and lists every object once', async () => {
    let expired = false;
    fresh((req, res) => {
      const q = new URL(req.url ?? '', 'https://x').searchParams;
      const token = q.get('continue');
      if (token === 'p2' && !expired) {
        expired = true;
        return status(res, 410, 'Expired');
      }
      const page = token === 'p2' ? 2 : 1;
      ok(res, {
        metadata: { resourceVersion: '7', ...(page === 1 ? { continue: 'p2' } : {}) },
        items: page === 1 ? [{ metadata: { name: 'a' } }] : [{ metadata: { name: 'b' } }],
      });
    });
    const client = new ClusterClient(access, undefined, { pageSize: 1 });
    try {
      const list = await client.listPublishers();
      assert.deepEqual(
        list.items.map((p) => p.metadata.name),
        ['a', 'b'],
      );
    } finally {
      client.close();
    }
    assert.deepEqual(
      seen.map((s) => new URL(s.url, 'https://x').searchParams.toString()),
      ['limit=1', 'limit=1&continue=p2', 'limit=1', 'limit=1&continue=p2'],
    );
  });

  it('sends the User-Agent when reading the issuer documents too', async () => {
    fresh((_req, res) => ok(res, { keys: [] }));
    const source = new ApiServerSource(access, { timeoutMs: 5000 });
    try {
      await source.fetchDocuments();
    } finally {
      source.close();
    }
    assert.deepEqual(
      seen.map((s) => s.userAgent),
      [USER_AGENT, USER_AGENT],
    );
  });
});
