/**
 * client-node's informer stops for good after a watch or list error, and
 * reports an AbortError when it is stopped. This wrapper restarts it after
 * errors (one restart timer, capped backoff) and stays quiet while stopping.
 */
import {
  ADD,
  DELETE,
  ERROR,
  type Informer,
  type KubernetesObject,
  type ObjectCache,
  UPDATE,
} from '@kubernetes/client-node';

export interface InformerHandlers<T> {
  onAdd(obj: T): void;
  onUpdate(obj: T): void;
  onDelete(obj: T): void;
  /** An error that will be followed by a restart. */
  onError(err: unknown, restartInMs: number): void;
  /** The informer listed and is watching again (after the first start or a restart). */
  onSynced?(): void;
}

export class ResilientInformer<T extends KubernetesObject> {
  readonly #informer: Informer<T> & ObjectCache<T>;
  readonly #handlers: InformerHandlers<T>;
  readonly #maxDelayMs: number;
  #stopping = false;
  #synced = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #errorDuringStart = false;

  constructor(
    informer: Informer<T> & ObjectCache<T>,
    handlers: InformerHandlers<T>,
    opts: { maxDelayMs?: number } = {},
  ) {
    this.#informer = informer;
    this.#handlers = handlers;
    this.#maxDelayMs = opts.maxDelayMs ?? 30_000;
    informer.on(ADD, (o) => handlers.onAdd(o));
    informer.on(UPDATE, (o) => handlers.onUpdate(o));
    informer.on(DELETE, (o) => handlers.onDelete(o));
    informer.on(ERROR, (err) => this.#failed(err));
  }

  /** True after a successful list and watch, until the next error. */
  get synced(): boolean {
    return this.#synced;
  }

  get(name: string): T | undefined {
    return this.#informer.get(name);
  }

  list(): readonly T[] {
    return this.#informer.list();
  }

  async start(): Promise<void> {
    this.#stopping = false;
    await this.#run();
  }

  async #run(): Promise<void> {
    this.#errorDuringStart = false;
    try {
      await this.#informer.start();
    } catch (err) {
      this.#failed(err);
      return;
    }
    if (!this.#errorDuringStart && !this.#stopping) {
      this.#synced = true;
      this.#failures = 0;
      this.#handlers.onSynced?.();
    }
  }

  #failed(err: unknown): void {
    this.#errorDuringStart = true;
    if (this.#stopping) return;
    this.#synced = false;
    if (this.#restartTimer) return;
    this.#failures += 1;
    const delay = Math.min(this.#maxDelayMs, 500 * 2 ** Math.min(this.#failures - 1, 10));
    this.#handlers.onError(err, delay);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (!this.#stopping) void this.#run();
    }, delay);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#synced = false;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    await this.#informer.stop();
  }
}
