/**
 * Leadership lost in the middle of a reconcile, against the real bed (own
 * bed): two operators elect a leader through the Lease; the leader is made to
 * lose it while a sync is in flight, by handing the Lease to the standby with
 * kubectl (as a replica that took over an expired Lease would hold it).
 *
 * The sync is kept in flight by reading the source through a loopback proxy
 * that delays every chunk (proxy.ts): the reconcile takes seconds, long
 * enough to take the Lease away before it writes.
 *
 * The old leader must stop at once: no write, no status, no Event after it
 * saw another holder, and exit (so its pod restarts as a standby); the new
 * leader publishes the change, once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Bed } from '../bed/bed.ts';
import { useBed } from '../bed/shared.ts';
import { applyYaml, eventually, OPERATOR_NAMESPACE, OperatorProcess, waitForReady } from '../e2e/harness.ts';
import {
  anonymous,
  installWithWriter,
  type LogLine,
  patchSpec,
  publisher,
  putObjectCount,
  sleep,
  sourceKubeconfigSecret,
} from './helpers.ts';
import { TcpProxy } from './proxy.ts';

const NAME = 'contested';
const LEASE = 'oidc-publisher';
const RETRY_PERIOD_MS = 500;
const RENEW_DEADLINE_MS = 8000;
const DELAY_MS = 1500;
const ELECTION = [
  '--leader-elect',
  'true',
  '--lease-duration',
  '10s',
  '--renew-deadline',
  `${RENEW_DEADLINE_MS / 1000}s`,
  '--retry-period',
  `${RETRY_PERIOD_MS}ms`,
  '--source-timeout',
  '20s',
];

describe('faults: leadership lost mid-reconcile', () => {
  let bed: Bed;
  let proxy: TcpProxy;
  let kubeconfig: string;
  const replicas = new Map<string, OperatorProcess>();
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        for (const op of replicas.values()) await op.stop('SIGTERM');
      },
    },
  );
  after(async () => {
    await proxy?.close();
  });

  async function holder(): Promise<string> {
    const out = await bed.kubectl([
      'get',
      'lease',
      LEASE,
      '-n',
      OPERATOR_NAMESPACE,
      '-o',
      'jsonpath={.spec.holderIdentity}',
    ]);
    return out.trim();
  }

  before(async () => {
    bed = useOwn();
    kubeconfig = await installWithWriter(bed);
    proxy = await TcpProxy.start({ host: '127.0.0.1', port: bed.state.apiserver.port });
    await sourceKubeconfigSecret(bed, 'proxied-source', proxy.url);
    await applyYaml(
      bed,
      publisher(bed, NAME, { prefix: 'public/cluster-a', kubeconfigSecret: 'proxied-source' }),
    );
    replicas.set(
      'replica-a',
      await OperatorProcess.start(bed, kubeconfig, [...ELECTION, '--pod-name', 'replica-a']),
    );
    await eventually('replica-a to hold the Lease', async () =>
      (await holder()) === 'replica-a' ? true : undefined,
    );
    replicas.set(
      'replica-b',
      await OperatorProcess.start(bed, kubeconfig, [...ELECTION, '--pod-name', 'replica-b']),
    );
    await waitForReady(bed, NAME, 'True', 'Ready', 60_000);
  });

  it('the old leader stops at once and writes nothing more; the new one publishes the change once', async (t) => {
    const a = replicas.get('replica-a');
    const b = replicas.get('replica-b');
    assert.ok(a && b);
    assert.equal(await holder(), 'replica-a');
    proxy.setMode({ kind: 'delay', ms: DELAY_MS });
    const puts = await putObjectCount(bed);
    const changedAt = Date.now();
    await patchSpec(bed, NAME, { cacheControl: 'public, max-age=33' });
    await eventually(
      'replica-a to start reading the source for the change',
      async () => (proxy.connections.some((c) => c.openedAt >= changedAt) ? true : undefined),
      10_000,
    );
    await bed.kubectl([
      'patch',
      'lease',
      LEASE,
      '-n',
      OPERATOR_NAMESPACE,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { holderIdentity: 'replica-b' } }),
    ]);
    const takenAt = Date.now();

    const code = await Promise.race([
      a.exited,
      sleep(RENEW_DEADLINE_MS + 15_000).then(() => 'still running'),
    ]);
    const stoppedMs = Date.now() - takenAt;
    assert.equal(
      code,
      1,
      'the old leader exits non-zero when it loses the Lease (its pod restarts as a standby)',
    );
    replicas.delete('replica-a');
    const late = (a.logs() as LogLine[]).filter(
      (l) =>
        Date.parse(l.time ?? '') > takenAt &&
        (l.oidcpublisher !== undefined || ['published', 'wrote object'].includes(l.msg ?? '')),
    );
    await eventually(
      'replica-b to publish the change',
      async () =>
        (await anonymous(bed, 'public/cluster-a')).jwks.headers['cache-control'] === 'public, max-age=33'
          ? true
          : undefined,
      30_000,
    );
    await waitForReady(bed, NAME, 'True', 'Ready');
    // Time for a write the old leader might still have had in flight.
    await sleep(2 * DELAY_MS * 2);
    const writes = (await putObjectCount(bed)) - puts;
    const lostLog = a.logs().find((l) => String(l.msg).startsWith('lost the lease'));
    t.diagnostic(
      `Lease handed to replica-b: replica-a exited ${stoppedMs} ms later (retryPeriod ${RETRY_PERIOD_MS} ms, renewDeadline ${RENEW_DEADLINE_MS} ms): "${String(lostLog?.msg)}"; ` +
        `${late.length} reconcile log lines from it afterwards; PutObject for the change: ${writes}`,
    );
    assert.deepEqual(
      late.map((l) => `${l.time} ${l.msg}`),
      [],
      'the old leader logged no reconcile after the Lease was taken',
    );
    assert.ok(
      stoppedMs < RETRY_PERIOD_MS + 4000,
      `the old leader stopped ${stoppedMs} ms after the Lease was taken: expected within a retry period, not at the renew deadline`,
    );
    assert.equal(await holder(), 'replica-b');
    assert.ok(
      b.logs().some((l) => l.msg === 'became leader'),
      'replica-b leads',
    );
    assert.equal(writes, 2, 'the change was written once: the JWKS and the discovery document');
  });
});
