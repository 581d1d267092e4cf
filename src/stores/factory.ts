/**
 * Builds the store for a publisher's storage target, with credentials from a
 * Secret when the spec names one. Stores are reused while their target and
 * credentials stay the same; each cloud SDK is loaded only when a publisher
 * uses it. S3 stores of one bucket, endpoint and credentials share one client
 * (and its connection pool) whatever their prefixes: a fleet of publishers
 * writing to one bucket keeps a few connections open, not two per publisher.
 */
import { createHash } from 'node:crypto';
import type { StorageTarget } from '../core/spec.ts';
import { OidcPublisherError } from '../errors.ts';
import type { SecretReader } from '../secrets.ts';
import { EndpointPolicy } from './endpoints.ts';
import { type GcsCredentials, parseGcsCredentials } from './gcs-credentials.ts';
import type { S3Store } from './s3.ts';
import type { ObjectStore } from './store.ts';

interface CachedStore {
  fingerprint: string;
  store: ObjectStore;
  /** The key of the shared S3 client it uses, if any. */
  connection?: string;
}

export class StoreFactory {
  readonly #secrets: SecretReader;
  readonly #namespace: string;
  readonly #timeoutMs: number;
  readonly #endpoints: EndpointPolicy;
  readonly #gcsTokenFileDirs: readonly string[];
  readonly #cache = new Map<string, CachedStore>();
  /** S3 stores that own a client, by everything but the prefix, with the number of stores using each. */
  readonly #connections = new Map<string, { base: Promise<S3Store>; users: number }>();

  /**
   * `allowedHosts`: storage endpoint hosts allowed besides the public clouds', as `<backend>=<host>`
   * entries (the operator's --storage-allowed-hosts), or 'any' where the user who runs the command
   * chose the endpoint. `gcsTokenFileDirs`: where a GCS Secret's external_account may read its token
   * file (the operator's --gcs-token-file-dirs); none when not given.
   */
  constructor(opts: {
    secrets: SecretReader;
    namespace: string;
    timeoutMs: number;
    allowedHosts: readonly string[] | 'any';
    gcsTokenFileDirs?: readonly string[];
  }) {
    this.#gcsTokenFileDirs = opts.gcsTokenFileDirs ?? [];
    this.#secrets = opts.secrets;
    this.#namespace = opts.namespace;
    this.#timeoutMs = opts.timeoutMs;
    this.#endpoints =
      opts.allowedHosts === 'any' ? EndpointPolicy.unrestricted() : EndpointPolicy.of(opts.allowedHosts);
  }

