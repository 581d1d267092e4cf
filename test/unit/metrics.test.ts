/**
 * The operator's metrics as Prometheus scrapes them: prom-client's exposition
 * of the registry main builds, with the names, types and labels that the docs,
 * the alerts and dashboards rely on; the work queue's metrics as
 * controller-runtime names them, fed by a real WorkQueue; the Kubernetes
 * client's as client-go names them, fed by KubeHttp against a real HTTPS server.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { collectDefaultMetrics, register as globalRegistry, Registry } from 'prom-client';
import type { OidcPublisherStatus } from '../../src/api/types.ts';
import { type ReconcileResult, WorkQueue } from '../../src/controller/queue.ts';
import type { SyncOutcome } from '../../src/core/status.ts';
import { StaticAccess } from '../../src/kube/access.ts';
import { KubeHttp, type KubeRequestResult } from '../../src/kube/http.ts';
import { startHealthServer } from '../../src/server/health.ts';
import { Metrics } from '../../src/server/metrics.ts';
import { createCa, issueCert } from '../bed/pki.ts';

/** A value of the exposition: the sample line `series` (name and labels as written), or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** `# TYPE` of each metric in the exposition. */
function types(text: string): Map<string, string> {
  return new Map(
    [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] ?? '', m[2] ?? ''] as [string, string]),
  );
}

/** A sync that found storage current, with `keys` keys. */
function upToDate(keys: number): SyncOutcome {
  return {
    preparation: { kind: 'ready', keys: Array.from({ length: keys }, (_, i) => ({ kid: `k${i}` })) },
  } as unknown as SyncOutcome;
}

