/**
 * Faults of the control plane, against the real bed (own bed: servers are
 * stopped and started):
 *
 * - the operator starts while its API server is down: it stays up, reports
 *   not ready, and converges once the API server is back;
 * - the API server its publisher reads through a kubeconfig Secret goes down
 *   (a second kube-apiserver of the same cluster, as in an HA control plane,
 *   so the operator's own API server stays up and the status can say what
 *   happened): Ready=False/SourceUnreachable, the bucket untouched, recovery
 *   on the next retry once it is back;
 * - its own API server goes down long enough for the informer to back off,
 *   and changes are made (and etcd compacted) before it watches again: the
 *   old resourceVersion is gone, so it must list again, and the changes (a new
 *   spec, a deletion that needs the finalizer) are reconciled;
 * - the API server restarts under a live watch;
 * - etcd restarts under the API servers.
 *
 * The bucket is compared byte for byte (ETag and Last-Modified too) and MinIO
 * counts PutObject requests. Leader election is off: with it, an outage longer
 * than --renew-deadline makes the operator exit on purpose (leader-election.test.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { useBed } from '../bed/shared.ts';
import { applyYaml, condition, eventually, OperatorProcess, waitForReady } from '../e2e/harness.ts';
import {
  anonymous,
  apiserverMetrics,
  installWithWriter,
  linesOf,
  patchSpec,
  publisher,
  putObjectCount,
  sleep,
  sourceKubeconfigSecret,
  stored,
} from './helpers.ts';

const NAME = 'remote';
const PREFIX = 'public/cluster-a';
const DOOMED = 'doomed';
const DOOMED_PREFIX = 'public/doomed';
const ARGS = ['--leader-elect', 'false', '--backoff-max', '4s'];
const WATCH_FAILED = 'watch of OidcPublishers failed; restarting';

describe('faults: the API server and etcd go away', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  let kubeconfig: string;
  let replica: Awaited<ReturnType<Bed['startApiserverReplica']>>;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await op?.stop('SIGTERM');
      },
    },
  );

  const cacheControlServed = async (prefix: string) =>
    (await anonymous(bed, prefix)).jwks.headers['cache-control'];

  /** After a failed test, starts again what it stopped, so the next tests see a whole bed. */
  const restoreIfDown = async (server: 'apiserver' | 'replica' | 'etcd') => {
    const admin = {
      ca: bed.ca,
      cert: readFileSync(bed.state.admin.cert),
      key: readFileSync(bed.state.admin.key),
    };
    const url =
      server === 'etcd' ? undefined : `${server === 'apiserver' ? bed.apiserverURL : replica.url}/readyz`;
    const up = url
      ? (await request(url, { ...admin, timeoutMs: 2000 }).catch(() => undefined))?.status === 200
      : (await fetch(`${bed.state.etcd.url}/health`).catch(() => undefined))?.ok === true;
    if (up) return;
    if (server === 'apiserver') await bed.startApiserver();
    else if (server === 'replica') await replica.start();
    else await bed.startServer('etcd');
  };

  const operator = (): OperatorProcess => {
    assert.ok(op, 'the operator was started by the first test');
    return op;
  };

  before(async () => {
    bed = useOwn();
    kubeconfig = await installWithWriter(bed);
    replica = await bed.startApiserverReplica();
    await sourceKubeconfigSecret(bed, 'source-kubeconfig', replica.url);
    // Created before any operator runs: the first one to start must pick it up.
    await applyYaml(bed, publisher(bed, NAME, { prefix: PREFIX, kubeconfigSecret: 'source-kubeconfig' }));
  });

  it('starts while its API server is down: stays up, reports not ready, converges once it is back', async (t) => {
    await bed.stopApiserver();
    t.after(() => restoreIfDown('apiserver'));
    const downAt = Date.now();
    op = await OperatorProcess.launch(bed, kubeconfig, ARGS);
    const o = op;
    await eventually(
      'the health endpoint',
      async () =>
        (await fetch(`http://127.0.0.1:${o.healthPort}/healthz`).catch(() => undefined))?.status === 200
          ? true
          : undefined,
      30_000,
    );
    // Five seconds without an API server: alive, and honest about not being ready.
    for (const until = Date.now() + 5000; Date.now() < until; await sleep(500)) {
      assert.equal(o.child.exitCode, null, `the operator keeps running; its output:\n${o.output.join('\n')}`);
      assert.equal(await o.readyz(), 503, '/readyz is 503 while it cannot watch');
    }
    assert.ok(linesOf(o, undefined, WATCH_FAILED).length >= 1, 'it logs the failed watch and retries');
    await bed.startApiserver();
    const backAt = Date.now();
    await eventually(
      '/readyz to turn 200',
      async () => ((await o.readyz()) === 200 ? true : undefined),
      60_000,
    );
    const readyMs = Date.now() - backAt;
    const p = await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
    const convergedMs = Date.now() - backAt;
    assert.equal(condition(p, 'Published')?.status, 'True');
    const docs = await stored(bed, PREFIX);
    assert.ok(docs.jwks?.body.includes(bed.signingKey.kid), 'the JWKS holds the signing key');
    const delays = linesOf(o, undefined, WATCH_FAILED).map((l) => l.restartInMs);
    t.diagnostic(
      `API server down ${Math.round((backAt - downAt) / 1000)} s at start; watch retried after ${delays.join(', ')} ms; /readyz 200 ${readyMs} ms and Ready ${convergedMs} ms after it was back`,
    );
    // The informer retries with a backoff doubling from 0.5 s and capped at 30 s; just after the API
    // server is back it may still fail once (the CRD is served a moment after /readyz), so the wait
    // is at most two delays: 16 s + 30 s.
    assert.ok(readyMs < 50_000, `/readyz turned 200 ${readyMs} ms after the API server was back`);
  });

  it('reports SourceUnreachable when the source API server goes down, writes nothing, recovers by itself', async (t) => {
    const o = operator();
    await waitForReady(bed, NAME, 'True', 'Ready');
    const before = await stored(bed, PREFIX);
    const puts = await putObjectCount(bed);
    await replica.stop();
    t.after(() => restoreIfDown('replica'));
    const downAt = Date.now();
    const p = await waitForReady(bed, NAME, 'False', 'SourceUnreachable', 30_000);
    assert.match(
      condition(p, 'SourceAvailable')?.message ?? '',
      /^GET https:\/\/127\.0\.0\.1:\d+\/(\.well-known\/openid-configuration|openid\/v1\/jwks): connection refused$/,
    );
    assert.equal(condition(p, 'Published')?.status, 'Unknown', 'nothing was attempted');
    await eventually(
      'two more retries while it is down',
      async () => (linesOf(o, NAME, 'sync failed', downAt).length >= 3 ? true : undefined),
      30_000,
    );
    assert.equal(await o.readyz(), 200, "the operator's own API server is up: its watch is fine");
    assert.deepEqual(
      await stored(bed, PREFIX),
      before,
      'the bucket is untouched (bytes, ETag, Last-Modified)',
    );
    assert.equal(await putObjectCount(bed), puts, 'no PutObject while the source is down');
    await replica.start();
    const upAt = Date.now();
    await waitForReady(bed, NAME, 'True', 'Ready', 30_000);
    const recoveredMs = Date.now() - upAt;
    const retries = linesOf(o, NAME, 'sync failed', downAt).length;
    t.diagnostic(
      `source down ${Math.round((upAt - downAt) / 1000)} s: ${retries} failed syncs; Ready again ${recoveredMs} ms after it was back`,
    );
    // Transient: retried with backoff capped at 4 s, so the first retry after it is back is at most 4 s away.
    assert.ok(recoveredMs < 4000 + 10_000, `Ready again ${recoveredMs} ms after the source was back`);
    assert.deepEqual(await stored(bed, PREFIX), before, 'same documents: nothing to write after recovery');
    assert.equal(await putObjectCount(bed), puts);
  });

  it('after a long outage of its own API server, lists again (old resourceVersion compacted) and reconciles what changed meanwhile', async (t) => {
    const o = operator();
    await applyYaml(
      bed,
      publisher(bed, DOOMED, {
        prefix: DOOMED_PREFIX,
        kubeconfigSecret: 'source-kubeconfig',
        deletionPolicy: 'Delete',
      }),
    );
    await waitForReady(bed, DOOMED, 'True', 'Ready');
    assert.ok((await stored(bed, DOOMED_PREFIX)).jwks, 'the doomed publisher published');
    const before = await stored(bed, PREFIX);
    const puts = await putObjectCount(bed);

    await bed.stopApiserver();
    t.after(() => restoreIfDown('apiserver'));
    const downAt = Date.now();
    // Wait until the informer has backed off far enough that the API server can come back
    // and be changed before the informer's next attempt.
    const failure = await eventually(
      'the watch retry delay to reach 16 s',
      async () => linesOf(o, undefined, WATCH_FAILED, downAt).find((l) => Number(l.restartInMs) >= 16_000),
      60_000,
    );
    const nextAttemptAt = Date.parse(failure.time ?? '') + Number(failure.restartInMs);
    assert.equal(o.child.exitCode, null, 'the operator keeps running');
    assert.equal(await o.readyz(), 503);
    assert.deepEqual(await stored(bed, PREFIX), before, 'the bucket is untouched during the outage');
    assert.equal(await putObjectCount(bed), puts, 'no PutObject during the outage');

    await bed.startApiserver();
    const backAt = Date.now();
    await patchSpec(bed, NAME, { cacheControl: 'public, max-age=77' });
    await bed.kubectl(['delete', 'oidcpublisher', DOOMED, '--wait=false']);
    const revision = await bed.compactEtcd();
    const changedAt = Date.now();
    assert.ok(
      changedAt < nextAttemptAt,
      `the changes were made ${nextAttemptAt - changedAt} ms before the informer's next attempt`,
    );
    assert.equal(await o.readyz(), 503, 'the informer is not watching yet');
    const listsBefore = oidcPublisherLists(await apiserverMetrics(bed));
    assert.equal(listsBefore, 0, 'nobody listed OidcPublishers since the API server restarted');

    await eventually(
      'the spec change made while it was not watching to be published',
      async () => ((await cacheControlServed(PREFIX)) === 'public, max-age=77' ? true : undefined),
      60_000,
    );
    const publishedMs = Date.now() - backAt;
    await eventually(
      'the OidcPublisher deleted while it was not watching to be finalized',
      async () => {
        // A GET, not a LIST: the LIST count below must be the informer's alone.
        try {
          await bed.kubectl(['get', 'oidcpublisher', DOOMED, '-o', 'name']);
          return undefined;
        } catch (err) {
          return /NotFound/.test(String(err)) ? true : undefined;
        }
      },
      30_000,
    );
    const gone = await stored(bed, DOOMED_PREFIX);
    assert.equal(gone.jwks, undefined, 'deletionPolicy Delete removed the JWKS');
    assert.equal(gone.discovery, undefined, 'deletionPolicy Delete removed the discovery document');
    const lists = oidcPublisherLists(await apiserverMetrics(bed));
    assert.ok(lists >= 1, `the informer listed OidcPublishers again (LIST requests since restart: ${lists})`);
    await waitForReady(bed, NAME, 'True', 'Ready');
    t.diagnostic(
      `own API server down ${Math.round((backAt - downAt) / 1000)} s; etcd compacted at revision ${revision}; ` +
        `changes made ${nextAttemptAt - changedAt} ms before the informer's retry; published ${publishedMs} ms after the API server was back; ${lists} LIST(s)`,
    );
  });

  it('resumes after the API server restarts under its watch, and reconciles the next change', async (t) => {
    const o = operator();
    await bed.restartApiserver();
    const backAt = Date.now();
    await patchSpec(bed, NAME, { cacheControl: 'public, max-age=78' });
    await eventually(
      'the change made right after the restart to be published',
      async () => ((await cacheControlServed(PREFIX)) === 'public, max-age=78' ? true : undefined),
      45_000,
    );
    const publishedMs = Date.now() - backAt;
    await eventually('/readyz', async () => ((await o.readyz()) === 200 ? true : undefined), 30_000);
    await waitForReady(bed, NAME, 'True', 'Ready');
    t.diagnostic(`API server restarted: the next change was published ${publishedMs} ms after it was back`);
    assert.ok(publishedMs < 30_000, `published ${publishedMs} ms after the restart`);
  });

  it('survives etcd restarting under the API servers: no writes while it is down, converges after', async (t) => {
    const o = operator();
    await waitForReady(bed, NAME, 'True', 'Ready');
    const before = await stored(bed, PREFIX);
    const puts = await putObjectCount(bed);
    await bed.stopServer('etcd');
    t.after(() => restoreIfDown('etcd'));
    const downAt = Date.now();
    await sleep(8000);
    assert.equal(o.child.exitCode, null, 'the operator keeps running without etcd');
    assert.deepEqual(await stored(bed, PREFIX), before, 'the bucket is untouched while etcd is down');
    assert.equal(await putObjectCount(bed), puts, 'no PutObject while etcd is down');
    await bed.startServer('etcd');
    const backAt = Date.now();
    await eventually(
      'the API server to accept a change again',
      async () => {
        await patchSpec(bed, NAME, { cacheControl: 'public, max-age=79' });
        return true;
      },
      60_000,
    );
    await eventually(
      'the change to be published',
      async () => ((await cacheControlServed(PREFIX)) === 'public, max-age=79' ? true : undefined),
      60_000,
    );
    const publishedMs = Date.now() - backAt;
    await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
    await eventually('/readyz', async () => ((await o.readyz()) === 200 ? true : undefined), 30_000);
    t.diagnostic(
      `etcd down ${Math.round((backAt - downAt) / 1000)} s: the next change was published ${publishedMs} ms after it was back`,
    );
  });
});

/** LIST requests for OidcPublishers counted by the API server since it started. */
function oidcPublisherLists(metrics: string): number {
  let sum = 0;
  for (const line of metrics.split('\n')) {
    if (
      line.startsWith('apiserver_request_total{') &&
      line.includes('resource="oidcpublishers"') &&
      line.includes('verb="LIST"') &&
      line.includes('subresource=""')
    ) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}
