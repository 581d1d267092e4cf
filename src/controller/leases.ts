/**
 * The Lease that leader election campaigns for (coordination.k8s.io/v1), behind
 * the three calls the elector makes: read it, create it, replace it. Each call
 * gives up after the time the elector allows it.
 */
import type { KubeAccess } from '../kube/access.ts';
import { KubeHttp, KubeHttpError, type KubeRequestObserver } from '../kube/http.ts';
import type { TokenBucket } from '../kube/rate-limit.ts';

/** The fields of a coordination.k8s.io/v1 Lease the elector reads and writes. */
export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
    [k: string]: unknown;
  };
}

export interface LeaseStore {
  /** The Lease, or undefined when it does not exist. */
  get(timeoutMs: number): Promise<Lease | undefined>;
  create(lease: Lease, timeoutMs: number): Promise<void>;
  /** Replaces the Lease; refused when its metadata.resourceVersion is no longer the current one. */
  replace(lease: Lease, timeoutMs: number): Promise<void>;
  close(): void;
}

export interface KubeLeasesOptions {
  namespace: string;
  name: string;
  /** The longest any call may take. */
  timeoutMs: number;
  /** Told of each request to the API server (metrics). */
  observer?: KubeRequestObserver | undefined;
  /** The client-side rate limit: a bucket of its own, so reconciles do not delay renewals. */
  limiter?: TokenBucket | undefined;
}

/** One Lease in the API server. */
export class KubeLeases implements LeaseStore {
  readonly #http: KubeHttp;
  readonly #collection: string;
  readonly #path: string;

  constructor(access: KubeAccess, opts: KubeLeasesOptions) {
    this.#http = new KubeHttp(access, {
      timeoutMs: opts.timeoutMs,
      observer: opts.observer,
      limiter: opts.limiter,
    });
    this.#collection = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(opts.namespace)}/leases`;
    this.#path = `${this.#collection}/${encodeURIComponent(opts.name)}`;
  }

  async get(timeoutMs: number): Promise<Lease | undefined> {
    try {
      return (await this.#http.send('GET', this.#path, undefined, { timeoutMs })) as Lease;
    } catch (err) {
      if (err instanceof KubeHttpError && err.status === 404) return undefined;
      throw err;
    }
  }

  async create(lease: Lease, timeoutMs: number): Promise<void> {
    await this.#http.send('POST', this.#collection, lease, { timeoutMs });
  }

  async replace(lease: Lease, timeoutMs: number): Promise<void> {
    await this.#http.send('PUT', this.#path, lease, { timeoutMs });
  }

  close(): void {
    this.#http.close();
  }
}
