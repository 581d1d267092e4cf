/**
 * The operator's Prometheus metrics (prom-client), on a registry made in main (no global state):
 * its own, the work queue's as controller-runtime names them, and the Kubernetes client's as
 * client-go names them. Series are addressed by positional label values: prom-client refuses a
 * wrong count, whereas an object with a label left out would make a series without it.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ConditionType, Reason } from '../api/conditions.ts';
import type { OidcPublisherStatus } from '../api/types.ts';
import type { QueueObserver } from '../controller/queue.ts';
import type { ReconcileHooks } from '../controller/reconciler.ts';
import { findCondition } from '../core/conditions.ts';
import { KEY_EVENT_REASONS, keyChangesOf } from '../core/events.ts';
import type { PlannedWrite } from '../core/plan.ts';
import type { SyncOutcome } from '../core/status.ts';
import type { KubeRequestResult } from '../kube/http.ts';

const SYNC_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** controller-runtime's: ExponentialBuckets(10e-9, 10, 12), 10 ns to 1000 s. */
const WORKQUEUE_BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1000];
/** client-go's rest_client_request_duration_seconds buckets. */
const REST_CLIENT_BUCKETS = [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60];

/** The reason label of oidc_publisher_keys_trusted: one of the condition's reasons, so few values. */
const REASONS: readonly string[] = Object.values(Reason);

/** A work queue as its observer sees it: when each waiting key was added, and each running key started. */
interface QueueState {
  readonly waiting: Map<string, number>;
  readonly running: Map<string, number>;
}

export interface MetricsOptions {
  /** A monotonic clock in seconds (default: performance.now()). */
  now?: () => number;
}

export class Metrics implements ReconcileHooks {
  readonly registry: Registry;
  readonly reconciles: Counter<'result'>;
  readonly reconcileDuration: Histogram;
  readonly publishDuration: Histogram;
  readonly writes: Counter<'publisher'>;
  readonly skippedWrites: Counter<'publisher'>;
  readonly lastSuccess: Gauge<'publisher'>;
  readonly lastPublish: Gauge<'publisher'>;
  readonly keys: Gauge<'publisher'>;
  readonly ready: Gauge<'publisher'>;
  readonly keysTrusted: Gauge<'publisher' | 'reason'>;
  readonly keysTrustedAt: Gauge<'publisher'>;
  readonly leader: Gauge;
  readonly keyChanges: Counter<'publisher' | 'change'>;
  readonly verified: Gauge<'publisher'>;
  readonly verificationLatency: Histogram;
  readonly queueDepth: Gauge<'name'>;
  readonly queueAdds: Counter<'name'>;
  readonly queueRetries: Counter<'name'>;
  readonly queueDuration: Histogram<'name'>;
  readonly workDuration: Histogram<'name'>;
  readonly unfinishedWork: Gauge<'name'>;
  readonly longestRunning: Gauge<'name'>;
  readonly restRequests: Counter<'code' | 'method' | 'host'>;
  readonly restDuration: Histogram<'verb' | 'host'>;
  readonly #queues = new Map<string, QueueState>();
  readonly #now: () => number;

