/**
 * One small interface per storage backend. Each backend maps its SDK's errors
 * to OidcPublisherError at this edge.
 */
import type { StoredObject } from '../core/plan.ts';

export interface PutOptions {
  contentType: string;
  cacheControl: string;
  /** Hex SHA-256 of the body, kept in the object's metadata for change detection. */
  sha256: string;
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
