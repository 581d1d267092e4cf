import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type QueueOptions, type ReconcileResult, WorkQueue } from '../../src/controller/queue.ts';

const queues: WorkQueue[] = [];

/** A queue with small delays and a fixed jitter, shut down after the test. */
function queue(opts: Partial<QueueOptions> = {}): WorkQueue {
  const q = new WorkQueue({ concurrency: 4, baseDelayMs: 10, maxDelayMs: 40, random: () => 0.5, ...opts });
  queues.push(q);
  return q;
}

afterEach(async () => {
  await Promise.all(queues.splice(0).map((q) => q.shutdown(200)));
});

async function waitFor(what: string, cond: () => boolean, timeoutMs = 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`expected ${what} within ${timeoutMs} ms`);
    await sleep(1);
  }
}

/** A handler that records its calls and how many ran at once, overall and per key. */
function recorder(behaviour: (key: string, call: number) => Promise<ReconcileResult> | ReconcileResult) {
  const calls: { key: string; at: number }[] = [];
  const active = new Map<string, number>();
  let running = 0;
  const rec = {
    calls,
    maxRunning: 0,
    maxPerKey: 0,
    count: (key: string) => calls.filter((c) => c.key === key).length,
    handler: async (key: string): Promise<ReconcileResult> => {
      calls.push({ key, at: performance.now() });
      running++;
      active.set(key, (active.get(key) ?? 0) + 1);
      rec.maxRunning = Math.max(rec.maxRunning, running);
      rec.maxPerKey = Math.max(rec.maxPerKey, active.get(key) ?? 0);
      try {
        return await behaviour(key, rec.count(key));
      } finally {
        running--;
        active.set(key, (active.get(key) ?? 1) - 1);
      }
    },
  };
  return rec;
}

const DONE: ReconcileResult = { done: true };

