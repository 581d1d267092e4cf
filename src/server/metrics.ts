/** Prometheus metrics, on a registry made in main (no global state). */

import type { ReconcileHooks } from '../controller/reconciler.ts';
import { KEY_EVENT_REASONS, keyChangesOf } from '../core/events.ts';
import type { PlannedWrite } from '../core/plan.ts';
import type { SyncOutcome } from '../core/status.ts';
import { Counter, Gauge, Histogram, Registry } from './prometheus.ts';

export class Metrics implements ReconcileHooks {
  readonly registry = new Registry();
  readonly reconciles: Counter<'result'>;
  readonly reconcileDuration: Histogram;
  readonly publishDuration: Histogram;
  readonly writes: Counter<'publisher'>;
  readonly skippedWrites: Counter<'publisher'>;
  readonly lastSuccess: Gauge<'publisher'>;
  readonly lastPublish: Gauge<'publisher'>;
  readonly keys: Gauge<'publisher'>;
  readonly ready: Gauge<'publisher'>;
  readonly leader: Gauge;
  readonly keyChanges: Counter<'publisher' | 'change'>;
  readonly verified: Gauge<'publisher'>;
  readonly verificationLatency: Histogram;

  constructor() {
    const r = <M extends { readonly name: string; render(): string }>(m: M) => this.registry.register(m);
    this.reconciles = r(
      new Counter({
        name: 'oidc_publisher_reconcile_total',
        help: 'Syncs by result: published (objects written), up_to_date, failed.',
        labelNames: ['result'],
      }),
    );
    this.reconcileDuration = r(
      new Histogram({
        name: 'oidc_publisher_reconcile_duration_seconds',
        help: 'Duration of a sync: read the source, compare, write, update status.',
        buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      }),
    );
    this.publishDuration = r(
      new Histogram({
        name: 'oidc_publisher_publish_duration_seconds',
        help: 'Duration of a sync that wrote objects.',
        buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      }),
    );
    this.writes = r(
      new Counter({
        name: 'oidc_publisher_storage_writes_total',
        help: 'Objects written to storage.',
        labelNames: ['publisher'],
      }),
    );
    this.skippedWrites = r(
      new Counter({
        name: 'oidc_publisher_storage_skipped_writes_total',
        help: 'Objects not written because storage already held them.',
        labelNames: ['publisher'],
      }),
    );
    this.lastSuccess = r(
      new Gauge({
        name: 'oidc_publisher_last_success_timestamp_seconds',
        help: 'When the publisher last confirmed that storage holds the current documents (Unix time).',
        labelNames: ['publisher'],
      }),
    );
    this.lastPublish = r(
      new Gauge({
        name: 'oidc_publisher_last_publish_timestamp_seconds',
        help: 'When the publisher last wrote an object (Unix time).',
        labelNames: ['publisher'],
      }),
    );
    this.keys = r(
      new Gauge({
        name: 'oidc_publisher_published_keys',
        help: 'Keys in the published JWKS.',
        labelNames: ['publisher'],
      }),
    );
    this.ready = r(
      new Gauge({
        name: 'oidc_publisher_ready',
        help: '1 when the publisher is Ready, else 0.',
        labelNames: ['publisher'],
      }),
    );
    this.keyChanges = r(
      new Counter({
        name: 'oidc_publisher_key_changes_total',
        help: 'Changes of the published key set: added, retired (left the source, still published), removed, restored, retained (republished from the stored JWKS), refused (a status.keys record not published).',
        labelNames: ['publisher', 'change'],
      }),
    );
    this.verified = r(
      new Gauge({
        name: 'oidc_publisher_verified',
        help: '1 when an anonymous reader of the public issuer last got exactly the published documents, else 0.',
        labelNames: ['publisher'],
      }),
    );
    this.verificationLatency = r(
      new Histogram({
        name: 'oidc_publisher_verification_duration_seconds',
        help: 'Duration of the anonymous read-back of the public issuer (both documents).',
        buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
      }),
    );
    this.leader = r(
      new Gauge({
        name: 'oidc_publisher_leader',
        help: '1 when this replica is the leader, else 0.',
      }),
    );
  }

  synced(name: string, outcome: SyncOutcome, durationMs: number): void {
    const seconds = durationMs / 1000;
    this.reconcileDuration.observe(seconds);
    const ok = !outcome.sourceError && !outcome.publishError && outcome.preparation?.kind === 'ready';
    const wrote = (outcome.written?.length ?? 0) > 0;
    this.reconciles.inc({ result: !ok ? 'failed' : wrote ? 'published' : 'up_to_date' });
    // Ready also requires the read-back, when there was one (verification enabled).
    this.ready.set(
      { publisher: name },
      ok && outcome.verdict?.status !== 'False' && outcome.verdict?.status !== 'Unknown' ? 1 : 0,
    );
    for (const c of keyChangesOf(outcome)) this.keyChanges.inc({ publisher: name, change: c.kind });
    if (outcome.verdict) this.verified.set({ publisher: name }, outcome.verdict.status === 'True' ? 1 : 0);
    if (outcome.observation) this.verificationLatency.observe(outcome.observation.latencyMs / 1000);
    if (ok && outcome.preparation?.kind === 'ready') {
      const now = Date.now() / 1000;
      this.lastSuccess.set({ publisher: name }, now);
      this.keys.set({ publisher: name }, outcome.preparation.keys.length);
      if (wrote) {
        this.lastPublish.set({ publisher: name }, now);
        this.publishDuration.observe(seconds);
      }
    }
  }

  written(name: string, _write: PlannedWrite): void {
    this.writes.inc({ publisher: name });
  }

  skipped(name: string, _key: string): void {
    this.skippedWrites.inc({ publisher: name });
  }

  /** Drops the series of a deleted publisher. */
  forget(name: string): void {
    for (const g of [this.lastSuccess, this.lastPublish, this.keys, this.ready, this.verified])
      g.remove({ publisher: name });
    for (const c of [this.writes, this.skippedWrites]) c.remove({ publisher: name });
    for (const change of Object.keys(KEY_EVENT_REASONS)) {
      this.keyChanges.remove({ publisher: name, change });
    }
  }
}
