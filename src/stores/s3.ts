/**
 * S3 and S3-compatible storage through the AWS SDK.
 *
 * Every request is checked against the endpoint allowlist just before it is
 * sent (the SDK builds the host from the bucket, region and endpoint), every
 * response body is read through a size limit (the SDK reads a whole error
 * body into memory), and every call has one deadline, retries included.
 */
import { pipeline, Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { StoredObject } from '../core/plan.ts';
import { OidcPublisherError, storageErrorCode } from '../errors.ts';
import { type CredentialKind, type EndpointPolicy, isAwsRegion } from './endpoints.ts';
import { limitStream, MAX_STORAGE_RESPONSE_BYTES, ownErrorAt, withDeadline } from './limits.ts';
import { type ObjectStore, objectMetadata, type PutOptions, readMetadata } from './store.ts';

export interface S3StoreOptions {
  bucket: string;
  region: string;
  prefix: string;
  endpoint?: string;
  forcePathStyle: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Deadline of each call, retries included. */
  timeoutMs: number;
  /** The endpoint allowlist, checked before every request. */
  endpoints: EndpointPolicy;
}

/** The parts of the SDK's HttpRequest the endpoint check needs: scheme, host and port, and the path. */
function requestTarget(request: unknown): { url: string; path: string } | undefined {
  const r = request as { protocol?: unknown; hostname?: unknown; port?: unknown; path?: unknown } | undefined;
  if (typeof r?.protocol !== 'string' || typeof r.hostname !== 'string') return undefined;
  const host = r.hostname.includes(':') && !r.hostname.startsWith('[') ? `[${r.hostname}]` : r.hostname;
  const port =
    typeof r.port === 'number' || (typeof r.port === 'string' && r.port !== '') ? `:${r.port}` : '';
  return {
    url: `${r.protocol.endsWith(':') ? r.protocol : `${r.protocol}:`}//${host}${port}`,
    path: typeof r.path === 'string' ? r.path : '/',
  };
}

const DENIED = new Set([
  'AccessDenied',
  'Forbidden',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
]);
const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
]);

function isNotFound(err: unknown): boolean {
  return (
    err instanceof S3ServiceException &&
    (err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404) &&
    err.name !== 'NoSuchBucket'
  );
}

/** Maps an AWS SDK error to ours. */
export function s3Error(op: string, target: string, err: unknown): OidcPublisherError {
  const where = `${op} ${target}`;
  const own = ownErrorAt(where, err);
  if (own) return own;
  if (err instanceof S3ServiceException) {
    const status = err.$metadata?.httpStatusCode;
    if (err.name === 'NoSuchBucket') {
      return new OidcPublisherError('STORAGE_BUCKET_NOT_FOUND', `${where}: the bucket does not exist`, {
        cause: err,
      });
    }
    // A HEAD answer has no body, so no S3 error code: the SDK names it "Unknown"; say the status
    // instead, as for a code that is not a short word (an endpoint's answer, shown in status).
    const named = err.name !== 'Unknown' ? storageErrorCode(err.name) : undefined;
    if (DENIED.has(err.name) || status === 403 || status === 401) {
      return new OidcPublisherError(
        'STORAGE_ACCESS_DENIED',
        `${where}: access denied (${named ?? `HTTP ${status}`})`,
        {
          cause: err,
        },
      );
    }
    return new OidcPublisherError(
      'STORAGE_ERROR',
      `${where}: ${named ?? 'error'}${status ? ` (HTTP ${status})` : ''}`,
      {
        cause: err,
      },
    );
  }
  const code = (err as { code?: string } | undefined)?.code;
  const name = (err as { name?: string } | undefined)?.name;
  if (
    (code && NETWORK.has(code)) ||
    name === 'TimeoutError' ||
    name === 'AbortError' ||
    code?.startsWith('ERR_TLS') ||
    code?.includes('CERT')
  ) {
    return new OidcPublisherError('STORAGE_UNREACHABLE', `${where}: ${code ?? name}`, { cause: err });
  }
  if (name === 'CredentialsProviderError') {
    return new OidcPublisherError('STORAGE_ACCESS_DENIED', `${where}: no AWS credentials could be loaded`, {
      cause: err,
    });
  }
  return new OidcPublisherError(
    'STORAGE_UNREACHABLE',
    `${where}: ${err instanceof Error ? err.message : String(err)}`,
    {
      cause: err,
    },
  );
}

export class S3Store implements ObjectStore {
  readonly describe: string;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #opts: S3StoreOptions;
  /** False for a store made by withPrefix: the client (and its connections) belongs to another. */
  readonly #ownsClient: boolean;

