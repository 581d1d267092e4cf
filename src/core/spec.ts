/**
 * An OidcPublisher spec with its defaults applied and its values parsed, once
 * per reconcile. The CRD schema already refused what it can; what it cannot
 * check is refused here as SPEC_INVALID.
 */
import type { OidcPublisherSpec } from '../api/types.ts';
import { OidcPublisherError } from '../errors.ts';
import { isRelyingParty, RELYING_PARTIES, type RelyingParty } from './algorithms.ts';
import { parseDuration } from './duration.ts';
import { isAwsName, normalizeHost, parseS3Host } from './storage-hosts.ts';

export const DEFAULT_SYNC_INTERVAL = '1m';
export const DEFAULT_CACHE_CONTROL = 'public, max-age=300';
export const DEFAULT_KEY_RETENTION = '24h';
export const DEFAULT_VERIFICATION_TIMEOUT = '5s';
export const DEFAULT_VERIFICATION_SLOW = '2s';
export const DISCOVERY_PATH = '.well-known/openid-configuration';
export const JWKS_PATH = 'openid/v1/jwks';
export const CONTENT_TYPE_DISCOVERY = 'application/json';
export const CONTENT_TYPE_JWKS = 'application/jwk-set+json';

export type StorageTarget =
  | {
      kind: 's3';
      bucket: string;
      region: string;
      prefix: string;
      endpoint?: string;
      forcePathStyle: boolean;
      credentialsSecret?: string;
    }
  | {
      kind: 'gcs';
      bucket: string;
      prefix: string;
      endpoint?: string;
      credentialsSecret?: { name: string; key: string };
    }
  | {
      kind: 'azureBlob';
      /** The account's blob endpoint, without a trailing slash. */
      accountURL: string;
      /** The account name, for display: the first path segment (emulators) or the first DNS label. */
      account: string;
      container: string;
      prefix: string;
      /** A Secret key holding a connection string; default DefaultAzureCredential. */
      credentialsSecret?: { name: string; key: string };
    };

/** One of spec.sources: the operator's own cluster, or a kubeconfig Secret. */
export interface SourceRef {
  /** How status names it: "cluster", or "secret/<name>" ("secret/<name>/<key>" for another key). */
  name: string;
  kubeconfigSecret?: { name: string; key: string };
}

export interface ResolvedSpec {
  issuerURL: string;
  jwksURI: string;
  kubeconfigSecret?: { name: string; key: string };
  /**
   * spec.sources with two or more entries: their documents are merged (core/merge.ts). One
   * entry, or spec.source, is the single source above (kubeconfigSecret, or the own cluster).
   */
  sources?: readonly SourceRef[];
  storage: StorageTarget;
  syncIntervalMs: number;
  cacheControl: string;
  deletionPolicy: 'Retain' | 'Delete';
  /** How long a key that left the source stays published. */
  keyRetentionMs: number;
  /** The relying parties whose accepted algorithms KeysTrusted checks (core/algorithms.ts); absent when none. */
  relyingParties?: readonly RelyingParty[];
  verification: {
    enabled: boolean;
    timeoutMs: number;
    slowMs: number;
    /** The canary ServiceAccount, in the operator's namespace; absent when there is no canary. */
    canary?: { serviceAccount: string };
  };
}

/** spec.source, or spec.sources: at least one, each named once. */
function resolveSources(spec: OidcPublisherSpec): SourceRef[] {
  if (spec.source && spec.sources) throw specError('set source or sources, not both');
  const entries = spec.sources ?? [spec.source ?? {}];
  const refs = entries.map((e): SourceRef => {
    const r = e.kubeconfigSecretRef;
    if (!r) return { name: 'cluster' };
    const key = r.key ?? 'kubeconfig';
    return {
      name: key === 'kubeconfig' ? `secret/${r.name}` : `secret/${r.name}/${key}`,
      kubeconfigSecret: { name: r.name, key },
    };
  });
  const seen = new Set<string>();
  for (const [i, r] of refs.entries()) {
    if (seen.has(r.name)) throw specError(`sources[${i}] repeats source ${r.name}`);
    seen.add(r.name);
  }
  if (refs.length === 0) throw specError('sources must list at least one source');
  return refs;
}

const EXACTLY_ONE_STORAGE = 'storage must set exactly one of s3, gcs or azureBlob';

function specError(message: string): OidcPublisherError {
  return new OidcPublisherError('SPEC_INVALID', message);
}

/** The issuer without a trailing slash, for joining paths. */
export function issuerBase(issuerURL: string): string {
  return issuerURL.endsWith('/') ? issuerURL.slice(0, -1) : issuerURL;
}

export function objectKey(prefix: string, path: string): string {
  const p = prefix.replace(/\/+$/, '');
  return p ? `${p}/${path}` : path;
}

/**
 * The storage account an Azure blob endpoint names: the first path segment when
 * the URL has one (Azurite's https://127.0.0.1:10000/devstoreaccount1), else the
 * first label of the host name (https://acct.blob.core.windows.net).
 */
