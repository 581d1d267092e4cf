/**
 * Which storage endpoints the operator may talk to. Whoever can write an
 * OidcPublisher chooses its endpoint, and the operator sends its credentials
 * there (its workload identity, or a Secret's keys), so the endpoint is
 * checked against an allowlist before any request:
 *
 * - Built in, per backend: the public clouds' own storage endpoints (below).
 *   Every pattern names hosts only the provider's storage service answers, so
 *   they cannot be pointed at an address of anyone else's choosing.
 * - Added by the operator's administrator with --storage-allowed-hosts, each
 *   entry for one backend (`s3=host`, `gcs=host`, `azureBlob=host`): exact
 *   host names or IP addresses, or `*.suffix` for every name under a suffix;
 *   an entry written `s3=http://host` also allows plain HTTP to it. A host
 *   added for one backend gets nothing from publishers of another.
 *
 * The operator's own identity (the AWS default credential chain, AKS workload
 * identity through DefaultAzureCredential, Google's Application Default
 * Credentials) goes only to its own cloud's built-in endpoints, never to an
 * added host: it is valid for every bucket the operator may write. A Secret's
 * explicit credentials may go to an added host.
 *
 * Built-in endpoints match on the scheme's default port only. On S3 the
 * request must reach the store's bucket: a host on AWS's names that carries
 * another bucket, or a path-style request to another bucket, is refused.
 *
 * Names are checked, not the addresses they resolve to: the built-in zones
 * are the providers', and a name the administrator adds is vouched for by
 * them. Link-local and metadata addresses (169.254.0.0/16, fe80::/10,
 * fd00:ec2::254, metadata.google.internal) match only an entry that names them
 * exactly, never a `*.` pattern.
 *
 * Over plain HTTP no secret is sent: only signatures (an S3 access key's
 * SigV4 without a session token, an Azure shared key) or nothing (GCS custom
 * endpoints get no credentials from the SDK). SAS tokens, Entra ID tokens,
 * session tokens and credential chains need HTTPS.
 */
import { isIP } from 'node:net';
import { AWS_REGION, isAwsName, normalizeHost, parseS3Host } from '../core/storage-hosts.ts';
import { OidcPublisherError } from '../errors.ts';

export { normalizeHost };

export type StorageKind = 's3' | 'gcs' | 'azureBlob';

export const STORAGE_KINDS: readonly StorageKind[] = ['s3', 'gcs', 'azureBlob'];

/**
 * The built-in S3 hosts: S3's own names (core/storage-hosts.ts), with or without a bucket before
 * them, and no other name under amazonaws.com: that zone also holds names customers point at
 * servers of their own (API Gateway, load balancers, EC2 instances such as
 * ec2-169-254-169-254.compute-1.amazonaws.com).
 */
function isS3Host(host: string): boolean {
  return isIP(host) === 0 && parseS3Host(host) !== undefined;
}

/** Whether a region names one of S3's public partitions. */
export function isAwsRegion(region: string): boolean {
  return new RegExp(`^${AWS_REGION}$`).test(region);
}

/** The endpoints each backend may use without any flag, as shown in messages and docs. */
export const BUILT_IN_STORAGE_HOSTS: Readonly<Record<StorageKind, readonly string[]>> = {
  s3: [
    '[<bucket>.]s3[.dualstack][.<region>].amazonaws.com',
    '[<bucket>.]s3-<region>.amazonaws.com',
    '[<bucket>.]s3-fips[.dualstack].<region>.amazonaws.com',
    'the same under amazonaws.com.cn',
  ],
  gcs: ['storage.googleapis.com'],
  azureBlob: [
    // Azure public cloud, its DNS-zone endpoints (account.zNN.blob.storage.azure.net),
    // Azure operated by 21Vianet (China) and Azure Government.
    '*.blob.core.windows.net',
    '*.blob.storage.azure.net',
    '*.blob.core.chinacloudapi.cn',
    '*.blob.core.usgovcloudapi.net',
  ],
};

function builtIn(kind: StorageKind, host: string): boolean {
  if (kind === 's3') return isS3Host(host);
  return BUILT_IN_STORAGE_HOSTS[kind].some((text) => {
    const p = parseHostPattern(text);
    return typeof p !== 'string' && matchesHost(p, host);
  });
}

export interface HostPattern {
  /** As written, for messages. */
  text: string;
  /** The host, or the suffix after `*.`; lower case, IPv6 without brackets. */
  host: string;
  wildcard: boolean;
  /** Plain HTTP allowed (an `http://` entry). */
  http: boolean;
}

/** A --storage-allowed-hosts entry: a host pattern for one backend. */
export interface AllowedHost extends HostPattern {
  kind: StorageKind;
}

