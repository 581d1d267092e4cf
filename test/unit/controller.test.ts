/**
 * The controller's enqueue rules, on a fake clock (node:test's mock timers): which watch events
 * queue which names, the requeue after the sync interval, backoff on errors, and terminal errors
 * left alone until the generation changes. The API server is the in-memory MemoryCluster; the
 * reconciler is scripted, or the real one over the in-memory world.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { ConditionType, Reason } from '../../src/api/conditions.ts';
import type { OidcPublisher } from '../../src/api/types.ts';
import { Controller, type ControllerOptions } from '../../src/controller/controller.ts';
import type { ReconcileResult } from '../../src/controller/queue.ts';
import { createLogger } from '../../src/log.ts';
import { PUBLISHER_NAME, samplePublisher } from './fixtures.ts';
import { MemoryCluster, World } from './reconcile-world.ts';

const BASE_MS = 1000;
const MAX_MS = 16_000;
const SYNC_MS = 60_000;

const silent = createLogger({ level: 'fatal', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

/** Lets promise chains started by a timer or an event run to their end (setImmediate is not mocked). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Moves the fake clock by `ms`, one millisecond step per timer due, settling after each. */
async function advance(ms: number): Promise<void> {
  const step = 100;
  for (let left = ms; left > 0; left -= step) {
    mock.timers.tick(Math.min(step, left));
    await settle();
  }
}

interface Call {
  name: string;
  at: number;
}

/** A reconciler that records its calls and answers as `answer` says. */
function scripted(answer: (name: string, call: number) => ReconcileResult) {
  const calls: Call[] = [];
  return {
    calls,
    names: () => calls.map((c) => c.name),
    reconciler: {
      reconcile: async (name: string): Promise<ReconcileResult> => {
        calls.push({ name, at: Date.now() });
        return answer(name, calls.filter((c) => c.name === name).length);
      },
    },
  };
}

const controllers: Controller[] = [];

async function controllerOver(
  cluster: MemoryCluster,
  reconcilerFor: ConstructorParameters<typeof Controller>[1],
  opts: Partial<ControllerOptions> = {},
  onDelete?: (name: string) => void,
): Promise<Controller> {
  const c = new Controller(
    cluster,
    reconcilerFor,
    silent,
    { concurrency: 2, backoffBaseMs: BASE_MS, backoffMaxMs: MAX_MS, ...opts },
    onDelete,
  );
  controllers.push(c);
  await c.start();
  return c;
}

function named(name: string, over: Partial<OidcPublisher['metadata']> = {}): OidcPublisher {
  return samplePublisher({ metadata: { name, uid: `uid-${name}`, ...over } });
}

beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.parse('2025-06-01T12:00:00Z') });
});

afterEach(async () => {
  await Promise.all(controllers.splice(0).map((c) => c.stop(0)));
  mock.timers.reset();
});

