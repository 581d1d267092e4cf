/**
 * Azure Blob Storage through @azure/storage-blob.
 *
 * The content hash lives in the blob's metadata under AZURE_HASH_METADATA_KEY:
 * Azure metadata names must be C# identifiers, so the hyphenated
 * HASH_METADATA_KEY of the other stores is written without its hyphens.
 *
 * Credentials: a connection string (its AccountName/AccountKey or
 * SharedAccessSignature, whose account and endpoint must be the spec's
 * accountURL), or DefaultAzureCredential (AKS workload identity) asked only
 * for Azure Storage's scope. The endpoint is checked against the allowlist
 * before any request, and again for every request (azure-pipeline.ts). The
 * SDK and @azure/identity are loaded only when a publisher uses Azure.
 */
import type { TokenCredential } from '@azure/identity';
import type { BlobServiceClient, ContainerClient, StoragePipelineOptions } from '@azure/storage-blob';
import type { StoredObject } from '../core/plan.ts';
import { azureAccountName } from '../core/spec.ts';
import { OidcPublisherError, storageErrorCode } from '../errors.ts';
import {
  AZURE_STORAGE_SCOPE,
  endpointAndSizePolicy,
  type PipelinePolicyLike,
  storageScopedCredential,
} from './azure-pipeline.ts';
import type { CredentialKind, EndpointPolicy } from './endpoints.ts';
import { ownErrorAt, readLimited } from './limits.ts';
import {
  azureMetadataKey,
  HASH_METADATA_KEY,
  type ObjectStore,
  objectMetadata,
  type PutOptions,
  readMetadata,
} from './store.ts';

/** Blob metadata name of the content hash: HASH_METADATA_KEY as a C# identifier (oidcpublishersha256). */
export const AZURE_HASH_METADATA_KEY = azureMetadataKey(HASH_METADATA_KEY);

/** The emulator's well-known development account (public, documented by Microsoft; not a secret). */
const DEV_ACCOUNT = 'devstoreaccount1';
const DEV_ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export type AzureCredential =
  | { kind: 'sharedKey'; accountName: string; accountKey: string }
  | { kind: 'sas'; sas: string };

export interface AzureBlobStoreOptions {
  /** The account's blob endpoint, without a trailing slash. */
  accountURL: string;
  /** The account name, for describe. */
  account: string;
  container: string;
  prefix: string;
  /** A storage connection string; default DefaultAzureCredential. */
  connectionString?: string;
  timeoutMs: number;
  /** The endpoint allowlist, checked before any request. */
  endpoints: EndpointPolicy;
  /** The credential without a connection string; default DefaultAzureCredential. Always asked for the storage scope only. */
  tokenCredential?: TokenCredential;
}

/** An endpoint as compared: scheme, host and port, path without trailing slashes. */
function endpointKey(url: string): string | undefined {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * The credential in a storage connection string (`Key=Value;...`, keys matched
 * without regard to case), checked against the spec's accountURL: a credential
 * is only ever sent to the account it belongs to. The account name must be
 * accountURL's; a BlobEndpoint (or the endpoint DefaultEndpointsProtocol and
 * EndpointSuffix imply) must be accountURL; a SharedAccessSignature needs a
 * BlobEndpoint. Never puts the string itself into an error.
 */
export function parseConnectionString(text: string, accountURL: string): AzureCredential {
  const fields = new Map<string, string>();
  for (const part of text.split(';')) {
    const at = part.indexOf('=');
    if (at <= 0) continue;
    fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  const mismatch = (why: string) =>
    new OidcPublisherError(
      'STORAGE_CREDENTIALS_INVALID',
      `the connection string is for another account or endpoint than accountURL (${why}); it is not used`,
    );
  const expected = endpointKey(accountURL);
  const account = azureAccountName(accountURL).toLowerCase();
  const blobEndpoint = fields.get('blobendpoint');
  if (blobEndpoint !== undefined && endpointKey(blobEndpoint) !== expected) {
    throw mismatch('BlobEndpoint differs');
  }
  const checkAccount = (name: string) => {
    if (name.toLowerCase() !== account) throw mismatch('AccountName differs');
    if (blobEndpoint === undefined) {
      const protocol = (fields.get('defaultendpointsprotocol') ?? 'https').toLowerCase();
      const suffix = fields.get('endpointsuffix') ?? 'core.windows.net';
      if (endpointKey(`${protocol}://${name}.blob.${suffix}`) !== expected) {
        throw mismatch('the endpoint from DefaultEndpointsProtocol and EndpointSuffix differs');
      }
    }
  };
  if (fields.get('usedevelopmentstorage')?.toLowerCase() === 'true') {
    if (account !== DEV_ACCOUNT) throw mismatch('AccountName differs');
    return { kind: 'sharedKey', accountName: DEV_ACCOUNT, accountKey: DEV_ACCOUNT_KEY };
  }
  const accountName = fields.get('accountname');
  const accountKey = fields.get('accountkey');
  if (accountName && accountKey) {
    checkAccount(accountName);
    return { kind: 'sharedKey', accountName, accountKey };
  }
  const sas = fields.get('sharedaccesssignature');
  if (sas) {
    if (blobEndpoint === undefined)
      throw mismatch('a SharedAccessSignature needs the BlobEndpoint it is for');
    if (accountName !== undefined) checkAccount(accountName);
    return { kind: 'sas', sas: sas.replace(/^\?/, '') };
  }
  const found = [...fields.keys()].join(', ') || 'none';
  throw new OidcPublisherError(
    'STORAGE_CREDENTIALS_INVALID',
    `the connection string has neither AccountName and AccountKey nor SharedAccessSignature (keys found: ${found})`,
  );
}

const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'REQUEST_SEND_ERROR',
]);