describe('WorkQueue', () => {
  it('runs an added key with the handler', async () => {
    const q = queue();
    const rec = recorder(() => DONE);
    q.start(rec.handler);
    q.add('a');
    await waitFor('one run of a', () => rec.count('a') === 1);
  });

  it('runs a key added before start once start is called', async () => {
    const q = queue();
    const rec = recorder(() => DONE);
    q.add('a');
    assert.deepEqual(q.size, { ready: 1, active: 0, scheduled: 0 });
    q.start(rec.handler);
    await waitFor('one run of a', () => rec.count('a') === 1);
  });

  it('runs one reconcile per key at a time and merges adds made while it runs into one rerun', async () => {
    const q = queue();
    const gate = Promise.withResolvers<void>();
    const rec = recorder(async (_key, call) => {
      if (call === 1) await gate.promise;
      return DONE;
    });
    q.start(rec.handler);
    q.add('a');
    await waitFor('a to start', () => rec.count('a') === 1);
    q.add('a');
    q.add('a');
    q.add('a');
    await sleep(10);
    assert.equal(
      rec.count('a'),
      1,
      `expected a not to start again while it runs, got ${rec.count('a')} runs`,
    );
    gate.resolve();
    await waitFor('a second run of a', () => rec.count('a') === 2);
    await sleep(10);
    assert.equal(
      rec.count('a'),
      2,
      `expected the three adds merged into one rerun, got ${rec.count('a')} runs`,
    );
    assert.equal(rec.maxPerKey, 1, `expected at most one run of a at a time, got ${rec.maxPerKey}`);
  });

  it('merges duplicate adds of a key that waits for a worker', async () => {
    const q = queue({ concurrency: 1 });
    const gate = Promise.withResolvers<void>();
    const rec = recorder(async (key) => {
      if (key === 'busy') await gate.promise;
      return DONE;
    });
    q.start(rec.handler);
    q.add('busy');
    await waitFor('busy to start', () => rec.count('busy') === 1);
    q.add('a');
    q.add('a');
    q.add('a');
    assert.equal(q.size.ready, 1, `expected one waiting key, got ${q.size.ready}`);
    gate.resolve();
    await waitFor('a to run', () => rec.count('a') === 1);
    await sleep(10);
    assert.equal(rec.count('a'), 1, `expected a to run once, got ${rec.count('a')}`);
  });

  it('never runs more keys at once than its concurrency, and starts them in the order added', async () => {
    const q = queue({ concurrency: 2 });
    const rec = recorder(async () => {
      await sleep(5);
      return DONE;
    });
    q.start(rec.handler);
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
    for (const k of keys) q.add(k);
    await waitFor('all six keys to run', () => rec.calls.length === 6);
    assert.equal(rec.maxRunning, 2, `expected at most 2 at once, got ${rec.maxRunning}`);
    assert.deepEqual(
      rec.calls.map((c) => c.key),
      keys,
      `expected FIFO order, got ${rec.calls.map((c) => c.key).join(', ')}`,
    );
  });

  it('runs a key again after requeueAfterMs', async () => {
    const q = queue();
    const rec = recorder((_key, call) => (call === 1 ? { requeueAfterMs: 5 } : DONE));
    q.start(rec.handler);
    q.add('a');
    await waitFor('a second run after the requeue delay', () => rec.count('a') === 2);
    const gap = rec.calls[1]!.at - rec.calls[0]!.at;
    assert.ok(gap >= 4, `expected the rerun at least ~5 ms later, got ${gap.toFixed(1)} ms`);
    await sleep(15);
    assert.equal(rec.count('a'), 2, `expected no run after done, got ${rec.count('a')}`);
  });

  it('retries a failing key after its backoff delay and forgets its failures on success', async () => {
    // random 0: the delays are exactly half the nominal ones, 10 ms then 20 ms.
    const q = queue({ baseDelayMs: 20, maxDelayMs: 1000, random: () => 0 });
    const rec = recorder((_key, call) => (call <= 2 ? { backoff: true } : DONE));
    q.start(rec.handler);
    q.add('a');
    await waitFor('a first retry', () => rec.count('a') === 2);
    await waitFor('a second retry', () => rec.count('a') === 3);
    const [first, second, third] = rec.calls.map((c) => c.at) as [number, number, number];
    assert.ok(
      second - first >= 9,
      `expected the first retry ~10 ms later, got ${(second - first).toFixed(1)} ms`,
    );
    assert.ok(
      third - second >= 19,
      `expected the second retry ~20 ms later, got ${(third - second).toFixed(1)} ms`,
    );
    await waitFor('the failure count to reset', () => q.failures('a') === 0);
  });

  it('retries no later than maxDelayMs when the backoff would wait longer', async () => {
    // The nominal delay is 1 s; the handler says 20 ms at most (its sync interval).
    const q = queue({ baseDelayMs: 1000, maxDelayMs: 60_000, random: () => 1 });
    const rec = recorder((_key, call) => (call <= 1 ? { backoff: true, maxDelayMs: 20 } : DONE));
    q.start(rec.handler);
    q.add('a');
    await waitFor('a retry within 20 ms', () => rec.count('a') === 2, 300);
    const [first, second] = rec.calls.map((c) => c.at) as [number, number];
    assert.ok(second - first < 200, `expected the retry ~20 ms later, got ${(second - first).toFixed(1)} ms`);
  });

  it('reports a handler that throws and retries it with backoff', async () => {
    const reported: string[] = [];
    const q = queue({ onHandlerError: (key, err) => reported.push(`${key}: ${(err as Error).message}`) });
    const rec = recorder((_key, call) => {
      if (call === 1) throw new Error('boom');
      return DONE;
    });
    q.start(rec.handler);
    q.add('a');
    await waitFor('a retry after the throw', () => rec.count('a') === 2);
    assert.deepEqual(reported, ['a: boom']);
  });

  it('runs a key re-added during a failing run at once instead of after its backoff', async () => {
    const q = queue({ baseDelayMs: 5000, maxDelayMs: 5000 });
    const gate = Promise.withResolvers<void>();
    const rec = recorder(async (_key, call) => {
      if (call === 1) {
        await gate.promise;
        return { backoff: true };
      }
      return DONE;
    });
    q.start(rec.handler);
    q.add('a');
    await waitFor('a to start', () => rec.count('a') === 1);
    q.add('a');
    gate.resolve();
    await waitFor('a to rerun without waiting 5 s', () => rec.count('a') === 2, 200);
  });

  it('keeps the earlier time when a key is scheduled twice, sooner second', async () => {
    const q = queue();
    const rec = recorder(() => DONE);
    q.start(rec.handler);
    q.addAfter('a', 300);
    q.addAfter('a', 5);
    await waitFor('a to run after ~5 ms', () => rec.count('a') === 1, 100);
    assert.equal(q.size.scheduled, 0, 'expected the later timer to be dropped');
  });

  it('keeps the earlier time when a key is scheduled twice, later second', async () => {
    const q = queue();
    const rec = recorder(() => DONE);
    q.start(rec.handler);
    q.addAfter('a', 5);
    q.addAfter('a', 300);
    await waitFor('a to run after ~5 ms', () => rec.count('a') === 1, 100);
    assert.equal(q.size.scheduled, 0, 'expected no timer left for a');
  });

  it('runs a scheduled key at once when it is added, and drops its timer', async () => {
    const q = queue();
    const rec = recorder(() => DONE);
    q.start(rec.handler);
    q.addAfter('a', 300);
    q.add('a');
    await waitFor('a to run at once', () => rec.count('a') === 1, 50);
    assert.equal(q.size.scheduled, 0, 'expected the timer to be dropped');
  });

  it('ignores a delayed add of a key that is already waiting to run', () => {
    const q = queue();
    q.add('a');
    q.addAfter('a', 5);
    assert.deepEqual(q.size, { ready: 1, active: 0, scheduled: 0 });
  });

  it('forgets a removed key: its timer and its failures', async () => {
    const q = queue({ random: () => 0 });
    const rec = recorder(() => DONE);
    q.backoffDelay('a');
    q.start(rec.handler);
    q.addAfter('a', 5);
    q.remove('a');
    await sleep(20);
    assert.equal(rec.count('a'), 0, `expected a removed key not to run, got ${rec.count('a')} runs`);
    assert.equal(q.failures('a'), 0, 'expected the failures of a removed key to be forgotten');
  });

  it('waits on shutdown for reconciles in flight, and drops waiting keys', async () => {
    const q = queue({ concurrency: 1 });
    let finished = false;
    const rec = recorder(async (key) => {
      if (key === 'a') {
        await sleep(20);
        finished = true;
      }
      return { requeueAfterMs: 1 };
    });
    q.start(rec.handler);
    q.add('a');
    q.add('b');
    await waitFor('a to start', () => rec.count('a') === 1);
    const ok = await q.shutdown(500);
    assert.equal(ok, true, 'expected shutdown to report that work finished in time');
    assert.equal(finished, true, 'expected shutdown to resolve only after the reconcile in flight finished');
    q.add('c');
    await sleep(10);
    assert.deepEqual(
      rec.calls.map((c) => c.key),
      ['a'],
      `expected only a to run, got ${rec.calls.map((c) => c.key).join(', ')}`,
    );
    assert.deepEqual(q.size, { ready: 0, active: 0, scheduled: 0 }, 'expected nothing left after shutdown');
  });

  it('reports false when the grace period ends before the reconciles in flight', async () => {
    const q = queue();
    const gate = Promise.withResolvers<void>();
    const rec = recorder(async () => {
      await gate.promise;
      return DONE;
    });
    q.start(rec.handler);
    q.add('a');
    await waitFor('a to start', () => rec.count('a') === 1);
    const started = performance.now();
    const ok = await q.shutdown(10);
    assert.equal(ok, false, 'expected shutdown to time out');
    assert.ok(performance.now() - started < 200, 'expected shutdown to return after its grace period');
    gate.resolve();
  });

  it('returns at once from shutdown when idle, and cancels scheduled keys', async () => {
    const q = queue();
    const rec = recorder(() => DONE);
    q.start(rec.handler);
    q.addAfter('a', 5);
    assert.equal(await q.shutdown(1000), true);
    await sleep(20);
    assert.equal(rec.count('a'), 0, 'expected a scheduled key not to run after shutdown');
  });
});