/**
 * What a request would carry: nothing, a signature of it (SigV4, Azure shared key), a bearer secret
 * from a Secret (a SAS, a session token, a service account key's tokens), or the operator's own
 * identity (the AWS default chain, DefaultAzureCredential, Application Default Credentials).
 */
export type CredentialKind = 'none' | 'signature' | 'bearer' | 'ambient';

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function isDnsName(host: string): boolean {
  const labels = host.split('.');
  // The last label of a name is never all digits (that would be an IPv4 address).
  return host.length <= 253 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels.at(-1) ?? '');
}

/** Parses the host part of a --storage-allowed-hosts entry; a string says what is wrong with it. */
export function parseHostPattern(entry: string): HostPattern | string {
  const text = entry.trim();
  let rest = text;
  let http = false;
  if (/^http:\/\//i.test(rest)) {
    http = true;
    rest = rest.slice('http://'.length);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) {
    return `${JSON.stringify(text)}: only http:// may prefix a host (https is always allowed)`;
  }
  if (rest === '' || rest === '*' || rest === '*.') {
    return `${JSON.stringify(text)}: name a host or a *.suffix; there is no allow-all`;
  }
  const wildcard = rest.startsWith('*.');
  const host = normalizeHost(wildcard ? rest.slice(2) : rest);
  if (wildcard) {
    if (!isDnsName(host)) return `${JSON.stringify(text)}: *. must be followed by a DNS name`;
  } else if (isIP(host) === 0 && !isDnsName(host)) {
    return `${JSON.stringify(text)}: not a host name or IP address (no port, path or wildcard inside)`;
  }
  return { text, host, wildcard, http };
}

/**
 * Parses one --storage-allowed-hosts entry, `<backend>=<host pattern>` (s3=minio.storage.svc,
 * gcs=http://127.0.0.1, azureBlob=*.blob.example.net); a string says what is wrong with it. An
 * entry without a backend is refused: it once allowed a host to every backend.
 */
export function parseAllowedHost(entry: string): AllowedHost | string {
  const text = entry.trim();
  const m = /^([A-Za-z0-9]+)=(.*)$/.exec(text);
  if (!m) {
    return `${JSON.stringify(text)}: name the backend the host is for (s3=${text}, gcs=${text} or azureBlob=${text}); each entry allows a host to one backend only`;
  }
  const kind = STORAGE_KINDS.find((k) => k.toLowerCase() === m[1]?.toLowerCase());
  if (!kind) return `${JSON.stringify(text)}: the backend must be one of ${STORAGE_KINDS.join(', ')}`;
  const p = parseHostPattern(m[2] ?? '');
  if (typeof p === 'string') return `${JSON.stringify(text)}: ${p.replace(/^"(?:[^"\\]|\\.)*": /, '')}`;
  return { ...p, text, kind };
}

/** Parses every entry; throws CONFIG_INVALID naming each bad one. */
export function parseHostPatterns(entries: readonly string[]): AllowedHost[] {
  const out: AllowedHost[] = [];
  const problems: string[] = [];
  for (const entry of entries) {
    if (entry.trim() === '') continue;
    const p = parseAllowedHost(entry);
    if (typeof p === 'string') problems.push(p);
    else out.push(p);
  }
  if (problems.length > 0) {
    throw new OidcPublisherError('CONFIG_INVALID', `--storage-allowed-hosts: ${problems.join('; ')}`);
  }
  return out;
}

/** Splits a flag value: comma- or whitespace-separated entries. */
export function splitHostList(value: string): string[] {
  return value.split(/[\s,]+/).filter((s) => s !== '');
}

/** Addresses of cloud metadata services and link-local ranges: only an exact entry allows them. */
export function isMetadataHost(host: string): boolean {
  if (host === 'metadata.google.internal' || host === 'metadata') return true;
  if (isIP(host) === 4) return host.startsWith('169.254.');
  if (isIP(host) === 6) return host === 'fd00:ec2::254' || /^fe[89ab][0-9a-f]:/.test(host);
  return false;
}

/** Whether `pattern` matches the normalized host. */
export function matchesHost(pattern: HostPattern, host: string): boolean {
  if (!pattern.wildcard) return pattern.host === host;
  if (isIP(host) !== 0 || isMetadataHost(host)) return false;
  return host.endsWith(`.${pattern.host}`);
}

function refused(message: string): OidcPublisherError {
  return new OidcPublisherError('STORAGE_ENDPOINT_REFUSED', message);
}

/** The allowlist of storage endpoints: the built-in ones and the administrator's, per backend. */
export class EndpointPolicy {
  readonly #extra: readonly AllowedHost[];
  readonly #unrestricted: boolean;

  private constructor(extra: readonly AllowedHost[], unrestricted: boolean) {
    this.#extra = extra;
    this.#unrestricted = unrestricted;
  }

