/**
 * A work queue of object names: at most one reconcile per key at a time,
 * duplicates merged, delayed re-adds keep the earliest time, failures retried
 * with capped exponential backoff and jitter, bounded concurrency across keys
 * in FIFO order.
 */

export type ReconcileResult =
  /** Run again after this many milliseconds (the sync interval). */
  | { requeueAfterMs: number }
  /** Failed: run again after the key's next backoff delay, or after `maxDelayMs` if that is sooner. */
  | { backoff: true; maxDelayMs?: number }
  /** Nothing more to do until the key is added again. */
  | { done: true };

export type Handler = (key: string) => Promise<ReconcileResult>;

export interface QueueOptions {
  concurrency: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Random source for jitter, in [0, 1). */
  random?: () => number;
  /** Called when a handler throws (it should not). */
  onHandlerError?: (key: string, err: unknown) => void;
  /** Told what happens to keys, e.g. for metrics. */
  observer?: QueueObserver;
}

/**
 * What happens to keys, in the terms of client-go's work queue metrics. A key is waiting from
 * `added` until `started` or `dropped`; a key added while it runs waits too, and starts again after
 * `done`.
 */
export interface QueueObserver {
  /** `key` now waits for a worker (it did not). */
  added(key: string): void;
  /** A worker took `key`. */
  started(key: string): void;
  /** The handler for `key` returned (or threw). */
  done(key: string): void;
  /** `key` stopped waiting without running: removed, or the queue shut down. */
  dropped(key: string): void;
  /** `key` failed and will run again after its backoff delay. */
  retried(key: string): void;
}

export class WorkQueue {
  readonly #opts: Required<Omit<QueueOptions, 'onHandlerError' | 'observer'>> &
    Pick<QueueOptions, 'onHandlerError' | 'observer'>;
  readonly #ready = new Set<string>();
  readonly #active = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  readonly #failures = new Map<string, number>();
  #handler: Handler | undefined;
  #stopping = false;
  #idle: (() => void) | undefined;

  constructor(opts: QueueOptions) {
    this.#opts = { random: Math.random, ...opts };
  }

  start(handler: Handler): void {
    this.#handler = handler;
    this.#pump();
  }

  /** Runs `key` as soon as a worker is free. */
  add(key: string): void {
    if (this.#stopping) return;
    this.#cancelTimer(key);
    if (this.#active.has(key)) {
      if (!this.#dirty.has(key)) {
        this.#dirty.add(key);
        this.#opts.observer?.added(key);
      }
      return;
    }
    if (this.#ready.has(key)) return;
    this.#ready.add(key);
    this.#opts.observer?.added(key);
    this.#pump();
  }

  #cancelTimer(key: string): void {
    const t = this.#timers.get(key);
    if (t) {
      clearTimeout(t.timer);
      this.#timers.delete(key);
    }
  }

  /** Runs `key` after `delayMs`, unless it is already due sooner. */
  addAfter(key: string, delayMs: number): void {
    if (this.#stopping) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    if (this.#ready.has(key)) return;
    const at = Date.now() + delayMs;
    const existing = this.#timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.#timers.set(key, { at, timer });
  }

  /** Forgets a key entirely (its object was deleted). */
  remove(key: string): void {
    this.#cancelTimer(key);
    if (this.#ready.delete(key) || this.#dirty.delete(key)) this.#opts.observer?.dropped(key);
    this.#failures.delete(key);
  }

  /** The delay before the next retry of `key`, counting this failure. */
  backoffDelay(key: string): number {
    const n = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, n);
    const exp = Math.min(this.#opts.maxDelayMs, this.#opts.baseDelayMs * 2 ** Math.min(n - 1, 30));
    // Full jitter in the upper half: never below half the nominal delay.
    return Math.round(exp / 2 + (exp / 2) * this.#opts.random());
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  get size(): { ready: number; active: number; scheduled: number } {
    return { ready: this.#ready.size, active: this.#active.size, scheduled: this.#timers.size };
  }

  #pump(): void {
    const handler = this.#handler;
    if (!handler || this.#stopping) return;
    while (this.#active.size < this.#opts.concurrency && this.#ready.size > 0) {
      const key = this.#ready.values().next().value as string;
      this.#ready.delete(key);
      this.#active.add(key);
      this.#opts.observer?.started(key);
      void this.#run(handler, key);
    }
  }

  async #run(handler: Handler, key: string): Promise<void> {
    let result: ReconcileResult;
    try {
      result = await handler(key);
    } catch (err) {
      this.#opts.onHandlerError?.(key, err);
      result = { backoff: true };
    }
    this.#active.delete(key);
    this.#opts.observer?.done(key);
    if ('backoff' in result) {
      if (!this.#stopping) this.#opts.observer?.retried(key);
      this.addAfter(key, Math.min(this.backoffDelay(key), result.maxDelayMs ?? Number.POSITIVE_INFINITY));
    } else {
      this.#failures.delete(key);
      if ('requeueAfterMs' in result) this.addAfter(key, result.requeueAfterMs);
    }
    if (this.#dirty.delete(key)) {
      // Added while it ran: it has been waiting since, and now goes to the ready set.
      if (this.#stopping) this.#opts.observer?.dropped(key);
      else {
        this.#cancelTimer(key);
        this.#ready.add(key);
      }
    }
    if (this.#stopping && this.#active.size === 0) this.#idle?.();
    this.#pump();
  }

  /** Stops taking work and waits (at most `graceMs`) for reconciles in flight. Returns false on timeout. */
  async shutdown(graceMs: number): Promise<boolean> {
    this.#stopping = true;
    for (const t of this.#timers.values()) clearTimeout(t.timer);
    this.#timers.clear();
    for (const key of this.#ready) this.#opts.observer?.dropped(key);
    this.#ready.clear();
    if (this.#active.size === 0) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), graceMs);
      this.#idle = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }
}