  /** Registers the metrics in `registry`. */
  constructor(registry: Registry, opts: MetricsOptions = {}) {
    this.registry = registry;
    this.#now = opts.now ?? (() => performance.now() / 1000);
    const registers = [registry];
    this.reconciles = new Counter({
      name: 'oidc_publisher_reconcile_total',
      help: 'Syncs by result: published (objects written), up_to_date, failed.',
      labelNames: ['result'],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: 'oidc_publisher_reconcile_duration_seconds',
      help: 'Duration of a sync: read the source, compare, write, update status.',
      buckets: SYNC_BUCKETS,
      registers,
    });
    this.publishDuration = new Histogram({
      name: 'oidc_publisher_publish_duration_seconds',
      help: 'Duration of a sync that wrote objects.',
      buckets: SYNC_BUCKETS,
      registers,
    });
    this.writes = new Counter({
      name: 'oidc_publisher_storage_writes_total',
      help: 'Objects written to storage.',
      labelNames: ['publisher'],
      registers,
    });
    this.skippedWrites = new Counter({
      name: 'oidc_publisher_storage_skipped_writes_total',
      help: 'Objects not written because storage already held them.',
      labelNames: ['publisher'],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'oidc_publisher_last_success_timestamp_seconds',
      help: 'When the publisher last confirmed that storage holds the current documents (Unix time).',
      labelNames: ['publisher'],
      registers,
    });
    this.lastPublish = new Gauge({
      name: 'oidc_publisher_last_publish_timestamp_seconds',
      help: 'When the publisher last wrote an object (Unix time).',
      labelNames: ['publisher'],
      registers,
    });
    this.keys = new Gauge({
      name: 'oidc_publisher_published_keys',
      help: 'Keys in the published JWKS.',
      labelNames: ['publisher'],
      registers,
    });
    this.ready = new Gauge({
      name: 'oidc_publisher_ready',
      help: '1 when the publisher is Ready, else 0.',
      labelNames: ['publisher'],
      registers,
    });
    this.keysTrusted = new Gauge({
      name: 'oidc_publisher_keys_trusted',
      help: '1 when the publisher is KeysTrusted (every key the source serves is past its trustedAt), else 0; reason is the condition reason (SigningKeyNotTrusted: relying parties can refuse the tokens the API server signs now). One series per publisher.',
      labelNames: ['publisher', 'reason'],
      registers,
    });
    this.keysTrustedAt = new Gauge({
      name: 'oidc_publisher_keys_trusted_at_timestamp_seconds',
      help: 'When the last key the source serves is (or was) trusted by every relying party that honours Cache-Control: the latest status.keys trustedAt of the served keys (Unix time).',
      labelNames: ['publisher'],
      registers,
    });
    this.keyChanges = new Counter({
      name: 'oidc_publisher_key_changes_total',
      help: 'Changes of the published key set: added, retired (left the source, still published), removed, restored, retained (republished from the stored JWKS), refused (a status.keys record not published).',
      labelNames: ['publisher', 'change'],
      registers,
    });
    this.verified = new Gauge({
      name: 'oidc_publisher_verified',
      help: '1 when an anonymous reader of the public issuer last got exactly the published documents, else 0.',
      labelNames: ['publisher'],
      registers,
    });
    this.verificationLatency = new Histogram({
      name: 'oidc_publisher_verification_duration_seconds',
      help: 'Duration of the anonymous read-back of the public issuer (both documents).',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
      registers,
    });
    this.leader = new Gauge({
      name: 'oidc_publisher_leader',
      help: '1 when this replica is the leader, else 0.',
      registers,
    });

    // The work queue, as controller-runtime names its metrics.
    const queues = this.#queues;
    const now = this.#now;
    this.queueDepth = new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue',
      labelNames: ['name'],
      registers,
      collect() {
        for (const [name, q] of queues) this.labels(name).set(q.waiting.size);
      },
    });
    this.queueAdds = new Counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by workqueue',
      labelNames: ['name'],
      registers,
    });
    this.queueRetries = new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by workqueue',
      labelNames: ['name'],
      registers,
    });
    this.queueDuration = new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested',
      labelNames: ['name'],
      buckets: WORKQUEUE_BUCKETS,
      registers,
    });
    this.workDuration = new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes.',
      labelNames: ['name'],
      buckets: WORKQUEUE_BUCKETS,
      registers,
    });
    this.unfinishedWork = new Gauge({
      name: 'workqueue_unfinished_work_seconds',
      help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
      labelNames: ['name'],
      registers,
      collect() {
        const t = now();
        for (const [name, q] of queues) {
          let sum = 0;
          for (const start of q.running.values()) sum += t - start;
          this.labels(name).set(sum);
        }
      },
    });
    this.longestRunning = new Gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for workqueue been running.',
      labelNames: ['name'],
      registers,
      collect() {
        const t = now();
        for (const [name, q] of queues) {
          let longest = 0;
          for (const start of q.running.values()) longest = Math.max(longest, t - start);
          this.labels(name).set(longest);
        }
      },
    });

    // The Kubernetes client, as client-go names its metrics.
    this.restRequests = new Counter({
      name: 'rest_client_requests_total',
      help: 'Number of HTTP requests, partitioned by status code, method, and host.',
      labelNames: ['code', 'method', 'host'],
      registers,
    });
    this.restDuration = new Histogram({
      name: 'rest_client_request_duration_seconds',
      help: 'Request latency in seconds. Broken down by verb, and host.',
      labelNames: ['verb', 'host'],
      buckets: REST_CLIENT_BUCKETS,
      registers,
    });
  }

  /** The observer of the work queue called `name` (controller-runtime: the controller's name). */
  workQueue(name: string): QueueObserver {
    const q: QueueState = { waiting: new Map(), running: new Map() };
    this.#queues.set(name, q);
    // Its counters at 0 from the start, as client-go's work queue has them: a rate() of retries
    // then says 0 instead of having no series until the first retry.
    this.queueAdds.labels(name).inc(0);
    this.queueRetries.labels(name).inc(0);
    return {
      added: (key) => {
        q.waiting.set(key, this.#now());
        this.queueAdds.labels(name).inc();
      },
      started: (key) => {
        const t = this.#now();
        const since = q.waiting.get(key);
        q.waiting.delete(key);
        if (since !== undefined) this.queueDuration.labels(name).observe(t - since);
        q.running.set(key, t);
      },
      done: (key) => {
        const since = q.running.get(key);
        q.running.delete(key);
        if (since !== undefined) this.workDuration.labels(name).observe(this.#now() - since);
      },
      dropped: (key) => {
        q.waiting.delete(key);
      },
      retried: () => {
        this.queueRetries.labels(name).inc();
      },
    };
  }

  /** Counts a finished request of a Kubernetes client (KubeHttp's observer). */
  readonly kubeRequest = (r: KubeRequestResult): void => {
    this.restRequests.labels(String(r.code), r.method, r.host).inc();
    this.restDuration.labels(r.method, r.host).observe(r.seconds);
  };

  synced(name: string, outcome: SyncOutcome, durationMs: number, status?: OidcPublisherStatus): void {
    const seconds = durationMs / 1000;
    this.reconcileDuration.observe(seconds);
    const ok = !outcome.sourceError && !outcome.publishError && outcome.preparation?.kind === 'ready';
    const wrote = (outcome.written?.length ?? 0) > 0;
    this.reconciles.labels(!ok ? 'failed' : wrote ? 'published' : 'up_to_date').inc();
    // Ready also requires the read-back, when there was one (verification enabled).
    this.ready
      .labels(name)
      .set(ok && outcome.verdict?.status !== 'False' && outcome.verdict?.status !== 'Unknown' ? 1 : 0);
    for (const c of keyChangesOf(outcome)) this.keyChanges.labels(name, c.kind).inc();
    if (outcome.verdict) this.verified.labels(name).set(outcome.verdict.status === 'True' ? 1 : 0);
    if (outcome.observation) this.verificationLatency.observe(outcome.observation.latencyMs / 1000);
    if (ok && outcome.preparation?.kind === 'ready') {
      const now = Date.now() / 1000;
      this.lastSuccess.labels(name).set(now);
      this.keys.labels(name).set(outcome.preparation.keys.length);
      if (wrote) {
        this.lastPublish.labels(name).set(now);
        this.publishDuration.observe(seconds);
      }
    }
    if (status) this.#trust(name, status);
  }

  /** KeysTrusted as the status written by this sync says it, and the trustedAt of its served keys. */
  #trust(name: string, status: OidcPublisherStatus): void {
    const condition = findCondition(status.conditions, ConditionType.KeysTrusted);
    if (condition) {
      const reason = REASONS.includes(condition.reason) ? condition.reason : 'Unknown';
      for (const r of REASONS) if (r !== reason) this.keysTrusted.remove(name, r);
      this.keysTrusted.labels(name, reason).set(condition.status === 'True' ? 1 : 0);
    }
    const trustedAt = (status.keys ?? [])
      .filter((k) => k.retiredAt === undefined)
      .map((k) => (k.trustedAt === undefined ? Number.NaN : Date.parse(k.trustedAt)))
      .filter((ms) => !Number.isNaN(ms));
    if (trustedAt.length > 0) this.keysTrustedAt.labels(name).set(Math.max(...trustedAt) / 1000);
    else this.keysTrustedAt.remove(name);
  }

  written(name: string, _write: PlannedWrite): void {
    this.writes.labels(name).inc();
  }

  skipped(name: string, _key: string): void {
    this.skippedWrites.labels(name).inc();
  }

  /** Drops the series of a deleted publisher. */
  forget(name: string): void {
    for (const g of [
      this.lastSuccess,
      this.lastPublish,
      this.keys,
      this.ready,
      this.verified,
      this.keysTrustedAt,
    ])
      g.remove(name);
    for (const r of REASONS) this.keysTrusted.remove(name, r);
    this.keysTrusted.remove(name, 'Unknown');
    for (const c of [this.writes, this.skippedWrites]) c.remove(name);
    for (const change of Object.keys(KEY_EVENT_REASONS)) this.keyChanges.remove(name, change);
  }
}
