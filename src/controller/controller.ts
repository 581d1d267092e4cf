/**
 * The controller: an informer over OidcPublishers feeding a work queue of
 * names, drained by the reconciler. Watch events only enqueue names; changes
 * to status alone (our own writes) do not.
 */
import { ConditionType, Reason } from '../api/conditions.ts';
import type { OidcPublisher } from '../api/types.ts';
import { findCondition } from '../core/conditions.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import { type Logger, serializeError } from '../log.ts';
import { Informer } from './informer.ts';
import { type QueueObserver, WorkQueue } from './queue.ts';
import type { Reconciler } from './reconciler.ts';

export interface ControllerOptions {
  concurrency: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Only this OidcPublisher, when set. */
  watchName?: string;
  /** Told what happens in the work queue (metrics). */
  queueObserver?: QueueObserver;
}

/** What about an object makes it worth a reconcile; status is left out. */
function fingerprint(o: OidcPublisher): string {
  return JSON.stringify([
    o.metadata.generation,
    o.metadata.deletionTimestamp ?? null,
    o.metadata.finalizers ?? [],
  ]);
}

export class Controller {
  readonly queue: WorkQueue;
  /** The informer holds the API server's JSON as it came; the CRD schema vouches for its shape. */
  readonly informer: Informer<OidcPublisher>;
  readonly #seen = new Map<string, string>();
  readonly #log: Logger;
  readonly #watchName: string | undefined;
  readonly #reconciler: Pick<Reconciler, 'reconcile'>;
  readonly #onDelete: ((name: string) => void) | undefined;

  constructor(
    cluster: Pick<ClusterClient, 'listPublishers' | 'watchPublishers'>,
    reconcilerFor: (
      getObject: (name: string) => OidcPublisher | undefined,
      listObjects: () => readonly OidcPublisher[],
    ) => Pick<Reconciler, 'reconcile'>,
    log: Logger,
    opts: ControllerOptions,
    onDelete?: (name: string) => void,
  ) {
    this.#onDelete = onDelete;
    this.#log = log;
    this.#watchName = opts.watchName;
    this.queue = new WorkQueue({
      concurrency: opts.concurrency,
      baseDelayMs: opts.backoffBaseMs,
      maxDelayMs: opts.backoffMaxMs,
      onHandlerError: (key, err) => log.error({ err, oidcpublisher: key }, 'reconcile threw'),
      observer: opts.queueObserver,
    });
    this.informer = new Informer<OidcPublisher>(
      {
        list: () => cluster.listPublishers(),
        watch: (query, onEvent, streamOpts) => cluster.watchPublishers(query, onEvent, streamOpts),
      },
      {
        onAdd: (o) => this.#changed(o),
        onUpdate: (o) => this.#changed(o),
        onDelete: (o) => {
          const name = o.metadata.name;
          this.#seen.delete(name);
          this.queue.remove(name);
          this.#onDelete?.(name);
          this.#wakeConflicting();
        },
        onError: (err, restartInMs) =>
          log.warn({ err: serializeError(err), restartInMs }, 'watch of OidcPublishers failed; restarting'),
        onSynced: (recovered) => {
          log.info({ count: this.informer.list().length }, 'watching OidcPublishers');
          if (recovered) this.#resyncAll();
        },
      },
    );
    this.#reconciler = reconcilerFor(
      (name) => this.informer.get(name),
      () => this.informer.list(),
    );
  }

  /** Starts reconciling (on becoming leader): every known object, then whatever changes. */
  startWorkers(): void {
    const reconciler = this.#reconciler;
    // Queued before the workers start, so a name the informer queued already is merged, not run twice.
    for (const o of this.informer.list()) {
      const name = o.metadata.name;
      if (!this.#watchName || name === this.#watchName) this.queue.add(name);
    }
    this.queue.start((name) => reconciler.reconcile(name));
  }

  /**
   * The watch is back after an error: the API server was unreachable, and is again. Syncs made
   * meanwhile failed, or could not record their status, and the API server may be the source of
   * many publishers (after a restart with a new signing key, say): sync every publisher now
   * rather than after its backoff or sync interval.
   */
  #resyncAll(): void {
    const names = this.informer
      .list()
      .map((o) => o.metadata.name)
      .filter((name) => !this.#watchName || name === this.#watchName);
    this.#log.info({ count: names.length }, 'the API server is back: syncing every publisher');
    for (const name of names) this.queue.add(name);
  }

  #changed(o: OidcPublisher): void {
    const name = o.metadata.name;
    if (this.#watchName && name !== this.#watchName) return;
    const fp = fingerprint(o);
    if (this.#seen.get(name) === fp) return;
    const known = this.#seen.has(name);
    this.#seen.set(name, fp);
    this.queue.add(name);
    // A publisher that moved to another target, or is being deleted, may free one that waits for it.
    if (known) this.#wakeConflicting();
  }

  /**
   * Queues every publisher refused for a target an earlier one writes (Ready=False/TargetConflict):
   * after that one is deleted or changed, the next in line takes over now, not at its next sync.
   */
  #wakeConflicting(): void {
    for (const o of this.informer.list()) {
      const name = o.metadata.name;
      if (this.#watchName && name !== this.#watchName) continue;
      if (findCondition(o.status?.conditions, ConditionType.Ready)?.reason === Reason.TargetConflict)
        this.queue.add(name);
    }
  }

  /** Starts watching; objects are queued but not reconciled until startWorkers(). */
  async start(): Promise<void> {
    await this.informer.start();
  }

  /** Stops watching, lets reconciles in flight finish (at most graceMs). */
  async stop(graceMs: number): Promise<boolean> {
    await this.informer.stop();
    const finished = await this.queue.shutdown(graceMs);
    this.#log.info({ finished }, 'controller stopped');
    return finished;
  }
}
