/** Google Cloud Storage through @google-cloud/storage. */
import type { Storage } from '@google-cloud/storage';
import type { StoredObject } from '../core/plan.ts';
import { OidcPublisherError } from '../errors.ts';
import { type ObjectStore, objectMetadata, type PutOptions, readMetadata } from './store.ts';

export interface GcsStoreOptions {
  bucket: string;
  prefix: string;
  endpoint?: string;
  /** A parsed service account key; default Application Default Credentials. */
  credentials?: Record<string, unknown>;
  timeoutMs: number;
}

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

export class GcsStore implements ObjectStore {
  readonly describe: string;
  readonly #storage: Storage;
  readonly #bucket: string;

  constructor(storage: Storage, opts: GcsStoreOptions) {
    this.#storage = storage;
    this.#bucket = opts.bucket;
    this.describe = `gs://${opts.bucket}/${opts.prefix}`;
  }

  /** Loads the SDK only when a publisher uses GCS. */
  static async create(opts: GcsStoreOptions): Promise<GcsStore> {
    const { Storage } = await import('@google-cloud/storage');
    const storage = new Storage({
      ...(opts.endpoint ? { apiEndpoint: opts.endpoint } : {}),
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      ...(typeof opts.credentials?.project_id === 'string' ? { projectId: opts.credentials.project_id } : {}),
      timeout: opts.timeoutMs,
      retryOptions: { maxRetries: 1, totalTimeout: Math.ceil(opts.timeoutMs / 1000) * 2 },
    });
    return new GcsStore(storage, opts);
  }

  #file(key: string) {
    return this.#storage.bucket(this.#bucket).file(key);
  }

  #target(key: string): string {
    return `gs://${this.#bucket}/${key}`;
  }

  async head(key: string): Promise<StoredObject | undefined> {
    try {
      const [meta] = await this.#file(key).getMetadata();
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
      const [body] = await this.#file(key).download();
      return body;
    } catch (err) {
      if (statusOf(err) === 404 && !/bucket/i.test(err instanceof Error ? err.message : '')) return undefined;
      throw gcsError('GET', this.#target(key), err);
    }
  }

  async put(key: string, body: Buffer, opts: PutOptions): Promise<void> {
    try {
      await this.#file(key).save(body, {
        resumable: false,
        metadata: {
          contentType: opts.contentType,
          cacheControl: opts.cacheControl,
          metadata: objectMetadata(opts),
        },
      });
    } catch (err) {
      throw gcsError('PUT', this.#target(key), err);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.#file(key).delete({ ignoreNotFound: true });
    } catch (err) {
      throw gcsError('DELETE', this.#target(key), err);
    }
  }

  close(): void {}
}
