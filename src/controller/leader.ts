/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it:
 * acquire when the lease is free or expired, renew before it expires, give up
 * leadership when renewal fails for a whole lease duration, and release the
 * lease on shutdown so a standby takes over at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  CoordinationV1Api,
  type KubeConfig,
  type V1Lease,
  V1MicroTime,
} from '@kubernetes/client-node';
import { type Logger, serializeError } from '../log.ts';

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

function toMs(t: Date | string | undefined): number {
  if (!t) return 0;
  return (t instanceof Date ? t : new Date(t)).getTime();
}

export class LeaderElector {
  readonly #api: CoordinationV1Api;
  readonly #o: LeaderElectionOptions;
  readonly #log: Logger;
  #leading = false;
  #stopped = false;
  #observedRenewAt = 0;
  #observedRV = '';
  /** Another identity holding an unexpired lease, as the last read saw it. */
  #otherHolder: string | undefined;
  #loop: Promise<void> | undefined;

  constructor(kc: KubeConfig, opts: LeaderElectionOptions, log: Logger) {
    this.#api = kc.makeApiClient(CoordinationV1Api);
    this.#o = opts;
    this.#log = log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  }

  get leading(): boolean {
    return this.#leading;
  }

  start(cb: LeaderCallbacks): void {
    this.#loop = this.#run(cb);
  }

  async #run(cb: LeaderCallbacks): Promise<void> {
    let lastRenew = 0;
    while (!this.#stopped) {
      const ok = await this.#tryAcquireOrRenew().catch((err: unknown) => {
        this.#log.warn({ err: serializeError(err) }, 'lease update failed');
        return false;
      });
      if (this.#stopped) break;
      const now = Date.now();
      if (ok) {
        lastRenew = now;
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
      } else if (this.#leading && now - lastRenew > this.#o.renewDeadlineMs) {
        this.#leading = false;
        this.#log.error('lost the lease: could not renew it in time');
        cb.onStoppedLeading();
        return;
      }
      await sleep(this.#o.retryPeriodMs);
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.#o;
    this.#otherHolder = undefined;
    const now = new V1MicroTime(Date.now());
    const durationSeconds = Math.ceil(this.#o.leaseDurationMs / 1000);
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 404)) throw err;
      await this.#api.createNamespacedLease({
        namespace,
        body: {
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: durationSeconds,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: 0,
          },
        },
      });
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
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: now,
        acquireTime: takingOver ? now : spec.acquireTime ? new V1MicroTime(toMs(spec.acquireTime)) : now,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && holder !== '' ? 1 : 0),
      },
    };
    await this.#api.replaceNamespacedLease({ name, namespace, body });
    return true;
  }

  /** Stops campaigning; if leading, releases the lease so a standby takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop?.catch(() => undefined);
    if (!this.#leading) return;
    this.#leading = false;
    const { namespace, name, identity } = this.#o;
    try {
      const lease = await this.#api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      await this.#api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: new V1MicroTime(Date.now()),
            acquireTime: lease.spec.acquireTime ? new V1MicroTime(toMs(lease.spec.acquireTime)) : undefined,
          },
        },
      });
      this.#log.info('released the lease');
    } catch (err) {
      this.#log.warn({ err: serializeError(err) }, 'could not release the lease');
    }
  }
}
