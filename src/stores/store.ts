/**
 * One small interface per storage backend. Each backend maps its SDK's errors
 * to OidcPublisherError at this edge.
 */
import type { ObjectOwner, StoredObject } from '../core/plan.ts';

export interface PutOptions {
  contentType: string;
  cacheControl: string;
  /** Hex SHA-256 of the body, kept in the object's metadata for change detection. */
  sha256: string;
  /** The OidcPublisher writing it, kept in the object's metadata (absent for `oidc-publisher publish`). */
  owner?: ObjectOwner;
}

export interface ObjectStore {
  /** A URL-like name for logs and status: s3://bucket/prefix, gs://bucket/prefix, azblob://account/container/prefix. */
  readonly describe: string;
  /** The object's metadata, or undefined when it does not exist. */
  head(key: string): Promise<StoredObject | undefined>;
  /** The object's content, or undefined when it does not exist. */
  get(key: string): Promise<Buffer | undefined>;
  put(key: string, body: Buffer, opts: PutOptions): Promise<void>;
  /** Deletes the object; deleting a missing object succeeds. */
  delete(key: string): Promise<void>;
  /** Releases connections. */
  close(): void;
}

/**
 * Object metadata key that carries the content hash (x-amz-meta-…, GCS custom
 * metadata). Azure metadata names must be C# identifiers, so Azure Blob stores it
 * without the hyphens (AZURE_HASH_METADATA_KEY in azure-blob.ts).
 */
export const HASH_METADATA_KEY = 'oidc-publisher-sha256';

/** Object metadata keys naming the OidcPublisher that wrote the object: its metadata.uid, and its name. */
export const OWNER_UID_METADATA_KEY = 'oidc-publisher-owner-uid';
export const OWNER_NAME_METADATA_KEY = 'oidc-publisher-owner-name';

/** A metadata key as Azure needs it (a C# identifier: no hyphens). */
export function azureMetadataKey(key: string): string {
  return key.replaceAll('-', '');
}

/** The custom metadata written with an object: its hash and, when known, its owner. */
export function objectMetadata(
  opts: PutOptions,
  name: (key: string) => string = (k) => k,
): Record<string, string> {
  return {
    [name(HASH_METADATA_KEY)]: opts.sha256,
    ...(opts.owner
      ? { [name(OWNER_UID_METADATA_KEY)]: opts.owner.uid, [name(OWNER_NAME_METADATA_KEY)]: opts.owner.name }
      : {}),
  };
}

/** The hash and owner from an object's custom metadata, into `out`. */
export function readMetadata(
  metadata: Readonly<Record<string, unknown>> | undefined,
  out: StoredObject,
  name: (key: string) => string = (k) => k,
): StoredObject {
  const value = (key: string): string | undefined => {
    const k = name(key);
    const v = metadata && Object.hasOwn(metadata, k) ? metadata[k] : undefined;
    return typeof v === 'string' ? v : undefined;
  };
  const sha = value(HASH_METADATA_KEY);
  if (sha) out.sha256 = sha;
  const uid = value(OWNER_UID_METADATA_KEY);
  if (uid !== undefined) out.ownerUID = uid;
  const owner = value(OWNER_NAME_METADATA_KEY);
  if (owner !== undefined) out.ownerName = owner;
  return out;
}