export function azureAccountName(accountURL: string): string {
  try {
    const url = new URL(accountURL);
    const segment = url.pathname.split('/').find((s) => s !== '');
    return segment ? decodeURIComponent(segment) : (url.hostname.split('.')[0] ?? url.hostname);
  } catch {
    return accountURL;
  }
}

export function storageURL(target: StorageTarget): string {
  const prefix = target.prefix.replace(/\/+$/, '');
  if (target.kind === 'azureBlob') return `azblob://${target.account}/${target.container}/${prefix}`;
  const scheme = target.kind === 's3' ? 's3' : 'gs';
  return `${scheme}://${target.bucket}/${prefix}`;
}

/**
 * An S3 endpoint is a scheme, host and port. A path would be sent before the bucket, so another
 * spelling of a target (endpoint .../victim-bucket with bucket "x" is victim-bucket's prefix "x/")
 * would escape the check for overlapping targets.
 */
function checkS3Endpoint(endpoint: string): void {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw specError('storage.s3.endpoint must be an http or https URL');
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw specError(
      'storage.s3.endpoint must be a scheme, host and port, without a path: the bucket and prefix say where the objects go',
    );
  }
  // On AWS's own names only S3's service hosts: one that names a bucket (virtual-hosted style)
  // sends every request to that bucket, signed with the operator's identity, whatever `bucket` says.
  const host = normalizeHost(url.hostname);
  if (!isAwsName(host)) return;
  const s3Host = parseS3Host(host);
  if (s3Host?.bucket !== undefined) {
    throw specError(
      `storage.s3.endpoint names the bucket ${JSON.stringify(s3Host.bucket)} in its host: use S3's service host (https://s3.<region>.amazonaws.com) and say the bucket in storage.s3.bucket`,
    );
  }
  if (!s3Host || url.port !== '') {
    throw specError(
      "storage.s3.endpoint on amazonaws.com must be one of S3's own service hosts without a port (https://s3.<region>.amazonaws.com, s3.dualstack.<region>, s3-fips.<region>); access point, website and other hosts reach buckets the bucket field does not name",
    );
  }
}

/** Host suffixes of the Azure clouds, where the account is the host's first label. */
const AZURE_ACCOUNT_HOSTS = [
  '.blob.core.windows.net',
  '.blob.storage.azure.net',
  '.blob.core.chinacloudapi.cn',
  '.blob.core.usgovcloudapi.net',
];

/**
 * An accountURL names the account, and only the account: a path on an Azure cloud host would be
 * taken as a container (acct.blob.core.windows.net/oidc with container "prod" writes container
 * oidc's prefix "prod/"), escaping the check for overlapping targets. Only the emulator form
 * (https://host:port/<account>) carries a path, of one segment.
 */
function checkAccountURLPath(accountURL: string): void {
  const url = new URL(accountURL);
  const segments = url.pathname.split('/').filter((s) => s !== '');
  const host = url.hostname.toLowerCase().replace(/\.$/, '');
  if (
    AZURE_ACCOUNT_HOSTS.some((suffix) => host.endsWith(suffix)) ? segments.length > 0 : segments.length > 1
  ) {
    throw specError(
      "storage.azureBlob.accountURL must name the account only: https://<account>.blob.core.windows.net (or an emulator's https://host:port/<account>), without a container or path; the container and prefix say where the objects go",
    );
  }
}

/** The operator's settings that decide what a spec may say. */
export interface SpecPolicy {
  /** Accept a jwksURI on another origin than issuerURL (--allow-foreign-jwks-uri). */
  allowForeignJwksURI?: boolean;
}