  /** A value of a Secret's data, read once per sync by the caller (one GET for all its keys). */
  #secretValue(
    data: ReadonlyMap<string, Buffer>,
    name: string,
    key: string,
    optional = false,
  ): string | undefined {
    const value = data.get(key);
    if (value === undefined && !optional) {
      throw new OidcPublisherError(
        'STORAGE_CREDENTIALS_INVALID',
        `Secret ${this.#namespace}/${name} has no key ${JSON.stringify(key)}`,
      );
    }
    return value?.toString('utf8').trim();
  }

  /** The store of `target`, with credentials from a Secret that allows the OidcPublisher `publisher`. */
  async get(target: StorageTarget, publisher: string): Promise<ObjectStore> {
    const id = JSON.stringify(target);
    let credentials: unknown;
    if (target.kind === 's3' && target.credentialsSecret) {
      const name = target.credentialsSecret;
      const data = await this.#secrets.readSecret(this.#namespace, name, publisher);
      const sessionToken = this.#secretValue(data, name, 'AWS_SESSION_TOKEN', true);
      credentials = {
        accessKeyId: this.#secretValue(data, name, 'AWS_ACCESS_KEY_ID'),
        secretAccessKey: this.#secretValue(data, name, 'AWS_SECRET_ACCESS_KEY'),
        ...(sessionToken ? { sessionToken } : {}),
      };
    } else if (target.kind === 'gcs' && target.credentialsSecret) {
      const { name, key } = target.credentialsSecret;
      const data = await this.#secrets.readSecret(this.#namespace, name, publisher);
      const text = this.#secretValue(data, name, key);
      try {
        credentials = parseGcsCredentials(text ?? '', this.#gcsTokenFileDirs);
      } catch (err) {
        throw new OidcPublisherError(
          'STORAGE_CREDENTIALS_INVALID',
          `Secret ${this.#namespace}/${name} key ${JSON.stringify(key)}: ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
      }
    } else if (target.kind === 'azureBlob' && target.credentialsSecret) {
      const { name, key } = target.credentialsSecret;
      const data = await this.#secrets.readSecret(this.#namespace, name, publisher);
      credentials = this.#secretValue(data, name, key);
    }
    const fingerprint = createHash('sha256')
      .update(JSON.stringify(credentials ?? null))
      .digest('hex');
    const cached = this.#cache.get(id);
    if (cached?.fingerprint === fingerprint) return cached.store;
    let entry: CachedStore;
    if (target.kind === 's3') {
      const connection = `${JSON.stringify({ ...target, prefix: '' })} ${fingerprint}`;
      let shared = this.#connections.get(connection);
      if (!shared) {
        shared = { base: this.#create(target, credentials) as Promise<S3Store>, users: 0 };
        this.#connections.set(connection, shared);
      }
      shared.users += 1;
      let base: S3Store;
      try {
        base = await shared.base;
      } catch (err) {
        this.#release(connection);
        throw err;
      }
      entry = { fingerprint, store: base.withPrefix(target.prefix), connection };
    } else {
      entry = { fingerprint, store: await this.#create(target, credentials) };
    }
    if (cached) this.#close(cached);
    this.#cache.set(id, entry);
    return entry.store;
  }

  #close(entry: CachedStore): void {
    if (entry.connection) this.#release(entry.connection);
    else entry.store.close();
  }

  /** One store fewer uses the shared client; the last one closes it. */
  #release(connection: string): void {
    const shared = this.#connections.get(connection);
    if (!shared) return;
    shared.users -= 1;
    if (shared.users > 0) return;
    this.#connections.delete(connection);
    void shared.base.then(
      (base) => base.close(),
      () => {},
    );
  }

  async #create(target: StorageTarget, credentials: unknown): Promise<ObjectStore> {
    if (target.kind === 's3') {
      const { S3Store } = await import('./s3.ts');
      return new S3Store({
        bucket: target.bucket,
        region: target.region,
        prefix: target.prefix,
        forcePathStyle: target.forcePathStyle,
        timeoutMs: this.#timeoutMs,
        endpoints: this.#endpoints,
        ...(target.endpoint ? { endpoint: target.endpoint } : {}),
        ...(credentials
          ? { credentials: credentials as { accessKeyId: string; secretAccessKey: string } }
          : {}),
      });
    }
    if (target.kind === 'azureBlob') {
      const { AzureBlobStore } = await import('./azure-blob.ts');
      try {
        return await AzureBlobStore.create({
          accountURL: target.accountURL,
          account: target.account,
          container: target.container,
          prefix: target.prefix,
          timeoutMs: this.#timeoutMs,
          endpoints: this.#endpoints,
          ...(typeof credentials === 'string' ? { connectionString: credentials } : {}),
        });
      } catch (err) {
        if (err instanceof OidcPublisherError && target.credentialsSecret) {
          const { name, key } = target.credentialsSecret;
          throw new OidcPublisherError(
            err.code,
            `Secret ${this.#namespace}/${name} key ${JSON.stringify(key)}: ${err.message}`,
            { cause: err },
          );
        }
        throw err;
      }
    }
    const { GcsStore } = await import('./gcs.ts');
    return GcsStore.create({
      bucket: target.bucket,
      prefix: target.prefix,
      timeoutMs: this.#timeoutMs,
      endpoints: this.#endpoints,
      ...(target.endpoint ? { endpoint: target.endpoint } : {}),
      ...(credentials ? { credentials: credentials as GcsCredentials } : {}),
    });
  }

  close(): void {
    for (const entry of this.#cache.values()) this.#close(entry);
    this.#cache.clear();
  }
}