describe('Controller: what is queued', () => {
  it('queues every listed publisher but reconciles none until it leads; then each once', async () => {
    const cluster = new MemoryCluster();
    cluster.apply(named('a'));
    cluster.apply(named('b'));
    const r = scripted(() => ({ done: true }));
    const c = await controllerOver(cluster, () => r.reconciler);
    await advance(SYNC_MS);
    assert.deepEqual(r.names(), [], 'a standby reconciles nothing');

    c.startWorkers();
    await settle();
    assert.deepEqual(r.names(), ['a', 'b']);
  });

  it('ignores a change of status alone, and queues a new generation, finalizers or deletion', async () => {
    const cluster = new MemoryCluster();
    cluster.apply(named('a'));
    const r = scripted(() => ({ done: true }));
    (await controllerOver(cluster, () => r.reconciler)).startWorkers();
    await settle();
    assert.equal(r.calls.length, 1);

    const changes: [string, (o: OidcPublisher) => void, number][] = [
      ['status written (our own write)', (o) => (o.status = { observedGeneration: 1 }), 1],
      ['a label (resourceVersion only)', (o) => (o.metadata.resourceVersion = 'x'), 1],
      ['spec changed: a new generation', (o) => (o.metadata.generation = 2), 2],
      ['finalizers changed', (o) => (o.metadata.finalizers = ['oidcpublisher.io/cleanup']), 3],
      ['deletion requested', (o) => (o.metadata.deletionTimestamp = '2025-06-01T12:00:00Z'), 4],
    ];
    for (const [what, change, want] of changes) {
      cluster.update('a', (o) => {
        change(o);
        return o;
      });
      await settle();
      assert.equal(r.calls.length, want, `after ${what}: ${want} reconciles`);
    }
  });

  it('only watches spec.watchName when set', async () => {
    const cluster = new MemoryCluster();
    cluster.apply(named('a'));
    cluster.apply(named('b'));
    const r = scripted(() => ({ done: true }));
    (await controllerOver(cluster, () => r.reconciler, { watchName: 'b' })).startWorkers();
    await settle();
    cluster.update('a', (o) => ({ ...o, metadata: { ...o.metadata, generation: 5 } }));
    cluster.apply(named('c'));
    await settle();
    assert.deepEqual(r.names(), ['b']);
  });

  it('forgets a deleted publisher: its requeue is dropped and onDelete told', async () => {
    const cluster = new MemoryCluster();
    cluster.apply(named('a'));
    const r = scripted(() => ({ requeueAfterMs: SYNC_MS }));
    const deleted: string[] = [];
    (
      await controllerOver(
        cluster,
        () => r.reconciler,
        {},
        (name) => deleted.push(name),
      )
    ).startWorkers();
    await settle();
    cluster.remove('a');
    await settle();
    assert.deepEqual(deleted, ['a']);
    await advance(2 * SYNC_MS);
    assert.deepEqual(r.names(), ['a'], 'not reconciled again');
  });

  it('queues the publishers refused with TargetConflict when another is deleted or changes', async () => {
    const cluster = new MemoryCluster();
    cluster.apply(named('older', { creationTimestamp: '2024-01-01T00:00:00Z' }));
    const waiting = named('newer');
    waiting.status = {
      conditions: [
        {
          type: ConditionType.Ready,
          status: 'False',
          reason: Reason.TargetConflict,
          message: 'older publishes to the same objects',
          lastTransitionTime: '2025-06-01T12:00:00Z',
        },
      ],
    };
    cluster.apply(waiting);
    cluster.apply(named('bystander'));
    const r = scripted(() => ({ done: true }));
    (await controllerOver(cluster, () => r.reconciler)).startWorkers();
    await settle();
    assert.deepEqual(r.names().sort(), ['bystander', 'newer', 'older']);

    cluster.update('older', (o) => ({ ...o, metadata: { ...o.metadata, generation: 2 } }));
    await settle();
    assert.deepEqual(r.names().slice(3).sort(), ['newer', 'older'], 'a change of the earlier one');
    cluster.remove('older');
    await settle();
    assert.deepEqual(r.names().slice(5), ['newer'], 'its deletion');
  });

  it('syncs every publisher at once when the watch is back after an error', async () => {
    const cluster = new MemoryCluster();
    cluster.apply(named('a'));
    cluster.apply(named('b'));
    const r = scripted(() => ({ requeueAfterMs: SYNC_MS }));
    (await controllerOver(cluster, () => r.reconciler)).startWorkers();
    await settle();
    assert.equal(cluster.lists, 1);

    cluster.failWatches(new Error('connection reset'));
    await settle();
    await advance(1000);
    assert.equal(cluster.lists, 2, 'listed again after the restart delay');
    assert.deepEqual(r.names(), ['a', 'b', 'a', 'b'], 'both synced again long before their sync interval');
  });
});

