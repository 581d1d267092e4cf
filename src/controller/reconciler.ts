/**
 * One sync of one OidcPublisher: gather (object, source documents, bucket
 * metadata), decide (the pure core), act (writes, status). Level-based: it
 * reads the current object and the world every time, whatever woke it.
 */
import { randomUUID } from 'node:crypto';
import { ConditionType, Reason } from '../api/conditions.ts';
import type { OidcPublisher, OidcPublisherStatus } from '../api/types.ts';
import { FINALIZER } from '../api/types.ts';
import {
  CANARY_AUDIENCE,
  type CanaryCheck,
  type CanaryRefusal,
  canaryVerdict,
  verifyCanaryToken,
} from '../core/canary.ts';
import { findCondition } from '../core/conditions.ts';
import { eventsFor } from '../core/events.ts';
import { type KeyRecord, needsStoredJwks, provenKeys, type StoredJwks } from '../core/keys.ts';
import { mergeSources, type SourceRead, type StaleSource, staleSummary } from '../core/merge.ts';
import {
  type Ownership,
  type PlannedWrite,
  type planWrites,
  prepare,
  type RawDocuments,
} from '../core/plan.ts';
import type { RecordSeal } from '../core/record-mac.ts';
import {
  DISCOVERY_PATH,
  JWKS_PATH,
  objectKey,
  type ResolvedSpec,
  resolveSpec,
  type SpecPolicy,
  storageURL,
} from '../core/spec.ts';
import {
  type FailedStep,
  invalidSpecStatus,
  nextStatus,
  type SyncOutcome,
  sameStatus,
} from '../core/status.ts';
import { type Claimant, conflictFor, targetObjects } from '../core/targets.ts';
import { cacheLifetimeMs, keyTrust } from '../core/trust.ts';
import { judge, type Observation, servedAsRendered } from '../core/verify.ts';
import {
  describeError,
  ErrorCodes,
  isOidcPublisherError,
  OidcPublisherError,
  retryClassOf,
} from '../errors.ts';
import type { ClusterClient } from '../kube/cluster-client.ts';
import type { Logger } from '../log.ts';
import type { IssuerReader } from '../sources/relying-party.ts';
import type { SourceCache } from '../sources/source-cache.ts';
import type { StoreFactory } from '../stores/factory.ts';
import type { ObjectStore } from '../stores/store.ts';
import type { CanaryTokens } from './canary.ts';
import type { EventRecorder } from './event-recorder.ts';
import type { IntegrityKey } from './integrity-key.ts';
import { deleteObjects, publishObjects, type WriteMemo } from './publish-objects.ts';
import type { ReconcileResult } from './queue.ts';
import { readStoredJwks } from './stored-jwks.ts';

export interface ReconcilerDeps {
  cluster: Pick<ClusterClient, 'patchStatus' | 'setFinalizers'>;
  /** The current object, from the informer's cache. */
  getObject(name: string): OidcPublisher | undefined;
  sources: Pick<SourceCache, 'get'>;
  stores: Pick<StoreFactory, 'get'>;
  /** Reads the public issuer anonymously, for the Verified condition. */
  issuerReader: IssuerReader;
  log: Logger;
  now?: () => Date;
  hooks?: ReconcileHooks;
  /** Records Events; optional. */
  events?: Pick<EventRecorder, 'record'>;
  /**
   * Every OidcPublisher, from the informer's cache: a publisher whose objects an earlier one
   * writes is refused (TargetConflict). Without it, no publisher is compared with another.
   */
  listObjects?(): readonly OidcPublisher[];
  /** The operator's settings for what a spec may say (--allow-foreign-jwks-uri). */
  specPolicy?: SpecPolicy;
  /** Canary tokens (spec.verification.canary); without it, a canary is CanaryTokenUnavailable. */
  canary?: Pick<CanaryTokens, 'get' | 'forget'>;
  /** The key status.keys records are sealed with (core/record-mac.ts). */
  integrityKey: Pick<IntegrityKey, 'get'>;
}

/** Observers of what a sync did (metrics, events); optional. */
export interface ReconcileHooks {
  /** `status` is the one this sync wrote (its KeysTrusted condition and key records). */
  synced?(name: string, outcome: SyncOutcome, durationMs: number, status: OidcPublisherStatus): void;
  written?(name: string, write: PlannedWrite): void;
  skipped?(name: string, key: string): void;
}

