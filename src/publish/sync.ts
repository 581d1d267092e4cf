/**
 * The publish step, shared by the controller and `oidc-publisher publish`: HEAD
 * both objects, decide the writes with the pure planWrites, and PUT them in
 * order (the JWKS before the discovery document that points at it). One code
 * path, so a one-shot run writes exactly what a reconcile would.
 */
import { type PlannedWrite, planWrites, type RenderedObject } from '../core/plan.ts';
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
}

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
  const stored = await Promise.all(objects.map((o) => store.head(o.key)));
  const writes = planWrites(objects, stored, opts.rewrite ?? false);
  const upToDate = objects.filter((o) => !writes.some((w) => w.object === o));
  for (const o of upToDate) opts.skipped?.(o);
  if (opts.dryRun) return { writes, upToDate };
  for (const w of writes) {
    await store.put(w.object.key, w.object.body, {
      contentType: w.object.contentType,
      cacheControl: w.object.cacheControl,
      sha256: w.object.sha256,
    });
    opts.written?.(w);
  }
  return { writes, upToDate };
}
