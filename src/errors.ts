/**
 * Every error oidc-publisher raises: a stable code, a retry class, and the
 * cause chained. The controller decides what to do from the class, never from
 * message text.
 */

/**
 * How the controller treats a failed reconcile:
 * - `transient`: network trouble, 5xx, 429, timeouts; retried with capped exponential backoff.
 * - `persistent`: something outside the spec must change (a Secret, a bucket policy, the API
 *   server's issuer); retried at the sync interval.
 * - `terminal`: the spec itself is wrong; not retried until the spec changes.
 */
export type RetryClass = 'transient' | 'persistent' | 'terminal';

export const ErrorCodes = {
  CONFIG_INVALID: { retry: 'terminal', summary: 'the operator configuration is invalid' },
  SPEC_INVALID: { retry: 'terminal', summary: 'the OidcPublisher spec is invalid' },
  SECRET_NOT_FOUND: { retry: 'persistent', summary: 'a referenced Secret or key does not exist' },
  SECRET_FORBIDDEN: { retry: 'persistent', summary: 'the operator may not read a referenced Secret' },
  SECRET_NOT_ALLOWED: {
    retry: 'persistent',
    summary: 'a referenced Secret does not name this OidcPublisher in its allowed-publishers annotation',
  },
  KUBECONFIG_INVALID: { retry: 'persistent', summary: 'a kubeconfig could not be parsed' },
  KUBECONFIG_REFUSED: { retry: 'persistent', summary: 'a kubeconfig would run commands or read local files' },
  SOURCE_UNREACHABLE: { retry: 'transient', summary: 'the API server could not be reached' },
  SOURCE_UNAUTHORIZED: { retry: 'persistent', summary: 'the API server refused the credentials' },
  SOURCE_HTTP_ERROR: { retry: 'transient', summary: 'the API server answered with an error' },
  SOURCE_TOO_LARGE: { retry: 'persistent', summary: 'a source document exceeds the size limit' },
  DOCUMENT_INVALID: {
    retry: 'persistent',
    summary: 'a source document is not a valid discovery document or JWKS',
  },
  STORAGE_ACCESS_DENIED: { retry: 'persistent', summary: 'the storage service refused the credentials' },
  STORAGE_BUCKET_NOT_FOUND: { retry: 'persistent', summary: 'the bucket does not exist' },
  STORAGE_UNREACHABLE: { retry: 'transient', summary: 'the storage service could not be reached' },
  STORAGE_ERROR: { retry: 'transient', summary: 'the storage service answered with an error' },
  STORAGE_CREDENTIALS_INVALID: { retry: 'persistent', summary: 'the storage credentials are malformed' },
  STORAGE_ENDPOINT_REFUSED: {
    retry: 'persistent',
    summary: 'the storage endpoint is not allowed, or would get credentials over plain http',
  },
  OBJECT_NOT_OWNED: {
    retry: 'persistent',
    summary: 'an object at the storage target was not written by this OidcPublisher',
  },
  TARGET_CONFLICT: {
    retry: 'persistent',
    summary: 'an earlier OidcPublisher publishes to the same storage objects',
  },
  KUBE_API_ERROR: { retry: 'transient', summary: "the operator's own API server call failed" },
  ISSUER_UNVERIFIED: {
    retry: 'persistent',
    summary: 'the public issuer does not serve a discovery document for itself and a valid JWKS',
  },
  CLOUD_ACCESS_DENIED: { retry: 'persistent', summary: "the cloud's identity API refused the credentials" },
  CLOUD_ERROR: { retry: 'transient', summary: "the cloud's identity API failed or could not be reached" },
  INTEGRITY_KEY_UNAVAILABLE: {
    retry: 'transient',
    summary:
      'the Secret holding the key that seals status.keys records is missing, or could not be read or written',
  },
} as const satisfies Record<string, { retry: RetryClass; summary: string }>;

export type ErrorCode = keyof typeof ErrorCodes;

export class OidcPublisherError extends Error {
  override name = 'OidcPublisherError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    // Messages become conditions, Events and log lines: a URL in one never carries credentials.
    super(redactUrls(message), options);
    this.code = code;
  }

  get retry(): RetryClass {
    return ErrorCodes[this.code].retry;
  }
}

export function isOidcPublisherError(err: unknown): err is OidcPublisherError {
  return err instanceof OidcPublisherError;
}

/** The retry class of any thrown value: unknown errors count as transient. */
export function retryClassOf(err: unknown): RetryClass {
  return isOidcPublisherError(err) ? err.retry : 'transient';
}

/** A one-line description of any thrown value, safe to log. */
export function describeError(err: unknown): string {
  return redactUrls(err instanceof Error ? err.message : String(err));
}

/**
 * A storage service's error code (S3's `<Code>`, Azure's x-ms-error-code) as it may appear in a
 * message, or undefined. Real codes are short CamelCase words (AccessDenied, NoSuchKey,
 * AuthorizationPermissionMismatch); whatever else an endpoint answers (a 40 KB string, the token
 * it was sent) goes into no condition, Event or log line: the caller says `HTTP <status>` instead.
 */
export function storageErrorCode(code: unknown): string | undefined {
  return typeof code === 'string' && /^[A-Za-z][A-Za-z0-9.]{0,63}$/.test(code) ? code : undefined;
}

const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'`<>]+/gi;

/**
 * `url` without what may carry credentials: the user name and password become `[redacted]`, the
 * query and fragment `?[redacted]` and `#[redacted]`.
 */
export function redactUrl(url: string): string {
  const sep = url.indexOf('://');
  const scheme = sep < 0 ? 0 : sep + 3;
  let authorityEnd = url.slice(scheme).search(/[/?#\\]/);
  authorityEnd = authorityEnd < 0 ? url.length : scheme + authorityEnd;
  const at = url.lastIndexOf('@', authorityEnd - 1);
  let out = at >= scheme ? `${url.slice(0, scheme)}[redacted]${url.slice(at)}` : url;
  const q = out.search(/[?#]/);
  if (q >= 0) out = `${out.slice(0, q + 1)}[redacted]`;
  return out;
}

/** User info after a scheme, whatever characters it holds (a quote or space ends no password). */
const USERINFO_AFTER_SCHEME = /\b([a-z][a-z0-9+.-]*:\/\/)[^/?#@\r\n]*@/gi;
/** `user:password@host` without a scheme. */
const BARE_USERINFO = /(^|[\s"'`(<[=,;])[^\s/?#@"'`<>:]+:[^\s/?#@]+@(?=[\w.[-])/g;

/** `text` with every URL in it redacted as redactUrl() does, and any user info before a host. */
export function redactUrls(text: string): string {
  return text
    .replace(USERINFO_AFTER_SCHEME, '$1[redacted]@')
    .replace(BARE_USERINFO, '$1[redacted]@')
    .replace(URL_IN_TEXT, redactUrl);
}
