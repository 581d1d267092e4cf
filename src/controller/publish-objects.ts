/**
 * The publish step, shared by the controller and `oidc-publisher publish`: HEAD
 * both objects, decide the writes with the pure planWrites, and PUT them in
 * order (the JWKS before the discovery document that points at it). One code
 * path, so a one-shot run writes exactly what a reconcile would.
 *
 * With a memo of what this process last wrote (or saw by HEAD), an object that
 * differs from it is written without a HEAD first: it needs the write whatever
 * the store holds, so a wrong memory costs at most one redundant PUT, never a
 * missed one. An object the memo says is in place is still HEADed, so changes
 * made behind the operator's back are repaired.
 *
 * With an ownership (the controller's), an object another OidcPublisher or
 * anything else wrote is neither overwritten nor deleted: nothing is written,
 * and OBJECT_NOT_OWNED says which object is whose. The memo then skips a HEAD
 * only for an object it remembers this owner writing.
 */
import {
  claimOf,
  describeForeign,
  type Ownership,
  type PlannedWrite,
  planWrites,
  type RenderedObject,
  refuseForeign,
  type StoredObject,
} from '../core/plan.ts';
import type { ObjectStore } from '../stores/store.ts';

export interface PublishOptions {
  /** Plan only: HEAD the objects and return the writes, without writing anything. */
  dryRun?: boolean;
  /** Rewrite every object whatever its metadata says (the last read-back saw other bytes served). */
  rewrite?: boolean;
  /** Called once per object that needs no write, before any write is made. */
  skipped?(object: RenderedObject): void;
  /** Called after each write landed (never in a dry run). */
  written?(write: PlannedWrite): void;
  /**
   * What this process last wrote to, or read by HEAD from, each object key of this store;
   * consulted and kept up to date. Callers keep one per store.
   */
  memo?: WriteMemo;
  /** Write only objects this OidcPublisher owns, recorded, or finds absent; record it as their owner. */
  ownership?: Ownership;
}

/** Per object key: the state this process last wrote or saw there. */
export type WriteMemo = Map<string, StoredObject>;

export interface PublishResult {
  /** The writes made, in order; in a dry run, the writes that would be made. */
  writes: PlannedWrite[];
  /** The objects the store already held as rendered. */
  upToDate: RenderedObject[];
}

/** Brings `store` to `objects` (in their order) and reports what it wrote; a failed PUT throws. */
export async function publishObjects(
  store: Pick<ObjectStore, 'head' | 'put'>,
  objects: readonly RenderedObject[],
  opts: PublishOptions = {},
): Promise<PublishResult> {
  const memo = opts.memo;
  const owner = opts.ownership?.owner;
  const stored = await Promise.all(
    objects.map(async (o) => {
      const remembered = memo?.get(o.key);
      // Differs from what this owner last wrote there: written anyway, no HEAD needed to decide.
      if (remembered && remembered.ownerUID === owner?.uid && planWrites([o], [remembered]).length > 0)
        return remembered;
      const seen = await store.head(o.key);
      if (seen) memo?.set(o.key, seen);
      else memo?.delete(o.key);
      return seen;
    }),
  );
  if (opts.ownership) {
    const refused = refuseForeign(
      objects.map((o) => o.key),
      stored,
      opts.ownership,
      'nothing was written, the bucket keeps what it holds',
    );
    if (refused) throw refused;
  }
  const writes = planWrites(objects, stored, opts.rewrite ?? false, owner);
  const upToDate = objects.filter((o) => !writes.some((w) => w.object === o));
  for (const o of upToDate) opts.skipped?.(o);
  if (opts.dryRun) return { writes, upToDate };
  for (const w of writes) {
    const { key, body, contentType, cacheControl, sha256 } = w.object;
    memo?.delete(key);
    await store.put(key, body, { contentType, cacheControl, sha256, ...(owner ? { owner } : {}) });
    memo?.set(key, {
      sha256,
      contentType,
      cacheControl,
      ...(owner ? { ownerUID: owner.uid, ownerName: owner.name } : {}),
    });
    opts.written?.(w);
  }
  return { writes, upToDate };
}

export interface DeleteResult {
  /** Keys deleted (or already absent). */
  deleted: string[];
  /** Objects left in place because this OidcPublisher does not own them, with why. */
  kept: { key: string; why: string }[];
}

/**
 * Deletes, in order, the objects of `keys` this OidcPublisher owns or recorded publishing; leaves
 * any other object in place. A HEAD before each DELETE decides.
 */
export async function deleteObjects(
  store: Pick<ObjectStore, 'head' | 'delete'>,
  keys: readonly string[],
  ownership: Ownership,
  memo?: WriteMemo,
): Promise<DeleteResult> {
  const result: DeleteResult = { deleted: [], kept: [] };
  for (const key of keys) {
    const stored = await store.head(key);
    if (stored && claimOf(key, stored, ownership) === 'foreign') {
      result.kept.push({ key, why: describeForeign(key, stored) });
      continue;
    }
    memo?.delete(key);
    if (stored) await store.delete(key);
    result.deleted.push(key);
  }
  return result;
}