  /** The built-in endpoints and these `<backend>=<host>` entries (--storage-allowed-hosts). */
  static of(entries: readonly string[]): EndpointPolicy {
    return new EndpointPolicy(parseHostPatterns(entries), false);
  }

  /**
   * No check: for `oidc-publisher publish`, where the user who runs it chose the endpoint and the
   * credentials are their own.
   */
  static unrestricted(): EndpointPolicy {
    return new EndpointPolicy([], true);
  }

  get unrestricted(): boolean {
    return this.#unrestricted;
  }

  /**
   * Checks an endpoint before any request to it; returns the parsed URL or throws
   * STORAGE_ENDPOINT_REFUSED. `credentials` is what requests to it would carry.
   */
  check(kind: StorageKind, endpoint: string, credentials: CredentialKind): URL {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch (err) {
      throw new OidcPublisherError('STORAGE_ENDPOINT_REFUSED', 'the storage endpoint is not a URL', {
        cause: err,
      });
    }
    if (this.#unrestricted) return url;
    const shown = `${url.protocol}//${url.host}`;
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw refused(`storage endpoint ${shown}: only https (and http where allowed) is used`);
    }
    if (url.username !== '' || url.password !== '') {
      throw refused('the storage endpoint must not carry a user name or password');
    }
    const host = normalizeHost(url.hostname);
    // The URL parser leaves out the scheme's default port: a port here is any other.
    const isBuiltIn = url.port === '' && builtIn(kind, host);
    const extra = this.#extra.filter((p) => p.kind === kind && matchesHost(p, host));
    if (!isBuiltIn && extra.length === 0) {
      throw refused(
        `storage endpoint ${shown} is not allowed for ${kind}: the built-in endpoints are ${BUILT_IN_STORAGE_HOSTS[kind].join(', ')} (default port); the operator's --storage-allowed-hosts adds others with ${kind}=<host> entries`,
      );
    }
    if (credentials === 'ambient' && !isBuiltIn) {
      throw refused(
        `storage endpoint ${shown} is not one of ${kind}'s built-in endpoints, and the operator's own identity goes only to those: name a credentials Secret to use this host`,
      );
    }
    if (kind === 's3' && isAwsName(host) && (url.port !== '' || !isS3Host(host))) {
      throw refused(
        `storage endpoint ${shown}: on amazonaws.com only S3's own service hosts are used, on the default port`,
      );
    }
    if (url.protocol === 'http:') {
      if (!extra.some((p) => p.http)) {
        throw refused(
          `storage endpoint ${shown} uses plain http: use https, or allow http to this host with a ${kind}=http://<host> entry in the operator's --storage-allowed-hosts`,
        );
      }
      if (credentials === 'bearer' || credentials === 'ambient') {
        throw refused(
          `storage endpoint ${shown} uses plain http, and these credentials (a token, SAS or session token) are never sent without TLS`,
        );
      }
    }
    return url;
  }

  /**
   * Checks a configured S3 endpoint (spec.storage.s3.endpoint) before the client is made: as check(),
   * and on AWS's names the host must not carry a bucket, since every request would go to that
   * bucket whatever the spec's bucket says.
   */
  checkS3Endpoint(endpoint: string, credentials: CredentialKind): URL {
    const url = this.check('s3', endpoint, credentials);
    if (this.#unrestricted) return url;
    const inHost = parseS3Host(normalizeHost(url.hostname))?.bucket;
    if (inHost !== undefined) {
      throw refused(
        `storage endpoint ${url.protocol}//${url.host} names the bucket ${JSON.stringify(inHost)} in its host: use S3's service host, and the bucket field for the bucket`,
      );
    }
    return url;
  }

  /**
   * Checks an S3 request as it will be sent: as check(), and on S3's own names it must reach
   * `bucket`, named in the host (virtual-hosted style) or as the first path segment (path style).
   */
  checkS3Request(request: { url: string; path: string }, credentials: CredentialKind, bucket: string): void {
    const url = this.check('s3', request.url, credentials);
    if (this.#unrestricted) return;
    const s3Host = parseS3Host(normalizeHost(url.hostname));
    if (!s3Host) return;
    let reached = s3Host.bucket;
    if (reached === undefined) {
      const segment = request.path.split('/').find((p) => p !== '') ?? '';
      try {
        reached = decodeURIComponent(segment);
      } catch {
        reached = segment;
      }
    }
    if (reached.toLowerCase() !== bucket.toLowerCase()) {
      throw refused(
        `an S3 request to ${url.protocol}//${url.host} would reach the bucket ${JSON.stringify(reached.slice(0, 63))}, not ${JSON.stringify(bucket)}`,
      );
    }
  }
}