/** Names of @azure/identity's errors: no credential could be had, or Entra ID refused it. */
const CREDENTIAL_ERRORS = new Set([
  'CredentialUnavailableError',
  'AuthenticationError',
  'AggregateAuthenticationError',
  'AuthenticationRequiredError',
]);

interface RestErrorLike {
  name?: string;
  code?: string;
  statusCode?: number;
  message?: string;
  details?: { errorCode?: string };
}

/**
 * The parts of a RestError we decide on. The storage error code (x-ms-error-code)
 * is in `details.errorCode`; `code` has it only when the response had a body
 * (not for HEAD), and holds the errno of a network failure.
 */
function fields(err: unknown): { name?: string; code?: string; statusCode?: number; message?: string } {
  if (!err || typeof err !== 'object') return {};
  const e = err as RestErrorLike;
  const code = typeof e.details?.errorCode === 'string' ? e.details.errorCode : e.code;
  return {
    ...(typeof e.name === 'string' ? { name: e.name } : {}),
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof e.statusCode === 'number' ? { statusCode: e.statusCode } : {}),
    ...(typeof e.message === 'string' ? { message: e.message } : {}),
  };
}

/** A 404 for a blob, as opposed to a missing container. */
function isBlobNotFound(err: unknown): boolean {
  const { statusCode, code } = fields(err);
  return statusCode === 404 && code !== 'ContainerNotFound';
}

/** Maps an Azure SDK (RestError, AbortError, @azure/identity) error to ours. */
export function azureBlobError(op: string, target: string, err: unknown): OidcPublisherError {
  const where = `${op} ${target}`;
  const own = ownErrorAt(where, err);
  if (own) return own;
  const { name, code, statusCode, message } = fields(err);
  if (code === 'ContainerNotFound') {
    return new OidcPublisherError('STORAGE_BUCKET_NOT_FOUND', `${where}: the container does not exist`, {
      cause: err,
    });
  }
  // The code as shown: only a short word (an endpoint's answer goes into status), else the status.
  const shown = storageErrorCode(code);
  if (statusCode === 401 || statusCode === 403) {
    return new OidcPublisherError(
      'STORAGE_ACCESS_DENIED',
      `${where}: access denied (${shown ?? `HTTP ${statusCode}`})`,
      { cause: err },
    );
  }
  if (statusCode !== undefined && statusCode >= 400) {
    return new OidcPublisherError(
      'STORAGE_ERROR',
      `${where}: ${shown ? `${shown} ` : ''}(HTTP ${statusCode})`,
      { cause: err },
    );
  }
  if (name && CREDENTIAL_ERRORS.has(name)) {
    return new OidcPublisherError(
      'STORAGE_ACCESS_DENIED',
      `${where}: no usable Azure credentials (${name})`,
      { cause: err },
    );
  }
  if (name === 'AbortError' || name === 'TimeoutError') {
    return new OidcPublisherError('STORAGE_UNREACHABLE', `${where}: timed out`, { cause: err });
  }
  if (code && (NETWORK.has(code) || code.startsWith('ERR_TLS') || code.includes('CERT'))) {
    return new OidcPublisherError('STORAGE_UNREACHABLE', `${where}: ${code}`, { cause: err });
  }
  const text = message ?? String(err);
  return new OidcPublisherError('STORAGE_UNREACHABLE', `${where}: ${text.split('\n')[0]?.slice(0, 300)}`, {
    cause: err,
  });
}

export class AzureBlobStore implements ObjectStore {
  readonly describe: string;
  readonly #container: ContainerClient;
  readonly #containerName: string;
  readonly #account: string;
  readonly #timeoutMs: number;

  constructor(service: BlobServiceClient, opts: AzureBlobStoreOptions) {
    this.#containerName = opts.container;
    this.#account = opts.account;
    this.#timeoutMs = opts.timeoutMs;
    this.#container = service.getContainerClient(opts.container);
    this.describe = `azblob://${opts.account}/${opts.container}/${opts.prefix}`;
  }