function httpsURL(url: string): URL | undefined {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' && u.hostname !== '' ? u : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The jwks_uri relying parties are sent to. It must be under the issuer URL (same scheme, host and
 * port, and a path below the issuer's): the issuer's owner vouches for the keys, and a jwksURI
 * elsewhere would let whoever edits the spec point relying parties at keys of their own. Comparing
 * origins alone is not enough where one host serves many owners' buckets by path
 * (storage.googleapis.com/<bucket>, s3.<region>.amazonaws.com/<bucket>, an Azure account's
 * containers). --allow-foreign-jwks-uri lifts that rule; user info is refused either way, since the
 * published discovery document would carry it.
 */
function resolveJwksURI(spec: OidcPublisherSpec, policy: SpecPolicy): string {
  const jwksURI = spec.jwksURI ?? `${issuerBase(spec.issuerURL)}/${JWKS_PATH}`;
  const jwks = httpsURL(jwksURI);
  if (!jwks) throw specError('jwksURI must be an absolute https URL with a host name');
  if (jwks.username !== '' || jwks.password !== '') {
    throw specError('jwksURI must not carry a user name or password');
  }
  if (policy.allowForeignJwksURI) return jwksURI;
  const issuer = httpsURL(spec.issuerURL);
  const issuerPath = issuer ? issuer.pathname.replace(/\/+$/, '') : '';
  if (!issuer || jwks.origin !== issuer.origin || !jwks.pathname.startsWith(`${issuerPath}/`)) {
    throw specError(
      `jwksURI ${JSON.stringify(jwksURI)} is not under the issuer URL ${JSON.stringify(spec.issuerURL)} (scheme, host and port must match and its path must be below the issuer's); the operator's --allow-foreign-jwks-uri flag allows others`,
    );
  }
  return jwksURI;
}

export function resolveSpec(spec: OidcPublisherSpec, policy: SpecPolicy = {}): ResolvedSpec {
  const syncInterval = spec.syncInterval ?? DEFAULT_SYNC_INTERVAL;
  const syncIntervalMs = parseDuration(syncInterval);
  if (syncIntervalMs === undefined || syncIntervalMs < 10_000) {
    throw specError(`syncInterval ${JSON.stringify(syncInterval)} is not a duration of at least 10s`);
  }
  if (!spec.issuerURL?.startsWith('https://')) throw specError('issuerURL must be an https URL');
  const jwksURI = resolveJwksURI(spec, policy);
  const keyRetention = spec.keyRetention ?? DEFAULT_KEY_RETENTION;
  const keyRetentionMs = parseDuration(keyRetention);
  if (keyRetentionMs === undefined) {
    throw specError(`keyRetention ${JSON.stringify(keyRetention)} is not a duration`);
  }
  const v = spec.verification ?? {};
  const timeoutText = v.timeout ?? DEFAULT_VERIFICATION_TIMEOUT;
  const slowText = v.slowThreshold ?? DEFAULT_VERIFICATION_SLOW;
  const timeoutMs = parseDuration(timeoutText);
  const slowMs = parseDuration(slowText);
  if (timeoutMs === undefined || timeoutMs < 1000) {
    throw specError(`verification.timeout ${JSON.stringify(timeoutText)} is not a duration of at least 1s`);
  }
  if (slowMs === undefined || slowMs > timeoutMs) {
    throw specError(
      `verification.slowThreshold ${JSON.stringify(slowText)} is not a duration up to verification.timeout`,
    );
  }
  const { s3, gcs, azureBlob } = spec.storage ?? {};
  if ((s3 ? 1 : 0) + (gcs ? 1 : 0) + (azureBlob ? 1 : 0) !== 1) throw specError(EXACTLY_ONE_STORAGE);
  let storage: StorageTarget;
  if (s3) {
    if (s3.endpoint !== undefined) checkS3Endpoint(s3.endpoint);
    storage = {
      kind: 's3',
      bucket: s3.bucket,
      region: s3.region,
      prefix: s3.prefix ?? '',
      forcePathStyle: s3.forcePathStyle ?? false,
      ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
      ...(s3.credentialsSecretRef ? { credentialsSecret: s3.credentialsSecretRef.name } : {}),
    };
  } else if (gcs) {
    storage = {
      kind: 'gcs',
      bucket: gcs.bucket,
      prefix: gcs.prefix ?? '',
      ...(gcs.endpoint ? { endpoint: gcs.endpoint } : {}),
      ...(gcs.credentialsSecretRef
        ? {
            credentialsSecret: {
              name: gcs.credentialsSecretRef.name,
              key: gcs.credentialsSecretRef.key ?? 'credentials.json',
            },
          }
        : {}),
    };
  } else if (azureBlob) {
    if (!/^https?:\/\/[^/?#]/.test(azureBlob.accountURL ?? '') || /[?#]/.test(azureBlob.accountURL)) {
      throw specError(
        'storage.azureBlob.accountURL must be an http or https URL without a query or fragment',
      );
    }
    const accountURL = azureBlob.accountURL.replace(/\/+$/, '');
    checkAccountURLPath(accountURL);
    storage = {
      kind: 'azureBlob',
      accountURL,
      account: azureAccountName(accountURL),
      container: azureBlob.container,
      prefix: azureBlob.prefix ?? '',
      ...(azureBlob.credentialsSecretRef
        ? {
            credentialsSecret: {
              name: azureBlob.credentialsSecretRef.name,
              key: azureBlob.credentialsSecretRef.key ?? 'connectionString',
            },
          }
        : {}),
    };
  } else {
    throw specError(EXACTLY_ONE_STORAGE);
  }
  const refs = resolveSources(spec);
  const ref = refs.length === 1 ? refs[0]?.kubeconfigSecret : undefined;
  const parties = [...new Set(spec.relyingParties ?? [])].map((p) => {
    if (!isRelyingParty(p))
      throw specError(`relyingParties: ${JSON.stringify(p)} is not one of ${RELYING_PARTIES.join(', ')}`);
    return p;
  });
  return {
    issuerURL: spec.issuerURL,
    jwksURI,
    ...(ref ? { kubeconfigSecret: ref } : {}),
    ...(refs.length > 1 ? { sources: refs } : {}),
    storage,
    syncIntervalMs,
    cacheControl: spec.cacheControl ?? DEFAULT_CACHE_CONTROL,
    deletionPolicy: spec.deletionPolicy ?? 'Retain',
    keyRetentionMs,
    ...(parties.length > 0 ? { relyingParties: parties } : {}),
    verification: {
      enabled: v.enabled ?? true,
      timeoutMs,
      slowMs,
      ...(v.canary ? { canary: { serviceAccount: v.canary.serviceAccountRef.name } } : {}),
    },
  };
}
