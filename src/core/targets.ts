/**
 * Which OidcPublishers write the same storage objects, and which of them may.
 * Two publishers on one target would overwrite each other at every sync; the
 * earlier one (by creationTimestamp, then name) keeps it, and every later one
 * writes nothing until the earlier is deleted or moved. Pure.
 *
 * Objects are compared by where they land, as conservatively as the spec
 * allows: S3 and GCS bucket names are global, so the endpoint and region do not
 * count (a different spelling of the same service must not escape the check),
 * except that an S3 endpoint naming a bucket in its host counts as that bucket
 * (the bucket the requests reach, storage-hosts.ts); an Azure container is
 * named by its account, whatever the URL's host.
 */
import type { OidcPublisherSpec } from '../api/types.ts';
import { azureAccountName, DISCOVERY_PATH, JWKS_PATH, objectKey } from './spec.ts';
import { s3Reached } from './storage-hosts.ts';

/** An OidcPublisher as far as target conflicts go. */
export interface Claimant {
  name: string;
  /** metadata.creationTimestamp (RFC 3339, as the API server writes it). */
  creationTimestamp?: string | undefined;
  /** Where its objects land (targetObjects), or undefined when its spec names no usable storage. */
  objects: readonly string[] | undefined;
}

/**
 * The objects a storage spec writes, each as "<backend>/<bucket or account/container>/<key>", or
 * undefined when the spec names no single storage target (such a spec is refused as InvalidSpec).
 */
export function targetObjects(storage: OidcPublisherSpec['storage'] | undefined): string[] | undefined {
  const { s3, gcs, azureBlob } = storage ?? {};
  if ((s3 ? 1 : 0) + (gcs ? 1 : 0) + (azureBlob ? 1 : 0) !== 1) return undefined;
  let location: string;
  let prefix: string;
  if (s3) {
    const reached = s3Reached(s3);
    location = `s3/${reached.bucket}`;
    prefix = reached.prefix;
  } else if (gcs) {
    location = `gcs/${gcs.bucket.toLowerCase()}`;
    prefix = gcs.prefix ?? '';
  } else if (azureBlob) {
    const account = azureAccountName(azureBlob.accountURL.replace(/\/+$/, '')).toLowerCase();
    location = `azblob/${account}/${azureBlob.container.toLowerCase()}`;
    prefix = azureBlob.prefix ?? '';
  } else {
    return undefined;
  }
  return [DISCOVERY_PATH, JWKS_PATH].map((path) => `${location}/${objectKey(prefix, path)}`);
}

/** Whether `a` came first: the earlier creationTimestamp, then the smaller name. */
export function isEarlier(a: Claimant, b: Claimant): boolean {
  const ta = a.creationTimestamp ?? '';
  const tb = b.creationTimestamp ?? '';
  const ma = Date.parse(ta);
  const mb = Date.parse(tb);
  if (Number.isFinite(ma) && Number.isFinite(mb) && ma !== mb) return ma < mb;
  if (!Number.isFinite(ma) && Number.isFinite(mb)) return false;
  if (Number.isFinite(ma) && !Number.isFinite(mb)) return true;
  return a.name < b.name;
}

/** Whether two claimants write at least one object in common. */
export function overlaps(a: Claimant, b: Claimant): boolean {
  if (!a.objects || !b.objects) return false;
  return a.objects.some((o) => b.objects?.includes(o));
}

/**
 * The earliest other claimant that writes one of `self`'s objects and came before it, or
 * undefined when `self` may write its target.
 */
export function conflictFor(self: Claimant, others: readonly Claimant[]): Claimant | undefined {
  let first: Claimant | undefined;
  for (const other of others) {
    if (other.name === self.name || !overlaps(self, other) || !isEarlier(other, self)) continue;
    if (!first || isEarlier(other, first)) first = other;
  }
  return first;
}
