/**
 * Builds the store for a publisher's storage target, with credentials from a
 * Secret when the spec names one. Stores are reused while their target and
 * credentials stay the same; each cloud SDK is loaded only when a publisher
 * uses it.
 */
import { createHash } from 'node:crypto';
import type { StorageTarget } from '../core/spec.ts';
import { OidcPublisherError } from '../errors.ts';
import type { SecretReader } from '../secrets.ts';
import type { ObjectStore } from './store.ts';

export class StoreFactory {
  readonly #secrets: SecretReader;
  readonly #namespace: string;
  readonly #timeoutMs: number;
  readonly #cache = new Map<string, { fingerprint: string; store: ObjectStore }>();

  constructor(opts: { secrets: SecretReader; namespace: string; timeoutMs: number }) {
    this.#secrets = opts.secrets;
    this.#namespace = opts.namespace;
    this.#timeoutMs = opts.timeoutMs;
  }

  async #secretValue(name: string, key: string, optional = false): Promise<string | undefined> {
    const data = await this.#secrets.readSecret(this.#namespace, name);
    const value = data.get(key);
    if (value === undefined && !optional) {
      throw new OidcPublisherError(
        'STORAGE_CREDENTIALS_INVALID',
        `Secret ${this.#namespace}/${name} has no key ${JSON.stringify(key)}`,
      );
    }
    return value?.toString('utf8').trim();
  }

  async get(target: StorageTarget): Promise<ObjectStore> {
    const id = JSON.stringify(target);
    let credentials: unknown;
    if (target.kind === 's3' && target.credentialsSecret) {
      const name = target.credentialsSecret;
      const sessionToken = await this.#secretValue(name, 'AWS_SESSION_TOKEN', true);
      credentials = {
        accessKeyId: await this.#secretValue(name, 'AWS_ACCESS_KEY_ID'),
        secretAccessKey: await this.#secretValue(name, 'AWS_SECRET_ACCESS_KEY'),
        ...(sessionToken ? { sessionToken } : {}),
      };
    } else if (target.kind === 'gcs' && target.credentialsSecret) {
      const { name, key } = target.credentialsSecret;
      const text = await this.#secretValue(name, key);
      try {
        const parsed: unknown = JSON.parse(text ?? '');
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
        credentials = parsed;
      } catch (err) {
        throw new OidcPublisherError(
          'STORAGE_CREDENTIALS_INVALID',
          `Secret ${this.#namespace}/${name} key ${JSON.stringify(key)} is not a JSON service account key`,
          { cause: err },
        );
      }
    } else if (target.kind === 'azureBlob' && target.credentialsSecret) {
      const { name, key } = target.credentialsSecret;
      credentials = await this.#secretValue(name, key);
    }
    const fingerprint = createHash('sha256')
      .update(JSON.stringify(credentials ?? null))
      .digest('hex');
    const cached = this.#cache.get(id);
    if (cached?.fingerprint === fingerprint) return cached.store;
    const store = await this.#create(target, credentials);
    cached?.store.close();
    this.#cache.set(id, { fingerprint, store });
    return store;
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
      ...(target.endpoint ? { endpoint: target.endpoint } : {}),
      ...(credentials ? { credentials: credentials as Record<string, unknown> } : {}),
    });
  }

  close(): void {
    for (const { store } of this.#cache.values()) store.close();
    this.#cache.clear();
  }
}