  /** Loads the SDK (and @azure/identity when there is no connection string) only when a publisher uses Azure. */
  static async create(opts: AzureBlobStoreOptions): Promise<AzureBlobStore> {
    const credential =
      opts.connectionString === undefined
        ? undefined
        : parseConnectionString(opts.connectionString, opts.accountURL);
    // A shared key signs requests (HMAC); a SAS is a secret itself; without a connection string the
    // token is the operator's own identity's, which goes only to Azure's own endpoints.
    const carries: CredentialKind =
      credential === undefined ? 'ambient' : credential.kind === 'sharedKey' ? 'signature' : 'bearer';
    opts.endpoints.check('azureBlob', opts.accountURL, carries);
    const { AnonymousCredential, BlobServiceClient, StorageSharedKeyCredential } = await import(
      '@azure/storage-blob'
    );
    const pipelineOptions: StoragePipelineOptions & { redirectOptions: { maxRetries: number } } = {
      retryOptions: { maxTries: 2, retryDelayInMs: 500, maxRetryDelayInMs: 2000 },
      userAgentOptions: { userAgentPrefix: 'oidc-publisher' },
      audience: AZURE_STORAGE_SCOPE,
      // Passed through to the SDK's core pipeline: redirects are not followed.
      redirectOptions: { maxRetries: 0 },
    };
    /**
     * The service client, and with it every container and blob client made from it, shares one core
     * pipeline (cached on its storage Pipeline); the policy is added to it once, after signing, so
     * it sees every request as it will be sent.
     */
    class GuardedServiceClient extends BlobServiceClient {
      addPolicyNearTransport(policy: PipelinePolicyLike): void {
        this.storageClientContext.pipeline.addPolicy(policy, { afterPhase: 'Sign' });
      }
    }
    let service: GuardedServiceClient;
    if (credential?.kind === 'sharedKey') {
      service = new GuardedServiceClient(
        opts.accountURL,
        new StorageSharedKeyCredential(credential.accountName, credential.accountKey),
        pipelineOptions,
      );
    } else if (credential?.kind === 'sas') {
      service = new GuardedServiceClient(
        `${opts.accountURL}?${credential.sas}`,
        new AnonymousCredential(),
        pipelineOptions,
      );
    } else {
      let inner: TokenCredential;
      if (opts.tokenCredential) inner = opts.tokenCredential;
      else {
        const { DefaultAzureCredential } = await import('@azure/identity');
        // No tenant but the configured one (AZURE_TENANT_ID), whatever a challenge names.
        inner = new DefaultAzureCredential({ additionallyAllowedTenants: [] });
      }
      service = new GuardedServiceClient(opts.accountURL, storageScopedCredential(inner), pipelineOptions);
    }
    service.addPolicyNearTransport(endpointAndSizePolicy(opts.endpoints, carries));
    return new AzureBlobStore(service, opts);
  }

  #target(key: string): string {
    return `azblob://${this.#account}/${this.#containerName}/${key}`;
  }

  /** Every operation, retries included, gives up after the storage timeout. */
  #signal(): AbortSignal {
    return AbortSignal.timeout(this.#timeoutMs);
  }

  async head(key: string): Promise<StoredObject | undefined> {
    try {
      const props = await this.#container.getBlobClient(key).getProperties({ abortSignal: this.#signal() });
      const out = readMetadata(props.metadata, {}, azureMetadataKey);
      if (props.contentType) out.contentType = props.contentType;
      if (props.cacheControl) out.cacheControl = props.cacheControl;
      return out;
    } catch (err) {
      if (isBlobNotFound(err)) return undefined;
      throw azureBlobError('HEAD', this.#target(key), err);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const res = await this.#container.getBlobClient(key).download(0, undefined, {
        abortSignal: this.#signal(),
      });
      return await readLimited(res.readableStreamBody);
    } catch (err) {
      if (isBlobNotFound(err)) return undefined;
      throw azureBlobError('GET', this.#target(key), err);
    }
  }

  async put(key: string, body: Buffer, opts: PutOptions): Promise<void> {
    try {
      await this.#container.getBlockBlobClient(key).upload(body, body.length, {
        abortSignal: this.#signal(),
        blobHTTPHeaders: { blobContentType: opts.contentType, blobCacheControl: opts.cacheControl },
        metadata: objectMetadata(opts, azureMetadataKey),
      });
    } catch (err) {
      throw azureBlobError('PUT', this.#target(key), err);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.#container.getBlobClient(key).deleteIfExists({ abortSignal: this.#signal() });
    } catch (err) {
      if (isBlobNotFound(err)) return;
      throw azureBlobError('DELETE', this.#target(key), err);
    }
  }

  /** The SDK keeps no connections that need closing beyond its keep-alive agent. */
  close(): void {}
}