/** A status as a sync writes it: KeysTrusted `status`/`reason`, served keys with these trustedAt. */
function trustStatus(
  status: 'True' | 'False' | 'Unknown',
  reason: string,
  trustedAt: readonly string[],
  retired: readonly string[] = [],
): OidcPublisherStatus {
  const key = (t: string, i: number) => ({ kid: `k${i}`, kty: 'RSA', firstSeen: t, trustedAt: t });
  return {
    conditions: [
      {
        type: 'KeysTrusted',
        status,
        reason,
        message: 'm',
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
    ],
    keys: [
      ...trustedAt.map(key),
      ...retired.map((t, i) => ({ ...key(t, trustedAt.length + i), retiredAt: t })),
    ],
  } as unknown as OidcPublisherStatus;
}

describe('operator metrics (prom-client exposition)', () => {
  it('registers every metric with its type and labels, the operator names as before', async () => {
    const registry = new Registry();
    const m = new Metrics(registry);
    const q = m.workQueue('oidcpublisher');
    q.added('a');
    q.started('a');
    q.done('a');
    q.retried('a');
    m.kubeRequest({ method: 'GET', host: 'h:6443', code: 200, seconds: 0.01 });
    m.synced('p', upToDate(2), 20, trustStatus('True', 'AllKeysTrusted', ['2026-01-01T00:00:00Z']));
    m.written('p', {} as never);
    m.skipped('p', 'k');
    m.leader.set(1);
    const text = await registry.metrics();
    const expected: [string, string][] = [
      ['oidc_publisher_reconcile_total', 'counter'],
      ['oidc_publisher_reconcile_duration_seconds', 'histogram'],
      ['oidc_publisher_publish_duration_seconds', 'histogram'],
      ['oidc_publisher_storage_writes_total', 'counter'],
      ['oidc_publisher_storage_skipped_writes_total', 'counter'],
      ['oidc_publisher_last_success_timestamp_seconds', 'gauge'],
      ['oidc_publisher_last_publish_timestamp_seconds', 'gauge'],
      ['oidc_publisher_published_keys', 'gauge'],
      ['oidc_publisher_ready', 'gauge'],
      ['oidc_publisher_keys_trusted', 'gauge'],
      ['oidc_publisher_keys_trusted_at_timestamp_seconds', 'gauge'],
      ['oidc_publisher_key_changes_total', 'counter'],
      ['oidc_publisher_verified', 'gauge'],
      ['oidc_publisher_verification_duration_seconds', 'histogram'],
      ['oidc_publisher_leader', 'gauge'],
      ['workqueue_depth', 'gauge'],
      ['workqueue_adds_total', 'counter'],
      ['workqueue_retries_total', 'counter'],
      ['workqueue_queue_duration_seconds', 'histogram'],
      ['workqueue_work_duration_seconds', 'histogram'],
      ['workqueue_unfinished_work_seconds', 'gauge'],
      ['workqueue_longest_running_processor_seconds', 'gauge'],
      ['rest_client_requests_total', 'counter'],
      ['rest_client_request_duration_seconds', 'histogram'],
    ];
    assert.deepEqual([...types(text)], expected);
    assert.equal(sample(text, 'oidc_publisher_reconcile_total{result="up_to_date"}'), 1);
    assert.equal(sample(text, 'oidc_publisher_ready{publisher="p"}'), 1);
    assert.equal(sample(text, 'oidc_publisher_published_keys{publisher="p"}'), 2);
    assert.equal(sample(text, 'oidc_publisher_storage_writes_total{publisher="p"}'), 1);
    assert.equal(sample(text, 'oidc_publisher_storage_skipped_writes_total{publisher="p"}'), 1);
    assert.equal(sample(text, 'oidc_publisher_leader'), 1);
    assert.equal(sample(text, 'oidc_publisher_reconcile_duration_seconds_bucket{le="0.025"}'), 1);
    assert.equal(sample(text, 'oidc_publisher_reconcile_duration_seconds_bucket{le="0.01"}'), 0);
    assert.equal(sample(text, 'oidc_publisher_reconcile_duration_seconds_count'), 1);
    const lastSuccess = sample(text, 'oidc_publisher_last_success_timestamp_seconds{publisher="p"}') ?? 0;
    assert.ok(
      Math.abs(lastSuccess - Date.now() / 1000) < 60,
      `last success ${lastSuccess} is now, in seconds`,
    );
  });

  it('says KeysTrusted per publisher with its reason, one series each, and when the last served key is trusted', async () => {
    const registry = new Registry();
    const m = new Metrics(registry);
    // A new key, published at 12:00 with a 300s cache lifetime: not trusted before 12:05; the
    // retired key's trustedAt is not the one waited for.
    m.synced(
      'p',
      upToDate(2),
      5,
      trustStatus(
        'False',
        'KeyNotYetTrusted',
        ['2026-01-01T00:05:00Z', '2026-01-01T12:05:00Z'],
        ['2026-06-01T00:00:00Z'],
      ),
    );
    let text = await registry.metrics();
    assert.equal(sample(text, 'oidc_publisher_keys_trusted{publisher="p",reason="KeyNotYetTrusted"}'), 0);
    assert.equal(
      sample(text, 'oidc_publisher_keys_trusted_at_timestamp_seconds{publisher="p"}'),
      Date.parse('2026-01-01T12:05:00Z') / 1000,
    );
    // The canary shows the API server signing with it: the reason the alert fires on.
    m.synced('p', upToDate(2), 5, trustStatus('False', 'SigningKeyNotTrusted', ['2026-01-01T12:05:00Z']));
    text = await registry.metrics();
    assert.equal(sample(text, 'oidc_publisher_keys_trusted{publisher="p",reason="SigningKeyNotTrusted"}'), 0);
    assert.doesNotMatch(text, /reason="KeyNotYetTrusted"/, 'the previous reason leaves');
    m.synced('p', upToDate(2), 5, trustStatus('True', 'AllKeysTrusted', ['2026-01-01T12:05:00Z']));
    text = await registry.metrics();
    assert.deepEqual(
      text.split('\n').filter((l) => l.startsWith('oidc_publisher_keys_trusted{')),
      ['oidc_publisher_keys_trusted{publisher="p",reason="AllKeysTrusted"} 1'],
    );
    // A reason not of the condition's (status is writable) is not a new label value.
    m.synced('p', upToDate(2), 5, trustStatus('False', 'x'.repeat(64), []));
    text = await registry.metrics();
    assert.deepEqual(
      text.split('\n').filter((l) => l.startsWith('oidc_publisher_keys_trusted{')),
      ['oidc_publisher_keys_trusted{publisher="p",reason="Unknown"} 0'],
    );
    assert.doesNotMatch(
      text,
      /^oidc_publisher_keys_trusted_at_timestamp_seconds\{/m,
      'no served key, no trustedAt',
    );
    m.forget('p');
    assert.doesNotMatch(await registry.metrics(), /publisher="p"/);
  });

  it('shows unlabelled counters, gauges and histograms at 0 before anything happened', async () => {
    const registry = new Registry();
    new Metrics(registry);
    const text = await registry.metrics();
    assert.equal(sample(text, 'oidc_publisher_leader'), 0);
    assert.equal(sample(text, 'oidc_publisher_publish_duration_seconds_count'), 0);
    assert.equal(sample(text, 'oidc_publisher_publish_duration_seconds_bucket{le="+Inf"}'), 0);
    assert.doesNotMatch(text, /^oidc_publisher_ready\{/m, 'no series of a labelled gauge before a sync');
  });

  it('refuses a series with a label left out, instead of exposing one without it', () => {
    const m = new Metrics(new Registry());
    assert.throws(() => m.writes.labels().inc(), /Invalid number of arguments \(0\).*publisher/);
    assert.throws(
      () => m.keyChanges.labels('p').inc(),
      /Invalid number of arguments \(1\).*publisher, change/,
    );
    assert.throws(() => m.restRequests.labels('200', 'GET').inc(), /Invalid number of arguments \(2\)/);
    assert.throws(() => m.ready.remove('p', 'extra'), /Invalid number of arguments \(2\)/);
  });

  it('forgets the series of a deleted publisher and keeps the others', async () => {
    const registry = new Registry();
    const m = new Metrics(registry);
    for (const name of ['gone', 'kept']) {
      m.synced(name, upToDate(1), 5);
      m.written(name, {} as never);
      m.keyChanges.labels(name, 'added').inc();
    }
    m.forget('gone');
    const text = await registry.metrics();
    assert.doesNotMatch(text, /publisher="gone"/);
    assert.equal(sample(text, 'oidc_publisher_ready{publisher="kept"}'), 1);
    assert.equal(sample(text, 'oidc_publisher_storage_writes_total{publisher="kept"}'), 1);
    assert.equal(sample(text, 'oidc_publisher_key_changes_total{publisher="kept",change="added"}'), 1);
  });

  it('puts the default process and Node.js metrics on the given registry, not the global one', async () => {
    const registry = new Registry();
    new Metrics(registry);
    collectDefaultMetrics({ register: registry });
    const text = await registry.metrics();
    const t = types(text);
    assert.equal(t.get('process_resident_memory_bytes'), 'gauge');
    assert.equal(t.get('process_cpu_seconds_total'), 'counter');
    assert.equal(t.get('nodejs_heap_size_used_bytes'), 'gauge');
    assert.equal(t.get('nodejs_eventloop_lag_seconds'), 'gauge');
    assert.ok((sample(text, 'process_resident_memory_bytes') ?? 0) > 1e6, 'RSS is reported in bytes');
    assert.equal(t.get('oidc_publisher_leader'), 'gauge', 'the operator metrics are on the same registry');
    assert.equal((await globalRegistry.getMetricsAsJSON()).length, 0, 'the global registry stays empty');
  });
});

describe('work queue metrics (controller-runtime names, label name)', () => {
  it('counts adds and retries and times waiting and work of a real WorkQueue', async () => {
    const registry = new Registry();
    let now = 1000;
    const m = new Metrics(registry, { now: () => now });
    const q = new WorkQueue({
      concurrency: 1,
      // The retry of a failed key is not due during the test.
      baseDelayMs: 60_000,
      maxDelayMs: 60_000,
      random: () => 0.5,
      observer: m.workQueue('oidcpublisher'),
    });
    let release: (r: ReconcileResult) => void = () => {};
    const calls: string[] = [];
    q.start(
      (key) =>
        new Promise<ReconcileResult>((resolve) => {
          calls.push(key);
          release = resolve;
        }),
    );
    assert.equal(
      sample(await registry.metrics(), 'workqueue_retries_total{name="oidcpublisher"}'),
      0,
      'the counters of a queue are there at 0 before anything happened',
    );
    try {
      q.add('a'); // runs at once: waited 0 s
      q.add('b'); // waits for the only worker
      q.add('b'); // merged: not another add
      now += 3;
      let text = await registry.metrics();
      assert.equal(sample(text, 'workqueue_adds_total{name="oidcpublisher"}'), 2);
      assert.equal(sample(text, 'workqueue_depth{name="oidcpublisher"}'), 1, 'b waits');
      assert.equal(sample(text, 'workqueue_unfinished_work_seconds{name="oidcpublisher"}'), 3);
      assert.equal(sample(text, 'workqueue_longest_running_processor_seconds{name="oidcpublisher"}'), 3);

      release({ backoff: true }); // a failed: retried after its backoff
      await sleep(0);
      assert.deepEqual(calls, ['a', 'b']);
      now += 1;
      text = await registry.metrics();
      assert.equal(sample(text, 'workqueue_retries_total{name="oidcpublisher"}'), 1);
      assert.equal(
        sample(text, 'workqueue_depth{name="oidcpublisher"}'),
        0,
        'a waits on its backoff timer, not in the queue',
      );
      assert.equal(sample(text, 'workqueue_queue_duration_seconds_count{name="oidcpublisher"}'), 2);
      assert.equal(
        sample(text, 'workqueue_queue_duration_seconds_sum{name="oidcpublisher"}'),
        3,
        'b waited 3 s',
      );
      assert.equal(
        sample(text, 'workqueue_queue_duration_seconds_bucket{le="1e-8",name="oidcpublisher"}'),
        1,
      );
      assert.equal(sample(text, 'workqueue_work_duration_seconds_count{name="oidcpublisher"}'), 1);
      assert.equal(sample(text, 'workqueue_work_duration_seconds_sum{name="oidcpublisher"}'), 3, 'a ran 3 s');
      assert.equal(sample(text, 'workqueue_work_duration_seconds_bucket{le="1",name="oidcpublisher"}'), 0);
      assert.equal(sample(text, 'workqueue_work_duration_seconds_bucket{le="10",name="oidcpublisher"}'), 1);
      assert.equal(
        sample(text, 'workqueue_longest_running_processor_seconds{name="oidcpublisher"}'),
        1,
        'b runs',
      );

      q.add('b'); // added while it runs: waits, and runs again after
      text = await registry.metrics();
      assert.equal(sample(text, 'workqueue_adds_total{name="oidcpublisher"}'), 3);
      assert.equal(sample(text, 'workqueue_depth{name="oidcpublisher"}'), 1);
      release({ done: true });
      await sleep(0);
      assert.deepEqual(calls, ['a', 'b', 'b']);
      release({ done: true });
      await sleep(0);
      text = await registry.metrics();
      assert.equal(sample(text, 'workqueue_depth{name="oidcpublisher"}'), 0);
      assert.equal(sample(text, 'workqueue_work_duration_seconds_count{name="oidcpublisher"}'), 3);
      assert.equal(sample(text, 'workqueue_unfinished_work_seconds{name="oidcpublisher"}'), 0);
    } finally {
      await q.shutdown(100);
    }
  });

  it('stops counting a removed key or one dropped at shutdown as waiting', async () => {
    const registry = new Registry();
    const m = new Metrics(registry);
    const q = new WorkQueue({ concurrency: 1, baseDelayMs: 5, maxDelayMs: 5, observer: m.workQueue('q') });
    q.add('a');
    q.add('b');
    let text = await registry.metrics();
    assert.equal(sample(text, 'workqueue_depth{name="q"}'), 2, 'no worker started yet');
    q.remove('a');
    text = await registry.metrics();
    assert.equal(sample(text, 'workqueue_depth{name="q"}'), 1);
    await q.shutdown(100);
    text = await registry.metrics();
    assert.equal(sample(text, 'workqueue_depth{name="q"}'), 0);
    assert.equal(sample(text, 'workqueue_adds_total{name="q"}'), 2);
  });
});

describe('REST client metrics (client-go names)', () => {
  let dir: string;
  let server: Server;
  let port: number;
  let ca: Buffer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'metrics-test-'));
    const authority = createCa(dir, 'test-ca');
    const cert = issueCert(authority, 'server', { commonName: 'localhost', serverNames: ['127.0.0.1'] });
    ca = readFileSync(authority.cert);
    server = createServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (req, res) => {
      if (req.url === '/ok') res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else if (req.url === '/cut') req.socket.destroy();
      else res.writeHead(404, { 'content-type': 'application/json' }).end('{"reason":"NotFound"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(() => {
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts each request of KubeHttp by code, method and host and times it by verb and host', async () => {
    const seen: KubeRequestResult[] = [];
    const registry = new Registry();
    const m = new Metrics(registry);
    const http = new KubeHttp(new StaticAccess({ server: `https://127.0.0.1:${port}`, ca: { data: ca } }), {
      observer: (r) => {
        seen.push(r);
        m.kubeRequest(r);
      },
    });
    try {
      await http.send('GET', '/ok');
      await http.send('PATCH', '/ok', {});
      await assert.rejects(http.send('GET', '/missing'), /HTTP 404 NotFound/);
      await assert.rejects(http.send('GET', '/cut'));
    } finally {
      http.close();
    }
    const host = `127.0.0.1:${port}`;
    assert.deepEqual(
      seen.map((r) => [r.method, r.host, r.code]),
      [
        ['GET', host, 200],
        ['PATCH', host, 200],
        ['GET', host, 404],
        ['GET', host, '<error>'],
      ],
    );
    assert.ok(
      seen.every((r) => r.seconds >= 0 && r.seconds < 10),
      'durations in seconds',
    );
    const text = await registry.metrics();
    assert.equal(sample(text, `rest_client_requests_total{code="200",method="GET",host="${host}"}`), 1);
    assert.equal(sample(text, `rest_client_requests_total{code="200",method="PATCH",host="${host}"}`), 1);
    assert.equal(sample(text, `rest_client_requests_total{code="404",method="GET",host="${host}"}`), 1);
    assert.equal(sample(text, `rest_client_requests_total{code="<error>",method="GET",host="${host}"}`), 1);
    assert.equal(sample(text, `rest_client_request_duration_seconds_count{verb="GET",host="${host}"}`), 3);
    assert.equal(
      sample(text, `rest_client_request_duration_seconds_bucket{le="60",verb="PATCH",host="${host}"}`),
      1,
    );
  });

  it('counts a watch once, when its answer arrives', async () => {
    const seen: KubeRequestResult[] = [];
    const http = new KubeHttp(new StaticAccess({ server: `https://127.0.0.1:${port}`, ca: { data: ca } }), {
      observer: (r) => seen.push(r),
    });
    try {
      await assert.rejects(
        http.stream('/missing', () => {}, { signal: new AbortController().signal, idleMs: 5_000 }),
        /HTTP 404/,
      );
    } finally {
      http.close();
    }
    assert.deepEqual(
      seen.map((r) => [r.method, r.code]),
      [['GET', 404]],
    );
  });
});

describe('/metrics on the health server', () => {
  it("answers with the registry's exposition and content type", async () => {
    const registry = new Registry();
    const m = new Metrics(registry);
    m.leader.set(1);
    const server = await startHealthServer('127.0.0.1:0', { ready: () => true, metrics: registry });
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), registry.contentType);
      assert.equal(registry.contentType, 'text/plain; version=0.0.4; charset=utf-8');
      const text = await res.text();
      assert.equal(sample(text, 'oidc_publisher_leader'), 1);
    } finally {
      server.close();
    }
  });
});
