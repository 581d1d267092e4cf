/**
 * Reading back the JWKS a publisher last wrote, for key retention: the only place a retired
 * key's material comes from. Its bytes must hash to the SHA-256 recorded with them when they
 * were written (storedJwks in core/keys.ts decides).
 */
import { type StoredJwks, storedJwks } from '../core/keys.ts';
import type { ObjectStore } from '../stores/store.ts';

export async function readStoredJwks(
  store: Pick<ObjectStore, 'head' | 'get'>,
  key: string,
): Promise<StoredJwks> {
  const seen = await store.head(key);
  if (!seen) return { state: 'missing' };
  return storedJwks(await store.get(key), seen.sha256);
}
