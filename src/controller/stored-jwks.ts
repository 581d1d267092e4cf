/**
 * Reading back the JWKS a publisher last wrote, for key retention: the only place a retired
 * key's material comes from. The object must be this publisher's (its UID in the object's
 * metadata, or the hash its status recorded) and its bytes must hash to the SHA-256 recorded
 * with them when they were written (storedJwks in core/keys.ts decides).
 */
import { type StoredJwks, storedJwks } from '../core/keys.ts';
import { claimOf, describeForeign, type Ownership } from '../core/plan.ts';
import type { ObjectStore } from '../stores/store.ts';

export async function readStoredJwks(
  store: Pick<ObjectStore, 'head' | 'get'>,
  key: string,
  ownership?: Ownership,
): Promise<StoredJwks> {
  const seen = await store.head(key);
  if (!seen) return { state: 'missing' };
  if (ownership && claimOf(key, seen, ownership) === 'foreign')
    return { state: 'unverified', why: describeForeign(key, seen) };
  return storedJwks(await store.get(key), seen.sha256);
}
