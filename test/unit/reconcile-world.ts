/**
 * Everything a Reconciler talks to, in memory, for unit tests of one sync: the operator's own API
 * server (OidcPublishers, their status and finalizers, Events, TokenRequests), the source API
 * server's documents, the bucket (MemoryStore), the public issuer (PublicView), a clock and the
 * log. Each implements one of the reconciler's dependency interfaces; nothing speaks HTTP.
 */
import { Writable } from 'node:stream';
import type { OidcPublisher, OidcPublisherStatus } from '../../src/api/types.ts';
import { CanaryTokens } from '../../src/controller/canary.ts';
import type { ReconcileResult } from '../../src/controller/queue.ts';
import { Reconciler, type ReconcilerDeps } from '../../src/controller/reconciler.ts';
import type { CanaryRefusal } from '../../src/core/canary.ts';
import type { EventSpec } from '../../src/core/events.ts';
import type { PlannedWrite, RawDocuments } from '../../src/core/plan.ts';
import { type MacKey, macKey } from '../../src/core/record-mac.ts';
import { OidcPublisherError } from '../../src/errors.ts';
import type { ClusterClient, IssuedToken, OidcPublisherList } from '../../src/kube/cluster-client.ts';
import type { StreamOptions } from '../../src/kube/http.ts';
import { createLogger } from '../../src/log.ts';
import type { DocumentSource } from '../../src/sources/apiserver.ts';
import {
  discoveryJson,
  EC_PUBLIC,
  jwksJson,
  PUBLISHER_NAME,
  RSA_PUBLIC,
  samplePublisher,
} from './fixtures.ts';
import { MemoryStore } from './memory-store.ts';
import { PublicView } from './public-view.ts';

/** RFC 7386 JSON merge patch, as the API server applies a status patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/**
 * The operator's own API server, as the controller, the reconciler and the canary token cache call
 * it: OidcPublishers listed and watched (every change after a watch starts is streamed to it),
 * status and finalizers written, TokenRequests answered, Events recorded.
 */
