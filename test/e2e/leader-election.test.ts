/**
 * Two replicas, one Lease: only the holder reconciles; a killed leader is
 * replaced within leaseDuration + syncInterval; a leader stopped with SIGTERM
 * exits 0 and releases the Lease, so a standby takes over well before
 * leaseDuration. Observed from outside: the Lease through kubectl, each
 * replica's /metrics, and the anonymously readable bucket.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  createSecret,
  eventually,
  installOperator,
  metricSum,
  OPERATOR_NAMESPACE,
  OperatorProcess,
  samplePublisher,
  waitForReady,
} from './harness.ts';

const NAME = 'replicated';
const LEASE = 'oidc-publisher';
const LEASE_DURATION_MS = 6_000;
const SYNC_INTERVAL_MS = 10_000;
const ELECTION = [
  '--leader-elect',
  'true',
  '--lease-duration',
  `${LEASE_DURATION_MS / 1000}s`,
  '--renew-deadline',
  '4s',
  '--retry-period',
  '1s',
];

interface LeaseView {
  metadata: { resourceVersion: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    leaseTransitions?: number;
    renewTime?: string;
  };
}

describe('leader election: two replicas against one Lease', () => {
  let bed: Bed;
  let kubeconfig: string;
  const replicas = new Map<string, OperatorProcess>();
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        for (const [id, op] of replicas) {
          const code = await op.stop('SIGTERM');
          if (op.child.signalCode !== 'SIGKILL') assert.equal(code, 0, `${id} exits 0 on SIGTERM`);
        }
      },
    },
  );

  async function lease(): Promise<LeaseView | undefined> {
    try {
      return JSON.parse(
        await bed.kubectl(['get', 'lease', '-n', OPERATOR_NAMESPACE, LEASE, '-o', 'json']),
      ) as LeaseView;
    } catch {
      return undefined;
    }
  }

  async function holder(): Promise<string> {
    return (await lease())?.spec.holderIdentity ?? '';
  }

  async function start(id: string): Promise<OperatorProcess> {
    const op = await OperatorProcess.start(bed, kubeconfig, [...ELECTION, '--pod-name', id]);
    replicas.set(id, op);
    return op;
  }

  async function publishedCacheControl(): Promise<string | undefined> {
    const res = await request(`${bed.issuer}/openid/v1/jwks`, { ca: bed.ca });
    return res.status === 200 ? (res.headers['cache-control'] as string | undefined) : undefined;
  }

  function leaderGauge(text: string): number {
    return metricSum(text, 'oidc_publisher_leader');
  }

  function reconciles(text: string): number {
    return metricSum(text, 'oidc_publisher_reconcile_total');
  }

  before(async () => {
    bed = useOwn();
    kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    await applyYaml(
      bed,
      JSON.stringify(
        samplePublisher(bed, { name: NAME, spec: { syncInterval: `${SYNC_INTERVAL_MS / 1000}s` } }),
      ),
    );
    // Both at once: they race for the Lease from the start.
    await Promise.all([start('replica-a'), start('replica-b')]);
  });

  it('lets exactly one replica reconcile: the Lease holder', async () => {
    const first = await eventually('a replica to hold the Lease', async () => {
      const h = await holder();
      return replicas.has(h) ? h : undefined;
    });
    await waitForReady(bed, NAME, 'True', 'Ready');
    const leader = replicas.get(first)!;
    const [standbyId, standby] = [...replicas].find(([id]) => id !== first)!;
    // The status is written before the sync is counted: wait for the count.
    const before = await eventually(`the leader ${first} to count its first sync`, async () => {
      const n = reconciles(await leader.metrics());
      return n >= 1 ? n : undefined;
    });
    // One more sync interval: the leader syncs again, the standby still never does.
    await eventually(
      `${first} to sync again after syncInterval`,
      async () => (reconciles(await leader.metrics()) > before ? true : undefined),
      SYNC_INTERVAL_MS + 10_000,
    );
    assert.equal(await holder(), first, 'the Lease stayed with the first leader');
    const leaderText = await leader.metrics();
    const standbyText = await standby.metrics();
    assert.equal(leaderGauge(leaderText), 1, `oidc_publisher_leader of the holder ${first}`);
    assert.equal(leaderGauge(standbyText), 0, `oidc_publisher_leader of the standby ${standbyId}`);
    assert.equal(reconciles(standbyText), 0, `oidc_publisher_reconcile_total of the standby ${standbyId}`);
    assert.equal(
      metricSum(standbyText, 'oidc_publisher_storage_writes_total') +
        metricSum(standbyText, 'oidc_publisher_storage_skipped_writes_total'),
      0,
      'the standby never touched storage',
    );
    // The work queue and the Kubernetes client as controller-runtime and client-go name them, and
    // the process: the leader queued its publisher twice and finished a sync (the second may still
    // be running), the standby queued it but ran none.
    assert.ok(
      metricSum(leaderText, 'workqueue_work_duration_seconds_count') >= 1,
      `workqueue_work_duration_seconds_count of the leader: ${metricSum(leaderText, 'workqueue_work_duration_seconds_count')}`,
    );
    assert.ok(metricSum(leaderText, 'workqueue_adds_total') >= 2, 'workqueue_adds_total of the leader');
    assert.equal(
      metricSum(standbyText, 'workqueue_work_duration_seconds_count'),
      0,
      'the standby ran no work',
    );
    assert.match(leaderText, /^workqueue_depth\{name="oidcpublisher"\} \d+$/m);
    for (const text of [leaderText, standbyText]) {
      assert.match(
        text,
        /^rest_client_requests_total\{code="200",method="GET",host="[^"]+:\d+"\} [1-9]\d*$/m,
      );
      assert.match(
        text,
        /^rest_client_request_duration_seconds_count\{verb="GET",host="[^"]+:\d+"\} [1-9]\d*$/m,
      );
      assert.ok(metricSum(text, 'process_resident_memory_bytes') > 1e6, 'process_resident_memory_bytes');
    }
    const standbyReconcileLogs = standby.logs().filter((l) => l.oidcpublisher !== undefined);
    assert.deepEqual(standbyReconcileLogs, [], 'the standby logged no reconcile');
    assert.ok(!standby.logs().some((l) => l.msg === 'became leader'), 'the standby never led');
  });

  it('replaces a leader killed with SIGKILL: the standby publishes a change within leaseDuration + syncInterval', async (t) => {
    const oldId = await holder();
    const old = replicas.get(oldId);
    assert.ok(old, `the Lease holder ${JSON.stringify(oldId)} is one of the replicas`);
    const [standbyId] = [...replicas].find(([id]) => id !== oldId)!;
    const transitions = (await lease())?.spec.leaseTransitions ?? 0;
    const killedAt = Date.now();
    old.child.kill('SIGKILL');
    await old.exited;
    replicas.delete(oldId);
    // A change that only a reconcile can publish: new bytes (the Cache-Control of both objects).
    await bed.kubectl([
      'patch',
      'oidcpublisher',
      NAME,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { cacheControl: 'public, max-age=61' } }),
    ]);
    let tookOverMs: number | undefined;
    const publishedMs = await eventually(
      'the standby to publish the changed Cache-Control',
      async () => {
        if (tookOverMs === undefined && (await holder()) === standbyId) tookOverMs = Date.now() - killedAt;
        return (await publishedCacheControl()) === 'public, max-age=61' ? Date.now() - killedAt : undefined;
      },
      LEASE_DURATION_MS + SYNC_INTERVAL_MS + 15_000,
    );
    t.diagnostic(
      `SIGKILL of ${oldId}: ${standbyId} held the Lease after ${tookOverMs ?? '?'} ms, published the change after ${publishedMs} ms (leaseDuration ${LEASE_DURATION_MS} ms, syncInterval ${SYNC_INTERVAL_MS} ms)`,
    );
    assert.ok(
      publishedMs < LEASE_DURATION_MS + SYNC_INTERVAL_MS,
      `published ${publishedMs} ms after the kill; expected under ${LEASE_DURATION_MS + SYNC_INTERVAL_MS} ms`,
    );
    const l = await lease();
    assert.equal(l?.spec.holderIdentity, standbyId);
    assert.equal(l?.spec.leaseTransitions, transitions + 1, 'leaseTransitions counts the takeover');
    const text = await replicas.get(standbyId)!.metrics();
    assert.equal(leaderGauge(text), 1);
    assert.ok(reconciles(text) >= 1);
    await waitForReady(bed, NAME, 'True', 'Ready');
  });

  it('on SIGTERM the leader exits 0 and releases the Lease: a standby takes over well before leaseDuration', async (t) => {
    const leaderId = await holder();
    const leader = replicas.get(leaderId);
    assert.ok(leader, `the Lease holder ${JSON.stringify(leaderId)} is one of the replicas`);
    const next = await start('replica-c');
    assert.equal(leaderGauge(await next.metrics()), 0, 'replica-c starts as a standby');
    // Let replica-c see the held Lease (it retries every second), as a standby in a rolling update would.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await holder(), leaderId, 'the Lease is still held while the leader runs');

    const termAt = Date.now();
    const code = await leader.stop('SIGTERM');
    const exitedMs = Date.now() - termAt;
    replicas.delete(leaderId);
    assert.equal(
      code,
      0,
      `the leader exits 0 on SIGTERM; its last lines:\n${leader.output.slice(-5).join('\n')}`,
    );
    const afterExit = await lease();
    assert.notEqual(
      afterExit?.spec.holderIdentity,
      leaderId,
      `the exited leader released the Lease (lease: ${JSON.stringify(afterExit?.spec)})`,
    );
    assert.ok(leader.logs().some((l) => l.msg === 'released the lease'));
    const takeoverMs = await eventually(
      'replica-c to take the Lease',
      async () => ((await holder()) === 'replica-c' ? Date.now() - termAt : undefined),
      LEASE_DURATION_MS * 3,
    );
    t.diagnostic(
      `SIGTERM of ${leaderId}: exited after ${exitedMs} ms, replica-c held the Lease ${takeoverMs} ms after the signal (leaseDuration ${LEASE_DURATION_MS} ms)`,
    );
    assert.ok(
      takeoverMs < LEASE_DURATION_MS,
      `replica-c took over ${takeoverMs} ms after SIGTERM; expected well under leaseDuration ${LEASE_DURATION_MS} ms`,
    );
    await eventually(
      'replica-c to reconcile as the new leader',
      async () => {
        const text = await next.metrics();
        return leaderGauge(text) === 1 && reconciles(text) >= 1 ? true : undefined;
      },
      10_000,
    );
  });
});
