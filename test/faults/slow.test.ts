/**
 * A slow or stalled source and storage, against the real bed (own bed): two
 * publishers reach their API server and their MinIO through a loopback TCP
 * proxy (proxy.ts) that delays or stalls; a third one goes direct. With
 * --source-timeout 2s, --storage-timeout 2s and only two workers
 * (--concurrency 2), so that stalled syncs would starve the direct publisher if
 * a timeout did not fire:
 *
 * - delayed under the timeouts: still published, still Ready;
 * - stalled: every stalled connection is closed by the operator after about
 *   the timeout (measured at the proxy), the publishers report
 *   SourceUnreachable / StorageUnreachable, and the direct publisher keeps
 *   syncing at its interval;
 * - back to normal: both recover by themselves.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Bed } from '../bed/bed.ts';
import { useBed } from '../bed/shared.ts';
import { applyYaml, condition, eventually, OperatorProcess, waitForReady } from '../e2e/harness.ts';
import {
  installWithWriter,
  linesOf,
  patchSpec,
  publisher,
  sleep,
  sourceKubeconfigSecret,
  stored,
  syncTimes,
} from './helpers.ts';
import { type ConnectionRecord, TcpProxy } from './proxy.ts';

const DIRECT = 'direct';
const SLOW_SOURCE = 'slow-source';
const SLOW_STORAGE = 'slow-storage';
const TIMEOUT_MS = 2000;
const SYNC_MS = 10_000;
const WINDOW_MS = 40_000;

describe('faults: slow and stalled source and storage', () => {
  let bed: Bed;
  let op: OperatorProcess;
  let sourceProxy: TcpProxy;
  let storageProxy: TcpProxy;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await op?.stop('SIGTERM');
      },
    },
  );
  after(async () => {
    await sourceProxy?.close();
    await storageProxy?.close();
  });

  before(async () => {
    bed = useOwn();
    const kubeconfig = await installWithWriter(bed);
    sourceProxy = await TcpProxy.start({ host: '127.0.0.1', port: bed.state.apiserver.port });
    storageProxy = await TcpProxy.start({
      host: '127.0.0.1',
      port: Number(new URL(bed.state.s3.endpoint).port),
    });
    await sourceKubeconfigSecret(bed, 'proxied-source', sourceProxy.url);
    op = await OperatorProcess.start(bed, kubeconfig, [
      '--leader-elect',
      'false',
      '--source-timeout',
      `${TIMEOUT_MS / 1000}s`,
      '--storage-timeout',
      `${TIMEOUT_MS / 1000}s`,
      '--backoff-max',
      '4s',
      '--concurrency',
      '2',
    ]);
    await applyYaml(bed, publisher(bed, DIRECT, { prefix: 'public/cluster-a' }));
    // Verification reads the public issuer (direct); off, so the slow ones always go through their proxy.
    await applyYaml(
      bed,
      publisher(bed, SLOW_SOURCE, {
        prefix: 'public/slow-source',
        kubeconfigSecret: 'proxied-source',
        verification: false,
      }),
    );
    await applyYaml(
      bed,
      publisher(bed, SLOW_STORAGE, {
        prefix: 'public/slow-storage',
        endpoint: storageProxy.url,
        verification: false,
      }),
    );
    for (const name of [DIRECT, SLOW_SOURCE, SLOW_STORAGE])
      await waitForReady(bed, name, 'True', 'Ready', 60_000);
  });

  it('publishes through a source and a storage that answer slowly but within the timeouts', async (t) => {
    sourceProxy.setMode({ kind: 'delay', ms: 200 });
    storageProxy.setMode({ kind: 'delay', ms: 200 });
    const at = Date.now();
    await patchSpec(bed, SLOW_SOURCE, { cacheControl: 'public, max-age=61' });
    await patchSpec(bed, SLOW_STORAGE, { cacheControl: 'public, max-age=61' });
    await waitForReady(bed, SLOW_SOURCE, 'True', 'Ready');
    await waitForReady(bed, SLOW_STORAGE, 'True', 'Ready');
    const ms = Date.now() - at;
    for (const prefix of ['public/slow-source', 'public/slow-storage']) {
      assert.equal(
        (await stored(bed, prefix)).jwks?.cacheControl,
        'public, max-age=61',
        `${prefix} published`,
      );
    }
    t.diagnostic(
      `200 ms per chunk each way: both Ready with the change ${ms} ms after it; ${sourceProxy.connections.length + storageProxy.connections.length} proxied connections so far`,
    );
  });

  it('gives up on stalled connections after the timeout, reports it, and does not hold up the direct publisher', async (t) => {
    sourceProxy.setMode({ kind: 'stall' });
    storageProxy.setMode({ kind: 'stall' });
    const from = Date.now();
    await patchSpec(bed, SLOW_SOURCE, { cacheControl: 'public, max-age=62' });
    await patchSpec(bed, SLOW_STORAGE, { cacheControl: 'public, max-age=62' });
    const source = await waitForReady(bed, SLOW_SOURCE, 'False', 'SourceUnreachable');
    assert.match(
      condition(source, 'SourceAvailable')?.message ?? '',
      /^GET https:\/\/127\.0\.0\.1:\d+\/\S+: connection timed out$/,
    );
    const storage = await waitForReady(bed, SLOW_STORAGE, 'False', 'StorageUnreachable');
    assert.match(
      condition(storage, 'Published')?.message ?? '',
      // The SDK's own timeout, or the call's overall deadline (--storage-timeout), whichever fires first.
      /^(HEAD|PUT) s3:\/\/oidc-bed\/public\/slow-storage\/\S+: (ETIMEDOUT|no complete answer within 2000 ms); /,
    );

    await sleep(Math.max(0, from + WINDOW_MS - Date.now()));
    const until = Date.now();
    // Connections the operator opened into the stall: it closed every one after about the timeout.
    const stalled = (p: TcpProxy) =>
      p.connections.filter((c) => c.mode === 'stall' && c.openedAt >= from && c.openedAt < until - 6000);
    const lifetimes = (cs: ConnectionRecord[]) => cs.map((c) => (c.closedAt ?? Date.now()) - c.openedAt);
    const src = stalled(sourceProxy);
    const sto = stalled(storageProxy);
    const srcLife = lifetimes(src);
    const stoLife = lifetimes(sto);
    const direct = syncTimes(op, DIRECT, from).filter((x) => x <= until);
    const gaps = direct.slice(1).map((x, i) => x - (direct[i] ?? x));
    const edges = [direct[0] !== undefined ? direct[0] - from : WINDOW_MS, until - (direct.at(-1) ?? from)];
    const span = (xs: number[]) => (xs.length ? `${Math.min(...xs)}-${Math.max(...xs)}` : 'none');
    t.diagnostic(
      `stalled ${WINDOW_MS / 1000} s: source connections ${src.length}, closed after ${span(srcLife)} ms; storage connections ${sto.length}, closed after ${span(stoLife)} ms; ` +
        `failed syncs: source ${linesOf(op, SLOW_SOURCE, 'sync failed', from).length}, storage ${linesOf(op, SLOW_STORAGE, 'sync failed', from).length}; ` +
        `direct publisher synced ${direct.length} times, gaps ${gaps.join(', ')} ms`,
    );
    assert.ok(src.length >= 2 && sto.length >= 2, 'the stalled publishers kept retrying');
    for (const c of [...src, ...sto]) {
      assert.equal(c.closedBy, 'client', 'the operator, not the proxy, closed the stalled connection');
    }
    // The timeout is for the whole exchange; a bit of scheduling slack on a loaded 2-core machine.
    for (const l of [...srcLife, ...stoLife]) {
      assert.ok(l >= TIMEOUT_MS - 100 && l <= TIMEOUT_MS + 3000, `a stalled connection lived ${l} ms`);
    }
    assert.ok(
      sourceProxy.connections.every(
        (c) => c.closedAt !== undefined || Date.now() - c.openedAt < TIMEOUT_MS + 3000,
      ),
      'no connection hangs',
    );
    // Both workers can be taken by stalled syncs, but each gives its worker back after its timeouts
    // (a storage sync: two attempts of 2 s): the direct publisher waits a few seconds at most.
    assert.ok(direct.length >= WINDOW_MS / SYNC_MS - 1, `direct publisher synced ${direct.length} times`);
    for (const g of [...gaps, ...edges]) {
      assert.ok(g <= SYNC_MS + 8000, `the direct publisher went ${g} ms without a sync`);
    }
    assert.equal(condition(await waitForReady(bed, DIRECT, 'True', 'Ready'), 'Ready')?.status, 'True');
  });

  it('recovers by itself once the connections flow again', async (t) => {
    sourceProxy.setMode({ kind: 'pass' });
    storageProxy.setMode({ kind: 'pass' });
    const at = Date.now();
    await waitForReady(bed, SLOW_SOURCE, 'True', 'Ready', 30_000);
    await waitForReady(bed, SLOW_STORAGE, 'True', 'Ready', 30_000);
    const ms = Date.now() - at;
    await eventually(
      'the pending change to be published',
      async () =>
        (await stored(bed, 'public/slow-storage')).jwks?.cacheControl === 'public, max-age=62'
          ? true
          : undefined,
      10_000,
    );
    t.diagnostic(`both Ready ${ms} ms after the proxies passed traffic again`);
    assert.ok(ms < 4000 + 15_000, `recovered ${ms} ms after (backoff capped at 4 s)`);
  });
});