describe('Controller: when a publisher is reconciled again', () => {
  it('requeues after the sync interval, not sooner', async () => {
    const cluster = new MemoryCluster();
    cluster.apply(named('a'));
    const r = scripted(() => ({ requeueAfterMs: SYNC_MS }));
    (await controllerOver(cluster, () => r.reconciler)).startWorkers();
    await settle();
    const t0 = Date.now();
    await advance(SYNC_MS - 100);
    assert.equal(r.calls.length, 1, 'not before the sync interval');
    await advance(100);
    assert.equal(r.calls.length, 2);
    assert.equal(r.calls[1]?.at, t0 + SYNC_MS);
    await advance(SYNC_MS);
    assert.equal(r.calls.length, 3);
  });

  it('backs off on errors: each delay within [d/2, d], d doubling from the base to the maximum', async () => {
    const cluster = new MemoryCluster();
    cluster.apply(named('a'));
    const r = scripted(() => ({ backoff: true }));
    (await controllerOver(cluster, () => r.reconciler)).startWorkers();
    await settle();
    await advance(70_000);
    const gaps = r.calls.slice(1).map((c, i) => c.at - (r.calls[i]?.at ?? 0));
    const nominal = [1000, 2000, 4000, 8000, 16_000, 16_000];
    assert.ok(
      gaps.length >= nominal.length,
      `at least ${nominal.length} retries in 70 s, got ${gaps.length}`,
    );
    nominal.forEach((d, i) => {
      const gap = gaps[i] ?? -1;
      assert.ok(gap >= d / 2 && gap <= d, `retry ${i + 1}: expected within [${d / 2}, ${d}] ms, got ${gap}`);
    });
  });

  it('retries a transient error no later than the maxDelayMs it returns, and resets after a success', async () => {
    const cluster = new MemoryCluster();
    cluster.apply(named('a'));
    const r = scripted((_name, call) =>
      call <= 6
        ? { backoff: true, maxDelayMs: 3000 }
        : call === 7
          ? { requeueAfterMs: 5000 }
          : { backoff: true },
    );
    (await controllerOver(cluster, () => r.reconciler)).startWorkers();
    await settle();
    await advance(30_000);
    const gaps = r.calls.slice(1).map((c, i) => c.at - (r.calls[i]?.at ?? 0));
    assert.ok(
      gaps.slice(0, 6).every((g) => g <= 3000),
      `every backoff capped at 3000 ms: ${gaps.slice(0, 6)}`,
    );
    assert.equal(gaps[6], 5000, 'the success requeues after its interval');
    const afterSuccess = gaps[7] ?? -1;
    assert.ok(
      afterSuccess >= 500 && afterSuccess <= 1000,
      `the first failure after a success waits the base delay again: ${afterSuccess}`,
    );
  });

  it('leaves an invalid spec alone until its generation changes (real reconciler)', async () => {
    const w = new World(samplePublisher({ spec: { syncInterval: '1s' } }));
    const calls: string[] = [];
    (
      await controllerOver(w.cluster, (getObject, listObjects) => {
        const real = w.newReconciler({ getObject, listObjects, now: () => new Date(Date.now()) });
        return {
          reconcile: (name: string) => {
            calls.push(name);
            return real.reconcile(name);
          },
        };
      })
    ).startWorkers();
    await settle();
    assert.equal(calls.length, 1);
    assert.equal(
      w.obj.status?.conditions?.find((c) => c.type === ConditionType.Ready)?.reason,
      Reason.InvalidSpec,
    );
    await advance(10 * 60_000);
    assert.equal(calls.length, 1, 'not retried: its own status write queued nothing, no timer either');
    assert.equal(w.store.writes.length, 0);

    w.edit((o) => {
      o.spec.syncInterval = '1m';
      o.metadata.generation = 2;
    });
    await settle();
    assert.deepEqual(
      calls,
      [PUBLISHER_NAME, PUBLISHER_NAME, PUBLISHER_NAME],
      'reconciled once the spec changed, and once more for the finalizer that sync added',
    );
    assert.equal(w.obj.status?.conditions?.find((c) => c.type === ConditionType.Ready)?.reason, Reason.Ready);
    assert.deepEqual(
      w.store.writes.map((x) => x.key),
      ['openid/v1/jwks', '.well-known/openid-configuration'],
    );
  });
});