/** What this OidcPublisher may overwrite or delete: objects with its UID, or the hashes its status recorded. */
function ownershipOf(obj: OidcPublisher): Ownership {
  return {
    owner: { uid: obj.metadata.uid ?? '', name: obj.metadata.name },
    recorded: new Map((obj.status?.objects ?? []).map((o) => [o.key, o.sha256])),
  };
}

function failed(err: unknown): FailedStep {
  if (isOidcPublisherError(err)) return { code: err.code, message: err.message };
  return { code: 'STORAGE_ERROR', message: describeError(err) };
}

/**
 * No source of spec.sources was usable: the step failed as the first stale source did (its retry
 * class decides the backoff), with every source named.
 */
function staleError(stale: readonly StaleSource[]): FailedStep {
  const first = stale[0];
  const code =
    !first ||
    first.code === 'ISSUER_MISMATCH' ||
    first.code === 'KID_CONFLICT' ||
    first.code === 'TOO_MANY_KEYS'
      ? 'DOCUMENT_INVALID'
      : first.code;
  return { code, message: staleSummary(stale) };
}

export class Reconciler {
  readonly #d: ReconcilerDeps;
  readonly #now: () => Date;
  /** Per store: what this reconciler last wrote or saw there, so a write it must make needs no HEAD first. */
  readonly #memos = new WeakMap<ObjectStore, WriteMemo>();
  /** The objects each OidcPublisher writes, per object version from the informer's cache. */
  readonly #targets = new WeakMap<OidcPublisher, string[] | undefined>();

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
    this.#now = deps.now ?? (() => new Date());
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const obj = this.#d.getObject(name);
    if (!obj) return { done: true };
    const log = this.#d.log.child({ oidcpublisher: name, reconcileID: randomUUID().slice(0, 8) });
    try {
      if (obj.metadata.deletionTimestamp) return await this.#finalize(obj, log);
      return await this.#sync(obj, log);
    } catch (err) {
      const retry = retryClassOf(err);
      log.error({ err, retry }, 'reconcile failed');
      if (retry === 'terminal') return { done: true };
      let syncIntervalMs: number | undefined;
      try {
        syncIntervalMs = resolveSpec(obj.spec, this.#d.specPolicy).syncIntervalMs;
      } catch {
        syncIntervalMs = undefined;
      }
      return syncIntervalMs === undefined ? { backoff: true } : { backoff: true, maxDelayMs: syncIntervalMs };
    }
  }