export class MemoryCluster
  implements
    Pick<
      ClusterClient,
      'listPublishers' | 'watchPublishers' | 'patchStatus' | 'setFinalizers' | 'createToken'
    >
{
  readonly objects = new Map<string, OidcPublisher>();
  readonly statusPatches: { name: string; status: OidcPublisherStatus }[] = [];
  readonly finalizerUpdates: { name: string; finalizers: string[] }[] = [];
  readonly events: { name: string; event: EventSpec }[] = [];
  readonly tokenRequests: { namespace: string; serviceAccount: string; audience: string }[] = [];
  /** The answer to a TokenRequest. */
  token: (serviceAccount: string) => IssuedToken | CanaryRefusal = () => ({
    refused: 'unavailable',
    message: 'HTTP 404 (no such ServiceAccount)',
  });
  lists = 0;
  #rv = 1;
  readonly #watches = new Set<{ onEvent: (event: unknown) => void; fail: (err: unknown) => void }>();

  /** Stores `obj` with a new resourceVersion, as a create or an update would. */
  apply(obj: OidcPublisher): OidcPublisher {
    const stored = structuredClone({
      ...obj,
      metadata: { ...obj.metadata, resourceVersion: String(++this.#rv) },
    });
    const type = this.objects.has(obj.metadata.name) ? 'MODIFIED' : 'ADDED';
    this.objects.set(obj.metadata.name, stored);
    this.#emit(type, stored);
    return stored;
  }

  /** Deletes an object at once (one without finalizers, or one whose last finalizer went). */
  remove(name: string): void {
    const o = this.objects.get(name);
    if (!o) return;
    this.objects.delete(name);
    this.#emit('DELETED', { ...o, metadata: { ...o.metadata, resourceVersion: String(++this.#rv) } });
  }

  #emit(type: string, object: OidcPublisher): void {
    for (const w of this.#watches) w.onEvent({ type, object: structuredClone(object) });
  }

  async listPublishers(): Promise<OidcPublisherList> {
    this.lists++;
    return {
      metadata: { resourceVersion: String(this.#rv) },
      items: [...this.objects.values()].map((o) => structuredClone(o)),
    };
  }

  /** Streams every change from now on, until aborted or failWatches(). */
  watchPublishers(
    _query: { resourceVersion: string; timeoutSeconds: number },
    onEvent: (event: unknown) => void,
    opts: StreamOptions,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const watch = {
        onEvent,
        fail: (err: unknown) => {
          this.#watches.delete(watch);
          reject(err);
        },
      };
      this.#watches.add(watch);
      const end = () => {
        this.#watches.delete(watch);
        resolve();
      };
      if (opts.signal.aborted) end();
      else opts.signal.addEventListener('abort', end, { once: true });
    });
  }

  /** Ends every open watch with `err`, as a connection lost would. */
  failWatches(err: unknown): void {
    for (const w of [...this.#watches]) w.fail(err);
  }

  update(name: string, change: (o: OidcPublisher) => OidcPublisher): OidcPublisher {
    const o = this.objects.get(name);
    if (!o) throw new Error(`no OidcPublisher ${name}`);
    return this.apply(change(structuredClone(o)));
  }

  async patchStatus(name: string, status: OidcPublisherStatus): Promise<void> {
    const patch = JSON.parse(JSON.stringify(status)) as OidcPublisherStatus;
    this.statusPatches.push({ name, status: patch });
    const o = this.objects.get(name);
    if (!o) return;
    this.apply({ ...o, status: mergePatch(o.status, patch) as OidcPublisherStatus });
  }

  async setFinalizers(
    name: string,
    finalizers: string[],
    resourceVersion: string | undefined,
  ): Promise<void> {
    const o = this.objects.get(name);
    if (!o) return;
    if (resourceVersion && o.metadata.resourceVersion !== resourceVersion)
      throw new OidcPublisherError('KUBE_API_ERROR', `update finalizers of oidcpublisher/${name}: HTTP 409`);
    this.finalizerUpdates.push({ name, finalizers: [...finalizers] });
    // The API server removes an object being deleted once its last finalizer is gone.
    if (o.metadata.deletionTimestamp && finalizers.length === 0) this.remove(name);
    else this.apply({ ...o, metadata: { ...o.metadata, finalizers: [...finalizers] } });
  }

  async createToken(
    namespace: string,
    serviceAccount: string,
    audience: string,
    _expirationSeconds: number,
  ): Promise<IssuedToken | CanaryRefusal> {
    this.tokenRequests.push({ namespace, serviceAccount, audience });
    return this.token(serviceAccount);
  }

  readonly recorder = {
    record: async (obj: OidcPublisher, event: EventSpec): Promise<void> => {
      this.events.push({ name: obj.metadata.name, event });
    },
  };

  clearLog(): void {
    this.statusPatches.length = 0;
    this.finalizerUpdates.length = 0;
    this.events.length = 0;
    this.tokenRequests.length = 0;
  }
}

export const WORLD_START = new Date('2025-06-01T12:00:00Z');

/** One OidcPublisher's world; `reconcile()` runs one sync of it. */
export class World {
  readonly cluster = new MemoryCluster();
  readonly store = new MemoryStore();
  readonly view = new PublicView(this.store);
  /** The key status.keys records are sealed with (the operator keeps it in a Secret), or the error getting it raises. */
  integrityKey: MacKey | OidcPublisherError = macKey(Buffer.alloc(32, 7));
  /** The log lines, parsed. */
  readonly logs: Record<string, unknown>[] = [];
  now = new Date(WORLD_START);
  /** What the source API server serves, or the error reading it raises. */
  source: RawDocuments | OidcPublisherError = {
    discovery: discoveryJson(),
    jwks: jwksJson([RSA_PUBLIC, EC_PUBLIC]),
  };
  /** What the API server behind each kubeconfig Secret serves (spec.sources), by Secret name. */
  readonly secretSources = new Map<string, RawDocuments | OidcPublisherError>();
  /** The error getting the source raises (a kubeconfig Secret's), when set. */
  sourceSetupError: OidcPublisherError | undefined;
  /** The error getting the store raises (its credentials Secret's, an endpoint refused), when set. */
  storeSetupError: OidcPublisherError | undefined;
  sourceReads = 0;
  /** The writes the reconciler reported landing (its `written` hook), with why each was made. */
  readonly planned: PlannedWrite[] = [];
  #reconciler: Reconciler;

  constructor(publisher: OidcPublisher = samplePublisher()) {
    this.cluster.apply(publisher);
    this.#reconciler = this.newReconciler();
  }

  get obj(): OidcPublisher {
    const o = this.cluster.objects.get(PUBLISHER_NAME);
    if (!o) throw new Error(`${PUBLISHER_NAME} is gone`);
    return o;
  }

  /** A Reconciler over this world; `deps` replace its dependencies (the controller's getObject, say). */
  newReconciler(deps: Partial<ReconcilerDeps> = {}): Reconciler {
    const log = createLogger({
      level: 'debug',
      destination: new Writable({
        write: (chunk: Buffer, _enc, cb) => {
          for (const line of chunk.toString('utf8').split('\n'))
            if (line) this.logs.push(JSON.parse(line) as Record<string, unknown>);
          cb();
        },
      }),
    });
    const source: DocumentSource = {
      server: 'https://source.example:6443',
      fetchDocuments: async () => {
        this.sourceReads++;
        if (this.source instanceof Error) throw this.source;
        return this.source;
      },
      close: () => {},
    };
    return new Reconciler({
      cluster: this.cluster,
      getObject: (name) => this.cluster.objects.get(name),
      listObjects: () => [...this.cluster.objects.values()],
      sources: {
        get: async (spec) => {
          if (this.sourceSetupError) throw this.sourceSetupError;
          const secret = spec.kubeconfigSecret?.name;
          const served = secret === undefined ? undefined : this.secretSources.get(secret);
          if (served === undefined) return source;
          return {
            server: `https://${secret}.example:6443`,
            fetchDocuments: async () => {
              this.sourceReads++;
              if (served instanceof Error) throw served;
              return served;
            },
            close: () => {},
          };
        },
      },
      stores: {
        get: async () => {
          if (this.storeSetupError) throw this.storeSetupError;
          return this.store;
        },
      },
      issuerReader: this.view,
      log,
      now: () => new Date(this.now),
      events: this.cluster.recorder,
      canary: new CanaryTokens(this.cluster, 'oidc-publisher-system'),
      integrityKey: {
        get: async () => {
          if (this.integrityKey instanceof Error) throw this.integrityKey;
          return this.integrityKey;
        },
      },
      hooks: { written: (_name, write) => this.planned.push(write) },
      ...deps,
    });
  }

  /** A new Reconciler, remembering nothing: an operator restart, or another replica taking over. */
  restart(): void {
    this.#reconciler = this.newReconciler();
  }

  reconcile(name = PUBLISHER_NAME): Promise<ReconcileResult> {
    return this.#reconciler.reconcile(name);
  }

  /** Changes the OidcPublisher, as a user's edit (spec: with a new generation) or another writer would. */
  edit(change: (o: OidcPublisher) => void): void {
    this.cluster.update(PUBLISHER_NAME, (o) => {
      change(o);
      return o;
    });
  }

  advance(ms: number): void {
    this.now = new Date(this.now.getTime() + ms);
  }

  /** Forgets what was called, written and recorded so far; the state stays. */
  clearLog(): void {
    this.cluster.clearLog();
    this.store.clearLog();
    this.logs.length = 0;
    this.planned.length = 0;
    this.view.reads = 0;
    this.sourceReads = 0;
  }
}
