/**
 * Google Cloud Storage through @google-cloud/storage.
 *
 * The endpoint (Google's, or the spec's) is checked against the allowlist
 * before the client is made; the SDK sends credentials only to Google's (a
 * custom endpoint gets none). Every call has one deadline, retries included,
 * and a download is read through a size limit. The SDK's own transport reads
 * error bodies whole and takes no agent or size option: that read is bounded
 * by the deadline, and by the allowlist (Google's endpoint by default).
 */
import type { Storage, StorageOptions } from '@google-cloud/storage';
import type { StoredObject } from '../core/plan.ts';
import { OidcPublisherError } from '../errors.ts';
import type { EndpointPolicy } from './endpoints.ts';
import type { GcsCredentials } from './gcs-credentials.ts';
import { ownErrorAt, readLimited, withDeadline } from './limits.ts';
import { type ObjectStore, objectMetadata, type PutOptions, readMetadata } from './store.ts';

export interface GcsStoreOptions {
  bucket: string;
  prefix: string;
  endpoint?: string;
  /**
   * Checked credentials (gcs-credentials.ts): a service account key, or an external_account that
   * sends a token file to Google's STS; default Application Default Credentials.
   */
  credentials?: GcsCredentials;
  /** Deadline of each call, retries included. */
  timeoutMs: number;
  /** The endpoint allowlist, checked before the client is made. */
  endpoints: EndpointPolicy;
}

/** Google's endpoint, the one the SDK uses without apiEndpoint. */
const GOOGLE_ENDPOINT = 'https://storage.googleapis.com';

const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
]);

/** The HTTP status of an SDK error (ApiError and GaxiosError carry it as `code` or `status`). */
function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; status?: unknown } | undefined;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.status === 'number') return e.status;
  return undefined;
}

export function gcsError(op: string, target: string, err: unknown): OidcPublisherError {
  const where = `${op} ${target}`;
  const own = ownErrorAt(where, err);
  if (own) return own;
  const status = statusOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (status === 404 && /bucket/i.test(message)) {
    return new OidcPublisherError('STORAGE_BUCKET_NOT_FOUND', `${where}: the bucket does not exist`, {
      cause: err,
    });
  }
  if (status === 401 || status === 403) {
    return new OidcPublisherError('STORAGE_ACCESS_DENIED', `${where}: access denied (HTTP ${status})`, {
      cause: err,
    });
  }
  if (status !== undefined && status >= 400) {
    return new OidcPublisherError('STORAGE_ERROR', `${where}: HTTP ${status}`, { cause: err });
  }
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && NETWORK.has(code)) {
    return new OidcPublisherError('STORAGE_UNREACHABLE', `${where}: ${code}`, { cause: err });
  }
  if (/Could not load the default credentials|invalid_grant|private key/i.test(message)) {
    return new OidcPublisherError('STORAGE_ACCESS_DENIED', `${where}: no usable Google credentials`, {
      cause: err,
    });
  }
  return new OidcPublisherError('STORAGE_UNREACHABLE', `${where}: ${message.split('\n')[0]?.slice(0, 300)}`, {
    cause: err,
  });
}

/** The options the store's Storage client is made with. */
export function gcsClientOptions(opts: GcsStoreOptions): StorageOptions {
  const credentials = opts.credentials;
  return {
    ...(opts.endpoint ? { apiEndpoint: opts.endpoint } : {}),
    ...(credentials ? { credentials } : {}),
    ...(credentials?.type === 'service_account' && credentials.project_id
      ? { projectId: credentials.project_id }
      : {}),
    timeout: opts.timeoutMs,
    retryOptions: { maxRetries: 1, totalTimeout: Math.ceil(opts.timeoutMs / 1000) * 2 },
  };
}

export class GcsStore implements ObjectStore {
  readonly describe: string;
  readonly #storage: Storage;
  readonly #bucket: string;
  readonly #timeoutMs: number;

  constructor(storage: Storage, opts: GcsStoreOptions) {
    this.#storage = storage;
    this.#bucket = opts.bucket;
    this.#timeoutMs = opts.timeoutMs;
    this.describe = `gs://${opts.bucket}/${opts.prefix}`;
  }

  /** Loads the SDK only when a publisher uses GCS. */
  static async create(opts: GcsStoreOptions): Promise<GcsStore> {
    // The SDK authenticates only to Google's endpoint (a custom one gets no credentials): a Secret's
    // key, or without one Application Default Credentials (the operator's own identity).
    const endpoint = opts.endpoint ?? GOOGLE_ENDPOINT;
    opts.endpoints.check(
      'gcs',
      endpoint,
      endpoint !== GOOGLE_ENDPOINT ? 'none' : opts.credentials ? 'bearer' : 'ambient',
    );
    const { Storage } = await import('@google-cloud/storage');
    return new GcsStore(new Storage(gcsClientOptions(opts)), opts);
  }

  #file(key: string) {
    return this.#storage.bucket(this.#bucket).file(key);
  }

  #target(key: string): string {
    return `gs://${this.#bucket}/${key}`;
  }

  /** Runs a call with the store's deadline over everything, retries included. */
  #deadline<T>(op: string, key: string, fn: () => Promise<T>): Promise<T> {
    return withDeadline(this.#timeoutMs, `${op} ${this.#target(key)}`, fn);
  }

  async head(key: string): Promise<StoredObject | undefined> {
    try {
      const [meta] = await this.#deadline('HEAD', key, () => this.#file(key).getMetadata());
      const out = readMetadata(meta.metadata ?? undefined, {});
      if (meta.contentType) out.contentType = meta.contentType;
      if (meta.cacheControl) out.cacheControl = meta.cacheControl;
      return out;
    } catch (err) {
      if (statusOf(err) === 404 && !/bucket/i.test(err instanceof Error ? err.message : '')) return undefined;
      throw gcsError('HEAD', this.#target(key), err);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await this.#deadline('GET', key, () => readLimited(this.#file(key).createReadStream()));
    } catch (err) {
      if (statusOf(err) === 404 && !/bucket/i.test(err instanceof Error ? err.message : '')) return undefined;
      throw gcsError('GET', this.#target(key), err);
    }
  }

  async put(key: string, body: Buffer, opts: PutOptions): Promise<void> {
    try {
      await this.#deadline('PUT', key, () =>
        this.#file(key).save(body, {
          resumable: false,
          metadata: {
            contentType: opts.contentType,
            cacheControl: opts.cacheControl,
            metadata: objectMetadata(opts),
          },
        }),
      );
    } catch (err) {
      throw gcsError('PUT', this.#target(key), err);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.#deadline('DELETE', key, () => this.#file(key).delete({ ignoreNotFound: true }));
    } catch (err) {
      throw gcsError('DELETE', this.#target(key), err);
    }
  }

  close(): void {}
}
