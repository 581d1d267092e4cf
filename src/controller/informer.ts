/**
 * A cache of one kind of object kept current by list and watch, as client-go's
 * reflector does: list, then watch from the list's resourceVersion with
 * bookmarks; a watch the server ends is resumed from the last version seen; a
 * version the server no longer has (410 Gone, after etcd compaction) means a
 * fresh list. Any other error is reported and retried with capped backoff. A
 * watch on which nothing arrives for its timeout and a margin is abandoned, so
 * a connection that died silently does not freeze the cache.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeHttpError, type StreamOptions } from '../kube/http.ts';

export interface Named {
  metadata: { name: string; resourceVersion?: string };
}

export interface ListResult<T> {
  metadata?: { resourceVersion?: string };
  items: T[];
}

/** The two calls an informer makes; the watch streams events until it ends. */
export interface ListWatch<T> {
  list(): Promise<ListResult<T>>;
  watch(
    query: { resourceVersion: string; timeoutSeconds: number },
    onEvent: (event: unknown) => void,
    opts: StreamOptions,
  ): Promise<void>;
}

export interface InformerHandlers<T> {
  onAdd(obj: T): void;
  onUpdate(obj: T): void;
  onDelete(obj: T): void;
  /** An error that will be followed by a restart. */
  onError(err: unknown, restartInMs: number): void;
  /** Listed and watching: after the first start (`recovered` false) or after an error (true). */
  onSynced?(recovered: boolean): void;
}

class Gone extends Error {
  override name = 'Gone';
}

/** Errors that end a watch the normal way: the version is too old, list again. */
function isGone(err: unknown): boolean {
  return err instanceof Gone || (err instanceof KubeHttpError && err.status === 410);
}

export class Informer<T extends Named> {
  readonly #lw: ListWatch<T>;
  readonly #handlers: InformerHandlers<T>;
  readonly #maxDelayMs: number;
  readonly #watchSeconds: number;
  readonly #cache = new Map<string, T>();
  #resourceVersion = '';
  #stopping = false;
  #synced = false;
  #everSynced = false;
  #failures = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;
  /** The run in progress: a list, then starting the watch loop. */
  #current: Promise<void> | undefined;
  #generation = 0;

  /**
   * `watchSeconds`: each watch asks the server to end it after this many seconds and up to as many
   * more (client-go's spread of 5 to 10 minutes, so replicas do not all re-watch at once).
   */
  constructor(
    lw: ListWatch<T>,
    handlers: InformerHandlers<T>,
    opts: { maxDelayMs?: number; watchSeconds?: number } = {},
  ) {
    this.#lw = lw;
    this.#handlers = handlers;
    this.#maxDelayMs = opts.maxDelayMs ?? 30_000;
    this.#watchSeconds = opts.watchSeconds ?? 300;
  }

  /** True after a successful list, until the next error. */
  get synced(): boolean {
    return this.#synced;
  }

  get(name: string): T | undefined {
    return this.#cache.get(name);
  }

