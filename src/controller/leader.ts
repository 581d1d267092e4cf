/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it:
 * acquire when the lease is free or expired, renew before it expires, give up
 * leadership when renewal fails for a whole lease duration, and release the
 * lease on shutdown so a standby takes over at once.
 */
import { type Logger, serializeError } from '../log.ts';
import { microTime } from './event-recorder.ts';
import type { Lease, LeaseStore } from './leases.ts';

/** Waits `ms`, or until `signal` aborts; the global timer, so a test's fake clock drives it. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface LeaderCallbacks {
  onStartedLeading(): void;
  /** Leadership was lost (renewal failed); the process should stop reconciling at once. */
  onStoppedLeading(): void;
}

export class LeaderElector {
  readonly #leases: LeaseStore;
  readonly #o: LeaderElectionOptions;
  readonly #log: Logger;
  #leading = false;
  #stopped = false;
  #observedRenewAt = 0;
  #observedRV = '';
  /** Another identity holding an unexpired lease, as the last read saw it. */
  #otherHolder: string | undefined;
  #loop: Promise<void> | undefined;
  #lastRenew = 0;
  /** Aborted by stop(): ends the wait between attempts. */
  readonly #wake = new AbortController();

  /** `leases`: the Lease `opts.namespace`/`opts.name` (KubeLeases in the API server). */
  constructor(leases: LeaseStore, opts: LeaderElectionOptions, log: Logger) {
    this.#leases = leases;
    this.#o = opts;
    this.#log = log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  }

  get leading(): boolean {
    return this.#leading;
  }

  start(cb: LeaderCallbacks): void {
    this.#loop = this.#run(cb).catch((err: unknown) => {
      // A callback threw: this replica can no longer vouch for its leadership.
      this.#log.error({ err: serializeError(err) }, 'leader election stopped');
      if (this.#leading) {
        this.#leading = false;
        cb.onStoppedLeading();
      }
    });
  }

  /**
   * How long a Lease request may take: while leading, no longer than until the renew deadline,
   * so a hung request cannot keep this replica leading past it (the standby takes over once the
   * lease duration, longer than the deadline, has passed).
   */
  #budgetMs(): number {
    if (!this.#leading) return this.#o.renewDeadlineMs;
    return Math.max(0, this.#lastRenew + this.#o.renewDeadlineMs - Date.now());
  }

  #call<T>(op: (timeoutMs: number) => Promise<T>): Promise<T> {
    const timeoutMs = this.#budgetMs();
    if (timeoutMs <= 0)
      return Promise.reject(Object.assign(new Error('renew deadline passed'), { code: 'ETIMEDOUT' }));
    return op(timeoutMs);
  }

  async #run(cb: LeaderCallbacks): Promise<void> {
    while (!this.#stopped) {
      const ok = await this.#tryAcquireOrRenew().catch((err: unknown) => {
        this.#log.warn({ err: serializeError(err) }, 'lease update failed');
        return false;
      });
      if (this.#stopped) break;
      const now = Date.now();
      if (ok) {
        this.#lastRenew = now;
        if (!this.#leading) {
          this.#leading = true;
          this.#log.info('became leader');
          cb.onStartedLeading();
        }
      } else if (this.#leading && this.#otherHolder !== undefined) {
        // Someone else holds it: waiting for the renew deadline would let two replicas reconcile.
        this.#leading = false;
        this.#log.error({ holder: this.#otherHolder }, 'lost the lease: another replica holds it');
        cb.onStoppedLeading();
        return;
      } else if (this.#leading && now - this.#lastRenew >= this.#o.renewDeadlineMs) {
        this.#leading = false;
        this.#log.error('lost the lease: could not renew it in time');
        cb.onStoppedLeading();
        return;
      }
      const wait = this.#leading
        ? Math.min(this.#o.retryPeriodMs, Math.max(0, this.#lastRenew + this.#o.renewDeadlineMs - Date.now()))
        : this.#o.retryPeriodMs;
      await pause(wait, this.#wake.signal);
    }
  }

  #read(): Promise<Lease | undefined> {
    return this.#call((timeoutMs) => this.#leases.get(timeoutMs));
  }

  #replace(lease: Lease): Promise<void> {
    return this.#call((timeoutMs) => this.#leases.replace(lease, timeoutMs));
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.#o;
    this.#otherHolder = undefined;
    const now = microTime(Date.now());
    const durationSeconds = Math.ceil(this.#o.leaseDurationMs / 1000);
    const lease = await this.#read();
    if (!lease) {
      const created: Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
        },
      };
      await this.#call((timeoutMs) => this.#leases.create(created, timeoutMs));
      return true;
    }
    const spec = lease.spec ?? {};
    const rv = lease.metadata?.resourceVersion ?? '';
    if (rv !== this.#observedRV) {
      this.#observedRV = rv;
      this.#observedRenewAt = Date.now();
    }
    const holder = spec.holderIdentity ?? '';
    const held = holder !== '' && holder !== identity;
    const expired =
      this.#observedRenewAt + (spec.leaseDurationSeconds ?? durationSeconds) * 1000 < Date.now();
    if (held && !expired) {
      this.#otherHolder = holder;
      return false;
    }
    const takingOver = holder !== identity;
    await this.#replace({
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: now,
        acquireTime: takingOver || !spec.acquireTime ? now : spec.acquireTime,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && holder !== '' ? 1 : 0),
      },
    });
    return true;
  }

  /** Stops campaigning; if leading, releases the lease so a standby takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake.abort();
    await this.#loop;
    if (!this.#leading) {
      this.#leases.close();
      return;
    }
    this.#leading = false;
    try {
      const lease = await this.#read();
      if (lease?.spec?.holderIdentity !== this.#o.identity) return;
      await this.#replace({
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: '',
          leaseDurationSeconds: 1,
          renewTime: microTime(Date.now()),
        },
      });
      this.#log.info('released the lease');
    } catch (err) {
      this.#log.warn({ err: serializeError(err) }, 'could not release the lease');
    } finally {
      this.#leases.close();
    }
  }
}