describe('WorkQueue.backoffDelay', () => {
  const cases: { name: string; random: number; expected: number[] }[] = [
    {
      name: 'doubles from half the base delay with the least jitter, capped at half the maximum',
      random: 0,
      expected: [50, 100, 200, 400, 500, 500],
    },
    {
      name: 'doubles up to the full nominal delay with the most jitter, capped at the maximum',
      random: 0.999_999,
      expected: [100, 200, 400, 800, 1000, 1000],
    },
    {
      name: 'lands at three quarters of the nominal delay with jitter 0.5',
      random: 0.5,
      expected: [75, 150, 300, 600, 750],
    },
  ];
  for (const { name, random, expected } of cases) {
    it(name, () => {
      const q = new WorkQueue({ concurrency: 1, baseDelayMs: 100, maxDelayMs: 1000, random: () => random });
      const got = expected.map(() => q.backoffDelay('a'));
      assert.deepEqual(got, expected, `expected ${expected.join(', ')}, got ${got.join(', ')}`);
      assert.equal(q.failures('a'), expected.length, 'expected each call to count a failure');
    });
  }

  it('stays within [exp/2, exp] for every jitter and failure count, without overflow', () => {
    const base = 7;
    const max = 60_000;
    for (const r of [0, 0.1, 0.3333, 0.5, 0.75, 0.999_999]) {
      const q = new WorkQueue({ concurrency: 1, baseDelayMs: base, maxDelayMs: max, random: () => r });
      for (let n = 1; n <= 80; n++) {
        const exp = Math.min(max, base * 2 ** (n - 1));
        const got = q.backoffDelay('k');
        assert.ok(
          got >= Math.floor(exp / 2) && got <= exp,
          `failure ${n}, jitter ${r}: expected a delay in [${exp / 2}, ${exp}], got ${got}`,
        );
      }
    }
  });

  it('counts failures per key', () => {
    const q = new WorkQueue({ concurrency: 1, baseDelayMs: 100, maxDelayMs: 1000, random: () => 0 });
    q.backoffDelay('a');
    q.backoffDelay('a');
    assert.equal(q.backoffDelay('b'), 50, 'expected b to start from the base delay');
    assert.equal(q.failures('a'), 2);
    assert.equal(q.failures('b'), 1);
  });
});