  constructor(opts: S3StoreOptions, shared?: S3Client) {
    this.#opts = opts;
    this.#bucket = opts.bucket;
    this.describe = `s3://${opts.bucket}/${opts.prefix}`;
    this.#ownsClient = !shared;
    // Signatures only with a Secret's key pair; a session token is a secret, and without a Secret the
    // credential chain's (the operator's own identity) goes only to S3's own hosts.
    const carries: CredentialKind = !opts.credentials
      ? 'ambient'
      : opts.credentials.sessionToken
        ? 'bearer'
        : 'signature';
    if (!shared && opts.endpoint) opts.endpoints.checkS3Endpoint(opts.endpoint, carries);
    // The credential chain (web identity, container or instance credentials) derives its STS host
    // from the region before any S3 request is checked: only the public partitions' regions, whose
    // STS hosts are under amazonaws.com(.cn).
    if (!shared && !opts.credentials && !opts.endpoints.unrestricted && !isAwsRegion(opts.region)) {
      throw new OidcPublisherError(
        'STORAGE_ENDPOINT_REFUSED',
        `region ${JSON.stringify(opts.region)} is not a region of the aws, aws-cn or aws-us-gov partitions: the operator's own AWS credentials are used only there; use a credentials Secret for other S3 services`,
      );
    }
    this.#client =
      shared ??
      new S3Client({
        region: opts.region,
        ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
        forcePathStyle: opts.forcePathStyle,
        ...(opts.credentials ? { credentials: opts.credentials } : {}),
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        maxAttempts: 2,
        // Without throwOnRequestTimeout the SDK only logs a warning when requestTimeout passes, and a
        // stalled endpoint holds the request (and the reconcile) forever.
        requestHandler: {
          connectionTimeout: opts.timeoutMs,
          requestTimeout: opts.timeoutMs,
          throwOnRequestTimeout: true,
        },
      });
    if (!shared) {
      this.#client.middlewareStack.add(
        (next) => async (args) => {
          const target = requestTarget(args.request);
          if (target === undefined)
            throw new OidcPublisherError('STORAGE_ENDPOINT_REFUSED', 'no request URL');
          opts.endpoints.checkS3Request(target, carries, opts.bucket);
          const out = await next(args);
          const response = out.response as { body?: unknown } | undefined;
          if (response && response.body instanceof Readable) {
            response.body = pipeline(response.body, limitStream(MAX_STORAGE_RESPONSE_BYTES), () => {});
          }
          return out;
        },
        // Last before the HTTP handler, after signing: the request as it will be sent.
        { step: 'deserialize', priority: 'low', name: 'oidcPublisherEndpointAndSize' },
      );
    }
  }

  /** Runs a call with the store's deadline over everything, retries and the body included. */
  #deadline<T>(op: string, key: string, fn: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    return withDeadline(this.#opts.timeoutMs, `${op} ${this.#target(key)}`, fn);
  }

  /**
   * A store for another prefix of the same bucket that shares this store's client, so many
   * publishers of one bucket share one connection pool. Closing it closes nothing; closing this
   * store closes the client of both.
   */
  withPrefix(prefix: string): S3Store {
    return new S3Store({ ...this.#opts, prefix }, this.#client);
  }

  #target(key: string): string {
    return `s3://${this.#bucket}/${key}`;
  }

  async head(key: string): Promise<StoredObject | undefined> {
    try {
      const res = await this.#deadline('HEAD', key, (abortSignal) =>
        this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }), { abortSignal }),
      );
      const out = readMetadata(res.Metadata, {});
      if (res.ContentType) out.contentType = res.ContentType;
      if (res.CacheControl) out.cacheControl = res.CacheControl;
      return out;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw s3Error('HEAD', this.#target(key), err);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const bytes = await this.#deadline('GET', key, async (abortSignal) => {
        const res = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }), {
          abortSignal,
        });
        return res.Body?.transformToByteArray();
      });
      return Buffer.from(bytes ?? new Uint8Array());
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw s3Error('GET', this.#target(key), err);
    }
  }

  async put(key: string, body: Buffer, opts: PutOptions): Promise<void> {
    try {
      await this.#deadline('PUT', key, (abortSignal) =>
        this.#client.send(
          new PutObjectCommand({
            Bucket: this.#bucket,
            Key: key,
            Body: body,
            ContentType: opts.contentType,
            CacheControl: opts.cacheControl,
            Metadata: objectMetadata(opts),
          }),
          { abortSignal },
        ),
      );
    } catch (err) {
      throw s3Error('PUT', this.#target(key), err);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.#deadline('DELETE', key, (abortSignal) =>
        this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }), { abortSignal }),
      );
    } catch (err) {
      if (isNotFound(err)) return;
      throw s3Error('DELETE', this.#target(key), err);
    }
  }

  close(): void {
    if (this.#ownsClient) this.#client.destroy();
  }
}