  async #ensureFinalizer(obj: OidcPublisher): Promise<void> {
    const finalizers = obj.metadata.finalizers ?? [];
    if (finalizers.includes(FINALIZER)) return;
    await this.#d.cluster.setFinalizers(
      obj.metadata.name,
      [...finalizers, FINALIZER],
      obj.metadata.resourceVersion,
    );
  }

  async #finalize(obj: OidcPublisher, log: Logger): Promise<ReconcileResult> {
    const finalizers = obj.metadata.finalizers ?? [];
    if (!finalizers.includes(FINALIZER)) return { done: true };
    this.#d.canary?.forget(obj.metadata.name);
    let spec: ResolvedSpec | undefined;
    try {
      // Where the objects are is all deletion needs: a jwksURI refused by policy does not matter here.
      spec = resolveSpec(obj.spec, { ...this.#d.specPolicy, allowForeignJwksURI: true });
    } catch {
      spec = undefined;
    }
    if (spec?.deletionPolicy === 'Delete') {
      const store = await this.#d.stores.get(spec.storage, obj.metadata.name);
      // Discovery document first, so no reader sees one whose JWKS is gone. Only objects this
      // publisher wrote are deleted; anything else at its keys stays, and the finalizer still goes.
      const keys = [DISCOVERY_PATH, JWKS_PATH].map((path) => objectKey(spec.storage.prefix, path));
      const { deleted, kept } = await deleteObjects(store, keys, ownershipOf(obj), this.#memos.get(store));
      for (const key of deleted)
        log.info({ key, store: store.describe }, 'deleted published object (deletionPolicy: Delete)');
      for (const { key, why } of kept) {
        log.warn(
          { key, store: store.describe, why },
          'left an object this OidcPublisher did not write in place',
        );
        await this.#d.events?.record(obj, {
          type: 'Warning',
          reason: Reason.ObjectNotOwned,
          action: 'Sync',
          note: `deletionPolicy: Delete left ${why} in place`,
        });
      }
    } else {
      log.info('leaving published objects in place (deletionPolicy: Retain)');
    }
    await this.#d.cluster.setFinalizers(
      obj.metadata.name,
      finalizers.filter((f) => f !== FINALIZER),
      obj.metadata.resourceVersion,
    );
    return { done: true };
  }

  async #sync(obj: OidcPublisher, log: Logger): Promise<ReconcileResult> {
    const started = performance.now();
    const name = obj.metadata.name;
    const generation = obj.metadata.generation ?? 0;
    let spec: ResolvedSpec;
    try {
      spec = resolveSpec(obj.spec, this.#d.specPolicy);
    } catch (err) {
      if (!(err instanceof OidcPublisherError)) throw err;
      log.warn({ err }, 'spec is invalid; waiting for it to change');
      await this.#writeStatus(obj, invalidSpecStatus(obj.status, generation, err.message, this.#now()));
      return { done: true };
    }
    await this.#ensureFinalizer(obj);

    const outcome: SyncOutcome = {};
    const conflict = this.#conflict(obj);
    const previous = obj.status?.keys as KeyRecord[] | undefined;
    let raw: RawDocuments | undefined;
    // The JWKS this publisher last wrote, once read in this sync (or why it could not be).
    let stored: StoredJwks | { error: FailedStep } | undefined;
    if (spec.sources) {
      // Every source is read, in parallel; the usable ones are merged, the others left stale.
      const reads = await Promise.all(
        spec.sources.map(async ({ name: sourceName, kubeconfigSecret }): Promise<SourceRead> => {
          try {
            const one = {
              ...spec,
              ...(kubeconfigSecret ? { kubeconfigSecret } : { kubeconfigSecret: undefined }),
            };
            const source = await this.#d.sources.get(one, name);
            return { name: sourceName, documents: await source.fetchDocuments() };
          } catch (err) {
            return { name: sourceName, error: failed(err) };
          }
        }),
      );
      let merged = mergeSources(spec.issuerURL, reads);
      // A source serving a kid this publisher published with other key material (say while the
      // cluster that signs with it missed a read) must not replace it: the keys the stored JWKS
      // proves published are merged first. A publisher refused for its target reads nothing there.
      // While a source is stale the stored JWKS is always read: status alone (writable) must not
      // decide that a kid now served by another source is the key that was published.
      if (merged.kind === 'merged' && !conflict) {
        // Only records sealed with the operator's MAC count: status and the bucket together
        // must not be able to make a key of their own "published" and so keep it.
        const seal = await this.#seal(obj, this.#now());
        const sealed = 'key' in seal ? seal : undefined;
        stored = await this.#storedJwks(
          obj,
          spec,
          merged.documents,
          previous,
          merged.stale.length > 0,
          sealed,
        );
        if (stored && 'state' in stored) {
          const published =
            'key' in seal ? provenKeys(previous, stored, this.#now(), spec.keyRetentionMs, seal) : new Map();
          if (published.size > 0) merged = mergeSources(spec.issuerURL, reads, published);
        }
      }
      if (merged.stale.length > 0) outcome.staleSources = merged.stale;
      if (merged.kind === 'merged') raw = merged.documents;
      else outcome.sourceError = staleError(merged.stale);
    } else {
      try {
        const source = await this.#d.sources.get(spec, name);
        raw = await source.fetchDocuments();
      } catch (err) {
        outcome.sourceError = failed(err);
      }
    }
    if (raw) {
      const now = this.#now();
      // A publisher refused for its target reads nothing there: the objects are another's.
      const seal = await this.#seal(obj, now);
      if (!conflict && stored === undefined)
        stored = await this.#storedJwks(obj, spec, raw, previous, false, 'key' in seal ? seal : undefined);
      outcome.preparation = prepare(spec, raw, {
        previous,
        now,
        ...(stored && 'state' in stored ? { stored } : {}),
        ...('key' in seal ? { seal } : {}),
      });
      if (conflict && outcome.preparation.kind === 'ready') outcome.publishError = conflict;
      // Records cannot be sealed or checked: publish nothing rather than drop retired keys.
      else if ('error' in seal && outcome.preparation.kind === 'ready') outcome.publishError = seal.error;
      // Retention could not read what it needs: publish nothing rather than drop retired keys.
      else if (stored && 'error' in stored && outcome.preparation.kind === 'ready')
        outcome.publishError = stored.error;
      else if (outcome.preparation.kind === 'ready') {
        const objects = outcome.preparation.objects;
        // The last read-back saw other bytes than the metadata promises: rewrite whatever HEAD says.
        const rewrite =
          findCondition(obj.status?.conditions, ConditionType.Verified)?.reason === Reason.ContentMismatch;
        const verify = spec.verification.enabled;
        const read = () => this.#d.issuerReader.read(spec.issuerURL, spec.verification.timeoutMs);
        // A relying party's view first: when it already gets exactly these objects, storage holds
        // them, and the sync needs no HEAD and no write.
        let observation = verify && !rewrite ? await read() : undefined;
        if (observation && servedAsRendered(objects, observation)) {
          outcome.written = [];
          for (const o of objects) this.#d.hooks?.skipped?.(name, o.key);
        } else {
          try {
            outcome.written = await this.#publish(name, spec, objects, log, rewrite, ownershipOf(obj));
          } catch (err) {
            outcome.publishError = failed(err);
          }
          if (outcome.written && verify && (outcome.written.length > 0 || !observation))
            observation = await read();
        }
        if (outcome.written && observation) {
          outcome.observation = observation;
          outcome.verdict = judge(spec.issuerURL, objects, observation, spec.verification.slowMs);
          const canary = spec.verification.canary;
          // A key new in the source may come with a new signing key: a fresh canary token shows it
          // in this sync (SigningKeyNotTrusted), not when the cached one is renewed.
          const added = outcome.preparation.retention.changes.some((c) => c.kind === 'added');
          if (!canary || added) this.#d.canary?.forget(name);
          if (canary && outcome.verdict.status === 'True') {
            const seen = await this.#canary(name, canary.serviceAccount, spec.issuerURL, observation, log);
            outcome.verdict = canaryVerdict(outcome.verdict, canary.serviceAccount, seen.check);
            if (seen.kid !== undefined) outcome.signingKeyID = seen.kid;
          }
        }
      }
    }
    const status = nextStatus(obj.status, generation, spec, outcome, this.#now());
    await this.#writeStatus(obj, status);
    for (const e of eventsFor(obj.status, status, outcome)) await this.#d.events?.record(obj, e);
    this.#d.hooks?.synced?.(name, outcome, performance.now() - started, status);

    const problem = outcome.sourceError ?? outcome.publishError;
    if (problem) {
      log.warn({ code: problem.code, message: problem.message }, 'sync failed');
    } else if (outcome.preparation?.kind === 'ready') {
      if (outcome.written?.length)
        log.info({ writes: outcome.written.map((w) => `${w.object.key}: ${w.why}`) }, 'published');
      else log.debug('up to date');
    } else if (outcome.preparation) {
      log.warn({ reason: outcome.preparation.kind }, 'documents not published');
    }
    const transient = problem !== undefined && ErrorCodes[problem.code].retry === 'transient';
    // Never later than the next regular sync would have been: after a long outage the backoff
    // (up to --backoff-max) could otherwise exceed a short syncInterval.
    if (transient) return { backoff: true, maxDelayMs: spec.syncIntervalMs };
    // A retained key leaves the JWKS when its retention ends, not at the next regular sync after that.
    const expiry =
      outcome.preparation?.kind === 'ready' ? outcome.preparation.retention.nextExpiryInMs : undefined;
    // KeysTrusted turns True when the last served key becomes trusted, not at the next regular sync.
    const trust = keyTrust(
      status.keys as KeyRecord[] | undefined,
      status.verification?.signingKeyID,
      this.#now(),
      cacheLifetimeMs(spec.cacheControl),
      spec.relyingParties,
    ).nextTrustInMs;
    const due = [
      spec.syncIntervalMs,
      ...[expiry, trust].flatMap((ms) => (ms === undefined ? [] : [ms + 100])),
    ];
    return { requeueAfterMs: Math.min(...due) };
  }

  /**
   * The JWKS this publisher last wrote, read back when status records a key the source no longer
   * serves: retention takes a retired key's material from there, never from the status.
   */
  async #storedJwks(
    obj: OidcPublisher,
    spec: ResolvedSpec,
    raw: RawDocuments,
    previous: readonly KeyRecord[] | undefined,
    always = false,
    seal?: RecordSeal,
  ): Promise<StoredJwks | { error: FailedStep } | undefined> {
    if (!(always && previous?.some((r) => r.jwk)) && !needsStoredJwks(raw.jwks, previous, seal))
      return undefined;
    try {
      const store = await this.#d.stores.get(spec.storage, obj.metadata.name);
      return await readStoredJwks(store, objectKey(spec.storage.prefix, JWKS_PATH), ownershipOf(obj));
    } catch (err) {
      return { error: failed(err) };
    }
  }

  /** The operator's MAC key with this publisher's UID, to seal and check its status.keys records. */
  async #seal(obj: OidcPublisher, now: Date): Promise<RecordSeal | { error: FailedStep }> {
    try {
      return { key: await this.#d.integrityKey.get(now), publisherUID: obj.metadata.uid ?? '' };
    } catch (err) {
      return { error: failed(err) };
    }
  }

  /**
   * The canary: a token of `serviceAccount` (cached until half its lifetime), verified with only
   * the public JWKS `observation` holds. A token that does not verify is dropped, so the next sync
   * asks for a new one. The token is never logged.
   */
  async #canary(
    name: string,
    serviceAccount: string,
    issuerURL: string,
    observation: Observation,
    log: Logger,
  ): Promise<{ check: CanaryCheck | CanaryRefusal; kid?: string }> {
    const now = this.#now();
    const got: { token: string } | CanaryRefusal = this.#d.canary
      ? await this.#d.canary.get(name, serviceAccount, now)
      : { refused: 'unavailable', message: 'the operator runs without a canary token client' };
    if ('refused' in got) {
      log.warn({ serviceAccount, refused: got.refused, message: got.message }, 'no canary token');
      return { check: got };
    }
    const check = verifyCanaryToken(got.token, {
      issuerURL,
      audience: CANARY_AUDIENCE,
      jwks: observation.jwks?.json,
      now,
    });
    if (check.ok) log.debug({ serviceAccount, kid: check.kid }, 'canary token verified');
    else {
      this.#d.canary?.forget(name);
      log.warn({ serviceAccount, kid: check.kid, why: check.why }, 'canary token rejected');
    }
    return { check, ...(check.kid !== undefined ? { kid: check.kid } : {}) };
  }

  /** Writes what differs from the bucket: the JWKS before the discovery document. */
  async #publish(
    name: string,
    spec: ResolvedSpec,
    objects: Parameters<typeof planWrites>[0],
    log: Logger,
    rewrite: boolean,
    ownership: Ownership,
  ): Promise<PlannedWrite[]> {
    const store: ObjectStore = await this.#d.stores.get(spec.storage, name);
    let memo = this.#memos.get(store);
    if (!memo) {
      memo = new Map();
      this.#memos.set(store, memo);
    }
    const { writes } = await publishObjects(store, objects, {
      memo,
      rewrite,
      ownership,
      skipped: (o) => this.#d.hooks?.skipped?.(name, o.key),
      written: (w) => {
        this.#d.hooks?.written?.(name, w);
        log.debug({ key: w.object.key, why: w.why, sha256: w.object.sha256 }, 'wrote object');
      },
    });
    return writes;
  }

  /**
   * TARGET_CONFLICT when an earlier OidcPublisher (by creationTimestamp, then name) writes one of
   * this one's objects; the informer's cache has them all.
   */
  #conflict(obj: OidcPublisher): FailedStep | undefined {
    const others = this.#d.listObjects?.();
    if (!others) return undefined;
    const claimant = (o: OidcPublisher): Claimant => {
      if (!this.#targets.has(o)) this.#targets.set(o, targetObjects(o.spec?.storage));
      return {
        name: o.metadata.name,
        creationTimestamp: o.metadata.creationTimestamp,
        objects: this.#targets.get(o),
      };
    };
    const earlier = conflictFor(claimant(obj), others.map(claimant));
    if (!earlier) return undefined;
    const target = (() => {
      try {
        return storageURL(resolveSpec(obj.spec, { allowForeignJwksURI: true }).storage);
      } catch {
        return 'its storage target';
      }
    })();
    return {
      code: 'TARGET_CONFLICT',
      message: `OidcPublisher ${JSON.stringify(earlier.name)}, created earlier, publishes to the same objects (${target}); nothing was written. This one takes over when that one is deleted or moves to another target`,
    };
  }

  async #writeStatus(obj: OidcPublisher, status: NonNullable<OidcPublisher['status']>): Promise<void> {
    if (sameStatus(status, obj.status)) return;
    await this.#d.cluster.patchStatus(obj.metadata.name, status);
  }
}