  list(): T[] {
    return [...this.#cache.values()];
  }

  /** Lists once (resolves when that is done, or failed and a retry is scheduled), then watches. */
  async start(): Promise<void> {
    this.#stopping = false;
    this.#current = this.#run(this.#generation);
    await this.#current;
  }

  /** One list, then the watch loop; `generation` tells a run that a stop() came in between. */
  async #run(generation: number): Promise<void> {
    if (this.#stopping) return;
    try {
      await this.#relist();
    } catch (err) {
      this.#failed(err);
      return;
    }
    if (this.#stopping || generation !== this.#generation) return;
    this.#synced = true;
    const recovered = this.#everSynced;
    this.#everSynced = true;
    this.#handlers.onSynced?.(recovered);
    this.#loop = this.#watchLoop();
  }

  /** Replaces the cache with a list, reporting what was added, changed and removed meanwhile. */
  async #relist(): Promise<void> {
    const listed = await this.#lw.list();
    if (this.#stopping) return;
    const seen = new Set<string>();
    for (const obj of listed.items ?? []) {
      const name = obj.metadata.name;
      seen.add(name);
      const old = this.#cache.get(name);
      this.#cache.set(name, obj);
      if (!old) this.#handlers.onAdd(obj);
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.#handlers.onUpdate(obj);
    }
    for (const [name, old] of this.#cache) {
      if (!seen.has(name)) {
        this.#cache.delete(name);
        this.#handlers.onDelete(old);
      }
    }
    this.#resourceVersion = listed.metadata?.resourceVersion ?? '';
  }

  #event(raw: unknown): void {
    const { type, object } = (raw ?? {}) as { type?: unknown; object?: unknown };
    if (type === 'ERROR') {
      const status = (object ?? {}) as { code?: unknown; reason?: unknown };
      if (status.code === 410) throw new Gone('resource version too old');
      throw new KubeHttpError(
        typeof status.code === 'number' ? status.code : 500,
        typeof status.reason === 'string' ? status.reason : undefined,
      );
    }
    const obj = object as T | undefined;
    const rv = obj?.metadata?.resourceVersion;
    // A bookmark carries only a resourceVersion: where to resume, with nothing changed.
    if (type === 'BOOKMARK') {
      if (typeof rv === 'string' && rv) this.#resourceVersion = rv;
      return;
    }
    const name = obj?.metadata?.name;
    if (!obj || typeof name !== 'string') throw new Error(`watch event ${String(type)} without an object`);
    if (typeof rv === 'string' && rv) this.#resourceVersion = rv;
    if (type === 'DELETED') {
      const old = this.#cache.get(name);
      this.#cache.delete(name);
      this.#handlers.onDelete(old ?? obj);
    } else if (type === 'ADDED' || type === 'MODIFIED') {
      const existed = this.#cache.has(name);
      this.#cache.set(name, obj);
      if (existed) this.#handlers.onUpdate(obj);
      else this.#handlers.onAdd(obj);
    }
  }

  async #watchLoop(): Promise<void> {
    while (!this.#stopping) {
      const timeoutSeconds = this.#watchSeconds + Math.floor(Math.random() * this.#watchSeconds);
      const abort = new AbortController();
      this.#abort = abort;
      const began = Date.now();
      let received = false;
      // A watch that worked for a while (or delivered anything) ends a run of failures: the next
      // error is retried quickly again. One that fails at once (a watch refused while lists are
      // allowed) keeps backing off, instead of listing twice a second.
      const worked = () => received || Date.now() - began >= 10_000;
      try {
        await this.#lw.watch(
          { resourceVersion: this.#resourceVersion, timeoutSeconds },
          (e) => {
            received = true;
            this.#event(e);
          },
          { signal: abort.signal, idleMs: (timeoutSeconds + 60) * 1000 },
        );
      } catch (err) {
        if (this.#stopping) return;
        if (worked()) this.#failures = 0;
        if (isGone(err)) {
          if (Date.now() - began < 1000)
            await sleep(1000, undefined, { signal: abort.signal }).catch(() => {});
          if (this.#stopping) return;
          try {
            await this.#relist();
            continue;
          } catch (listErr) {
            this.#failed(listErr);
            return;
          }
        }
        this.#failed(err);
        return;
      }
      if (worked()) this.#failures = 0;
      // Ended by the server: resume. One that ends at once (a proxy closing it) is not retried in a tight loop.
      if (Date.now() - began < 1000) await sleep(1000, undefined, { signal: abort.signal }).catch(() => {});
    }
  }

  #failed(err: unknown): void {
    if (this.#stopping) return;
    this.#synced = false;
    if (this.#restartTimer) return;
    this.#failures += 1;
    const delay = Math.min(this.#maxDelayMs, 500 * 2 ** Math.min(this.#failures - 1, 10));
    this.#handlers.onError(err, delay);
    const generation = this.#generation;
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#current = this.#run(generation).catch((e: unknown) => this.#failed(e));
    }, delay);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#generation += 1;
    this.#synced = false;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    this.#abort?.abort();
    await this.#current?.catch(() => undefined);
    await this.#loop;
  }
}
