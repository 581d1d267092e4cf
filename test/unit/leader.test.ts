/**
 * Leader election's transitions on a fake clock (node:test's mock timers) against a Lease in
 * memory that behaves as the API server's does: create refused when it exists, replace refused
 * for a stale resourceVersion, every call bounded by the time the elector allows it.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { microTime } from '../../src/controller/event-recorder.ts';
import { type LeaderCallbacks, LeaderElector } from '../../src/controller/leader.ts';
import type { Lease, LeaseStore } from '../../src/controller/leases.ts';
import { createLogger } from '../../src/log.ts';

const LEASE_MS = 15_000;
const DEADLINE_MS = 10_000;
const RETRY_MS = 2000;
const T0 = Date.parse('2025-06-01T12:00:00Z');

/** One Lease, as the API server keeps it. */
class MemoryLeases implements LeaseStore {
  lease: Lease | undefined;
  #rv = 0;
  /** Every call fails with this while set (the API server unreachable). */
  down: Error | undefined;
  /** Every call waits for its timeout while set (a connection that hangs). */
  hang = false;
  readonly calls: { op: 'get' | 'create' | 'replace'; timeoutMs: number; at: number }[] = [];
  closed = false;

  async #enter(op: 'get' | 'create' | 'replace', timeoutMs: number): Promise<void> {
    this.calls.push({ op, timeoutMs, at: Date.now() });
    if (this.down) throw this.down;
    if (this.hang) {
      await new Promise((resolve) => setTimeout(resolve, timeoutMs));
      throw Object.assign(new Error(`timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
    }
  }

  #store(lease: Lease): void {
    this.lease = structuredClone({
      ...lease,
      metadata: { ...lease.metadata, resourceVersion: String(++this.#rv) },
    });
  }

  async get(timeoutMs: number): Promise<Lease | undefined> {
    await this.#enter('get', timeoutMs);
    return structuredClone(this.lease);
  }

  async create(lease: Lease, timeoutMs: number): Promise<void> {
    await this.#enter('create', timeoutMs);
    if (this.lease) throw new Error('HTTP 409: the Lease exists');
    this.#store(lease);
  }

  async replace(lease: Lease, timeoutMs: number): Promise<void> {
    await this.#enter('replace', timeoutMs);
    if (lease.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion)
      throw new Error('HTTP 409: the Lease was changed');
    this.#store(lease);
  }

  /** Another replica writes the Lease as its holder (acquires or renews it). */
  heldBy(identity: string): void {
    this.#store({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'oidc-publisher', namespace: 'oidc-publisher-system' },
      spec: {
        ...this.lease?.spec,
        holderIdentity: identity,
        leaseDurationSeconds: LEASE_MS / 1000,
        renewTime: microTime(Date.now()),
      },
    });
  }

  close(): void {
    this.closed = true;
  }
}

const silent = createLogger({ level: 'fatal', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Moves the fake clock by `ms` in 100 ms steps, letting the elector run after each. */
async function advance(ms: number, each?: () => void): Promise<void> {
  for (let left = ms; left > 0; left -= 100) {
    mock.timers.tick(Math.min(100, left));
    await settle();
    each?.();
  }
}

interface Replica {
  elector: LeaderElector;
  started: number[];
  stopped: number[];
}

const electors: LeaderElector[] = [];

function campaign(leases: MemoryLeases, identity = 'me', cb: Partial<LeaderCallbacks> = {}): Replica {
  const elector = new LeaderElector(
    leases,
    {
      namespace: 'oidc-publisher-system',
      name: 'oidc-publisher',
      identity,
      leaseDurationMs: LEASE_MS,
      renewDeadlineMs: DEADLINE_MS,
      retryPeriodMs: RETRY_MS,
    },
    silent,
  );
  electors.push(elector);
  const r: Replica = { elector, started: [], stopped: [] };
  elector.start({
    onStartedLeading: () => {
      r.started.push(Date.now());
      cb.onStartedLeading?.();
    },
    onStoppedLeading: () => {
      r.stopped.push(Date.now());
      cb.onStoppedLeading?.();
    },
  });
  return r;
}

beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: T0 });
});

afterEach(async () => {
  await Promise.all(electors.splice(0).map((e) => e.stop()));
  mock.timers.reset();
});

describe('LeaderElector', () => {
  it('acquires a Lease that does not exist: creates it as its holder', async () => {
    const leases = new MemoryLeases();
    const me = campaign(leases);
    await settle();
    assert.deepEqual(me.started, [T0]);
    assert.equal(me.elector.leading, true);
    assert.deepEqual(leases.lease?.spec, {
      holderIdentity: 'me',
      leaseDurationSeconds: 15,
      acquireTime: microTime(T0),
      renewTime: microTime(T0),
      leaseTransitions: 0,
    });
  });

  it('acquires a released Lease (no holder) without counting a transition', async () => {
    const leases = new MemoryLeases();
    leases.heldBy('');
    const me = campaign(leases);
    await settle();
    assert.deepEqual(me.started, [T0]);
    assert.equal(leases.lease?.spec?.holderIdentity, 'me');
    assert.equal(leases.lease?.spec?.leaseTransitions ?? 0, 0);
  });

  it('renews every retry period, keeping its acquireTime', async () => {
    const leases = new MemoryLeases();
    const me = campaign(leases);
    await settle();
    for (let i = 1; i <= 3; i++) {
      await advance(RETRY_MS);
      assert.equal(leases.lease?.spec?.renewTime, microTime(T0 + i * RETRY_MS), `renewal ${i}`);
    }
    assert.equal(leases.lease?.spec?.acquireTime, microTime(T0));
    assert.equal(leases.lease?.metadata?.resourceVersion, '4', 'created once, replaced three times');
    assert.deepEqual(me.started, [T0], 'told once');
  });

  it('does not acquire while another holder keeps renewing its Lease', async () => {
    const leases = new MemoryLeases();
    leases.heldBy('other');
    const me = campaign(leases);
    await advance(4 * LEASE_MS, () => {
      if ((Date.now() - T0) % RETRY_MS === 0) leases.heldBy('other');
    });
    assert.deepEqual(me.started, []);
    assert.equal(me.elector.leading, false);
    assert.equal(leases.lease?.spec?.holderIdentity, 'other');
    assert.equal(leases.calls.filter((c) => c.op !== 'get').length, 0, 'never writes a Lease another holds');
  });

  it("takes over once another holder's Lease went unrenewed for its duration, counting a transition", async () => {
    const leases = new MemoryLeases();
    leases.heldBy('other');
    const me = campaign(leases);
    await settle();
    await advance(LEASE_MS);
    assert.deepEqual(me.started, [], 'not while the lease duration has not passed since it was seen');
    await advance(RETRY_MS);
    assert.equal(me.started.length, 1);
    const took = me.started[0] ?? 0;
    assert.ok(took > T0 + LEASE_MS && took <= T0 + LEASE_MS + RETRY_MS, `took over at +${took - T0} ms`);
    assert.equal(leases.lease?.spec?.holderIdentity, 'me');
    assert.equal(leases.lease?.spec?.leaseTransitions, 1);
    assert.equal(leases.lease?.spec?.acquireTime, microTime(took));
  });

  it('gives up leadership at the renew deadline when renewals fail, not before', async () => {
    const leases = new MemoryLeases();
    const me = campaign(leases);
    await settle();
    await advance(RETRY_MS);
    const lastRenew = T0 + RETRY_MS;
    assert.equal(leases.lease?.spec?.renewTime, microTime(lastRenew));
    leases.down = new Error('connect ECONNREFUSED');
    await advance(DEADLINE_MS - 100);
    assert.deepEqual(me.stopped, [], 'still leading just before the deadline');
    assert.equal(me.elector.leading, true);
    await advance(100);
    assert.deepEqual(me.stopped, [lastRenew + DEADLINE_MS]);
    assert.equal(me.elector.leading, false);
    const attempts = leases.calls.length;
    await advance(LEASE_MS);
    assert.equal(leases.calls.length, attempts, 'campaigns no more once it lost');
  });

  it('gives each request only the time left before the deadline, so a hung one cannot keep it leading', async () => {
    const leases = new MemoryLeases();
    const me = campaign(leases);
    await settle();
    await advance(RETRY_MS);
    const lastRenew = T0 + RETRY_MS;
    assert.equal(leases.lease?.spec?.renewTime, microTime(lastRenew));
    leases.hang = true;
    await advance(DEADLINE_MS + RETRY_MS);
    assert.deepEqual(me.stopped, [lastRenew + DEADLINE_MS]);
    const hung = leases.calls.filter((c) => c.at >= lastRenew + RETRY_MS);
    assert.deepEqual(
      hung.map((c) => c.timeoutMs),
      hung.map((c) => lastRenew + DEADLINE_MS - c.at),
      'each call is bounded by the renew deadline',
    );
  });

  it('steps down at once when another replica holds the Lease', async () => {
    const leases = new MemoryLeases();
    const me = campaign(leases);
    await settle();
    leases.heldBy('other');
    await advance(RETRY_MS);
    assert.deepEqual(me.stopped, [T0 + RETRY_MS]);
    assert.equal(leases.lease?.spec?.holderIdentity, 'other', 'left to its holder');
  });

  it('releases the Lease on stop, so a standby takes over at once', async () => {
    const leases = new MemoryLeases();
    const me = campaign(leases);
    await advance(RETRY_MS);
    mock.timers.tick(500);
    await me.elector.stop();
    assert.deepEqual(leases.lease?.spec, {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTime: microTime(T0),
      renewTime: microTime(T0 + RETRY_MS + 500),
      leaseTransitions: 0,
    });
    assert.deepEqual(me.stopped, [], 'a deliberate stop is not a loss');
    assert.equal(leases.closed, true);

    const standby = campaign(leases, 'standby');
    await settle();
    assert.deepEqual(standby.started, [T0 + RETRY_MS + 500], 'a standby acquires it at once');
  });

  it('leaves a Lease it does not hold alone on stop', async () => {
    const leases = new MemoryLeases();
    leases.heldBy('other');
    const me = campaign(leases);
    await advance(RETRY_MS);
    const before = structuredClone(leases.lease);
    await me.elector.stop();
    assert.deepEqual(leases.lease, before);
    assert.equal(leases.closed, true);
  });

  it('stops leading when its onStartedLeading throws', async () => {
    const leases = new MemoryLeases();
    const me = campaign(leases, 'me', {
      onStartedLeading: () => {
        throw new Error('workers failed to start');
      },
    });
    await settle();
    assert.deepEqual(me.stopped, [T0]);
    assert.equal(me.elector.leading, false);
  });
});
