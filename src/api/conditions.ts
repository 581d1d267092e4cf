/**
 * Condition types and reasons of OidcPublisher status. Reasons are stable API:
 * alerts and runbooks match on them.
 */

export const ConditionType = {
  /** The source API server's documents were read and are valid. */
  SourceAvailable: 'SourceAvailable',
  /** The issuer in the source's discovery document equals spec.issuerURL. */
  IssuerMatched: 'IssuerMatched',
  /** The bucket holds the current documents. */
  Published: 'Published',
  /**
   * An anonymous reader of the public issuer gets exactly what was published, as a relying party
   * would fetch it (issuer, jwks_uri, bytes, Content-Type, latency).
   */
  Verified: 'Verified',
  /**
   * Every key the source serves was published at least the JWKS's cache lifetime ago (status.keys
   * trustedAt), so relying parties that honour Cache-Control know it: the API server may sign with
   * any of them. Informational: Ready does not depend on it.
   */
  KeysTrusted: 'KeysTrusted',
  /** Summary: True when the documents are published and current; otherwise the reason of the first failing step. */
  Ready: 'Ready',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export const Reason = {
  // SourceAvailable
  /** True: both documents were read and validated. */
  DocumentsFetched: 'DocumentsFetched',
  /** False: the kubeconfig Secret or its key does not exist in the operator's namespace. */
  KubeconfigSecretNotFound: 'KubeconfigSecretNotFound',
  /** False: the kubeconfig could not be parsed, or names no usable cluster and user. */
  KubeconfigInvalid: 'KubeconfigInvalid',
  /** False: the kubeconfig would run a command (exec, auth-provider) or read local files, or disables TLS verification. */
  KubeconfigRefused: 'KubeconfigRefused',
  /** False: the API server could not be reached (connection refused, DNS, TLS, timeout). */
  SourceUnreachable: 'SourceUnreachable',
  /** False: the API server answered 401 or 403 to the credentials used. */
  SourceUnauthorized: 'SourceUnauthorized',
  /** False: the API server answered with another error status. */
  SourceError: 'SourceError',
  /** False: a document is not valid JSON, not a valid discovery document or JWKS, or carries private key material. */
  InvalidDocuments: 'InvalidDocuments',
  /**
   * False: a referenced Secret (kubeconfig here; storage credentials under Published) lacks the
   * annotation oidcpublisher.io/allowed-publishers naming this OidcPublisher (or "*"); it is not used.
   */
  SecretNotAllowed: 'SecretNotAllowed',

  /**
   * False: with spec.sources, one or more sources could not be used: not read, invalid documents,
   * another issuer, or a kid an earlier source serves with other key material. The message names
   * each and why. The others' keys are published; a stale source's keys stay published for
   * spec.keyRetention from when it was last read.
   */
  SourcesStale: 'SourcesStale',

  // IssuerMatched
  /** True: the source's issuer equals spec.issuerURL. */
  IssuerMatches: 'IssuerMatches',
  /** False: the source's issuer differs from spec.issuerURL (IssuerMatched), or the public discovery document's does (Verified). */
  IssuerMismatch: 'IssuerMismatch',
  /** Unknown: the source could not be read, so the issuer was not compared. */
  SourceNotRead: 'SourceNotRead',

  // Published
  /** True: objects were written in this sync. */
  DocumentsPublished: 'DocumentsPublished',
  /** True: the bucket already held the current documents; nothing was written. */
  UpToDate: 'UpToDate',
  /**
   * True: the documents are published, without one or more status.keys records of keys the source
   * no longer serves: such a key is published only from the JWKS the operator last wrote to
   * storage, unchanged since (its recorded SHA-256), equal to the record, sealed by the operator's
   * MAC key and passing the source key checks. A KeyRefused Warning Event names each record and why.
   */
  RetainedKeysRefused: 'RetainedKeysRefused',
  /**
   * False: the key that seals status.keys records (the Secret oidc-publisher-integrity in the
   * operator's namespace, installed with it) could not be read or written, or the Secret does not
   * exist, so retired keys cannot be checked; nothing was published and the bucket keeps the last
   * good documents.
   */
  IntegrityKeyUnavailable: 'IntegrityKeyUnavailable',
  /** Unknown: nothing was published because an earlier step failed; the bucket keeps the last good documents. */
  NotAttempted: 'NotAttempted',
  /** False: the storage credentials Secret is missing or malformed. */
  StorageCredentialsInvalid: 'StorageCredentialsInvalid',
  /** False: the storage service refused access (403, AccessDenied). */
  StorageAccessDenied: 'StorageAccessDenied',
  /** False: the bucket does not exist. */
  BucketNotFound: 'BucketNotFound',
  /** False: the storage service could not be reached. */
  StorageUnreachable: 'StorageUnreachable',
  /** False: the storage service answered with another error. */
  StorageError: 'StorageError',
  /**
   * False: the storage endpoint's host is not in the operator's allowlist for its backend (the
   * public clouds' endpoints and --storage-allowed-hosts), it is an added host and the request
   * would carry the operator's own identity, it is plain http and the request would carry a
   * secret, or an S3 request would reach another bucket; nothing was sent to it.
   */
  StorageEndpointRefused: 'StorageEndpointRefused',
  /**
   * False: an object at the target was written by another OidcPublisher (another metadata.uid) or by
   * something else, and is not one this resource published before; nothing was written, and
   * deletionPolicy: Delete leaves it in place.
   */
  ObjectNotOwned: 'ObjectNotOwned',
  /**
   * False: an earlier OidcPublisher (by creationTimestamp, then name) publishes to the same objects
   * (same backend, bucket or account and container, and prefix); this one writes nothing until the
   * earlier one is deleted or moved.
   */
  TargetConflict: 'TargetConflict',

  // Verified
  /** True: an anonymous GET of the discovery document and of its jwks_uri returned exactly what was published. */
  Verified: 'Verified',
  /** False: the public issuer could not be read anonymously (network error, timeout, 403 from the bucket policy, 404). */
  NotReachable: 'NotReachable',
  // IssuerMismatch (above) also applies here: the public discovery document names another issuer.
  /** False: the public issuer serves other bytes than were published (edited behind the operator's back, or a stale cache). */
  ContentMismatch: 'ContentMismatch',
  /** False: a document is served with another Content-Type than was published. */
  WrongContentType: 'WrongContentType',
  /** False: the public issuer answered correctly but slower than spec.verification.slowThreshold. */
  TooSlow: 'TooSlow',
  /** False: a token the API server issued to the canary ServiceAccount (spec.verification.canary)
   * does not verify against the public discovery document and JWKS: its kid is not published, the
   * signature does not verify, or iss, aud, exp or nbf are wrong. Relying parties refuse the
   * cluster's tokens too.
   */
  CanaryRejected: 'CanaryRejected',
  /** False: the API server refused (403) the TokenRequest for the canary ServiceAccount: the operator's RBAC does not grant it. */
  CanaryTokenForbidden: 'CanaryTokenForbidden',
  /** False: no canary token could be had: the ServiceAccount does not exist in the operator's namespace (404), or the TokenRequest failed. */
  CanaryTokenUnavailable: 'CanaryTokenUnavailable',
  /** Unknown: verification is off (spec.verification.enabled: false); Ready does not require it. */
  VerificationDisabled: 'VerificationDisabled',

  // KeysTrusted
  /** True: every key the source serves is past its trustedAt (publishedAt + the JWKS cache lifetime). */
  AllKeysTrusted: 'AllKeysTrusted',
  /**
   * False: a key the source serves was published less than the JWKS cache lifetime ago; the message
   * names it and its trustedAt. Switching the API server's signing key to it before then gets its
   * tokens refused by relying parties still holding an older JWKS.
   */
  KeyNotYetTrusted: 'KeyNotYetTrusted',
  /**
   * False: the canary token (spec.verification.canary) shows the API server signing with a key that
   * is not yet past its trustedAt: relying parties that cached the JWKS before its publication can
   * refuse the cluster's tokens until then. A Warning Event says so.
   */
  SigningKeyNotTrusted: 'SigningKeyNotTrusted',
  /**
   * False: a key the source serves signs with an algorithm that one of spec.relyingParties does not
   * accept (for example ES256 and azure); the message names the key, its algorithm and who refuses
   * it, and says when the API server signs with it. A Warning Event says so.
   */
  AlgorithmNotAccepted: 'AlgorithmNotAccepted',
  /** Unknown: no key has been published yet, so none can be trusted. */
  KeysNotPublished: 'KeysNotPublished',

  // Ready
  /** True: the documents are published and current. */
  Ready: 'Ready',
  /** False: the spec cannot be used (the schema could not refuse it); fix the spec. */
  InvalidSpec: 'InvalidSpec',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];
