/**
 * The status a sync leaves behind, computed from what happened. Pure: the
 * reconciler passes in the outcome and the time.
 */
import { isDeepStrictEqual } from 'node:util';
import { ConditionType, Reason } from '../api/conditions.ts';
import type { OidcPublisherStatus } from '../api/types.ts';
import type { ErrorCode } from '../errors.ts';
import { type ConditionInput, mergeConditions } from './conditions.ts';
import type { KeyChange, KeyRecord } from './keys.ts';
import { type StaleSource, staleSummary } from './merge.ts';
import type { PlannedWrite, Preparation } from './plan.ts';
import { type ResolvedSpec, storageURL } from './spec.ts';
import { cacheLifetimeMs, keyTrust } from './trust.ts';
import type { Observation, Verdict } from './verify.ts';

export interface FailedStep {
  code: ErrorCode;
  message: string;
}

export interface SyncOutcome {
  /** Why the source could not be read; absent when it was read. */
  sourceError?: FailedStep;
  preparation?: Preparation;
  /** The writes made, when publishing succeeded. */
  written?: readonly PlannedWrite[];
  /** Why publishing failed. */
  publishError?: FailedStep;
  /** What an anonymous reader of the public issuer saw, judged; absent when not attempted. */
  verdict?: Verdict;
  observation?: Observation;
  /** The kid of the canary token the API server issued in this sync (spec.verification.canary). */
  signingKeyID?: string;
  /** With spec.sources: the sources left out of this sync, and why (core/merge.ts). */
  staleSources?: readonly StaleSource[];
}

const SOURCE_REASONS: Partial<Record<ErrorCode, string>> = {
  SECRET_NOT_FOUND: Reason.KubeconfigSecretNotFound,
  SECRET_FORBIDDEN: Reason.KubeconfigSecretNotFound,
  SECRET_NOT_ALLOWED: Reason.SecretNotAllowed,
  KUBECONFIG_INVALID: Reason.KubeconfigInvalid,
  KUBECONFIG_REFUSED: Reason.KubeconfigRefused,
  SOURCE_UNREACHABLE: Reason.SourceUnreachable,
  SOURCE_UNAUTHORIZED: Reason.SourceUnauthorized,
  SOURCE_HTTP_ERROR: Reason.SourceError,
  SOURCE_TOO_LARGE: Reason.InvalidDocuments,
  DOCUMENT_INVALID: Reason.InvalidDocuments,
};

const STORAGE_REASONS: Partial<Record<ErrorCode, string>> = {
  SECRET_NOT_FOUND: Reason.StorageCredentialsInvalid,
  SECRET_FORBIDDEN: Reason.StorageCredentialsInvalid,
  STORAGE_CREDENTIALS_INVALID: Reason.StorageCredentialsInvalid,
  STORAGE_ACCESS_DENIED: Reason.StorageAccessDenied,
  STORAGE_BUCKET_NOT_FOUND: Reason.BucketNotFound,
  STORAGE_UNREACHABLE: Reason.StorageUnreachable,
  STORAGE_ERROR: Reason.StorageError,
  STORAGE_ENDPOINT_REFUSED: Reason.StorageEndpointRefused,
  SECRET_NOT_ALLOWED: Reason.SecretNotAllowed,
  OBJECT_NOT_OWNED: Reason.ObjectNotOwned,
  TARGET_CONFLICT: Reason.TargetConflict,
  INTEGRITY_KEY_UNAVAILABLE: Reason.IntegrityKeyUnavailable,
};

const KEPT = 'the bucket keeps the last published documents';

/** The status.keys records a sync refused, as the Published condition names them. */
function refusedSummary(refused: readonly KeyChange[]): string {
  const named = refused
    .slice(0, 3)
    .map((c) => `status.keys record ${JSON.stringify(c.kid.slice(0, 100))} (${c.why ?? 'not trusted'})`);
  const more = refused.length > 3 ? `, and ${refused.length - 3} more` : '';
  return `${named.join(', ')}${more}`;
}

/** How often lastSyncTime is refreshed when nothing else in the status changed. */
export const SYNC_HEARTBEAT_MS = 5 * 60_000;

function stamp(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The status of an OidcPublisher whose spec cannot be used: nothing else was attempted. */
export function invalidSpecStatus(
  prev: OidcPublisherStatus | undefined,
  generation: number,
  message: string,
  now: Date,
): OidcPublisherStatus {
  const notRead = { status: 'Unknown', reason: Reason.NotAttempted, message: 'the spec is invalid' } as const;
  return {
    ...prev,
    observedGeneration: generation,
    conditions: mergeConditions(
      prev?.conditions,
      [
        { type: ConditionType.SourceAvailable, ...notRead },
        { type: ConditionType.IssuerMatched, ...notRead },
        { type: ConditionType.Published, ...notRead },
        { type: ConditionType.Verified, ...notRead },
        { type: ConditionType.KeysTrusted, ...notRead },
        {
          type: ConditionType.Ready,
          status: 'False',
          reason: Reason.InvalidSpec,
          message: `${message}; ${KEPT}`,
        },
      ],
      generation,
      now,
    ),
    lastSyncTime: stamp(now),
  };
}

/**
 * Whether two statuses say the same, as the API server would store them: compared by value
 * (the server returns members sorted, so JSON text never matches) with undefined members dropped.
 */
export function sameStatus(a: OidcPublisherStatus | undefined, b: OidcPublisherStatus | undefined): boolean {
  const plain = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));
  return isDeepStrictEqual(plain(a), plain(b));
}

/** What the conditions of one sync are judged from. */
interface StatusInput {
  prev: OidcPublisherStatus | undefined;
  spec: ResolvedSpec;
  outcome: SyncOutcome;
  now: Date;
  /** The kid the API server signs with, while the canary runs (this sync's, or the last known). */
  signingKeyID: string | undefined;
}

/** SourceAvailable: whether the documents were read and are valid. */
function sourceAvailable({ outcome }: StatusInput): ConditionInput {
  const prep = outcome.preparation;
  if (outcome.staleSources?.length) {
    const published = prep?.kind === 'ready' && outcome.written !== undefined;
    return {
      type: ConditionType.SourceAvailable,
      status: 'False',
      reason: Reason.SourcesStale,
      message: `${staleSummary(outcome.staleSources)}; ${published ? "the other sources' keys are published, and a stale source's keys stay published for keyRetention" : `nothing was published, ${KEPT}`}`,
    };
  }
  if (outcome.sourceError) {
    return {
      type: ConditionType.SourceAvailable,
      status: 'False',
      reason: SOURCE_REASONS[outcome.sourceError.code] ?? Reason.SourceError,
      message: outcome.sourceError.message,
    };
  }
  if (prep?.kind === 'invalid') {
    return {
      type: ConditionType.SourceAvailable,
      status: 'False',
      reason: Reason.InvalidDocuments,
      message: `${prep.error.message}; nothing was published, ${KEPT}`,
    };
  }
  return {
    type: ConditionType.SourceAvailable,
    status: 'True',
    reason: Reason.DocumentsFetched,
    message: 'read and validated the discovery document and the JWKS',
  };
}

/** IssuerMatched: whether the API server's issuer is spec.issuerURL. */
function issuerMatched({ outcome }: StatusInput): ConditionInput {
  const prep = outcome.preparation;
  if (!prep || prep.kind === 'invalid') {
    return {
      type: ConditionType.IssuerMatched,
      status: 'Unknown',
      reason: Reason.SourceNotRead,
      message: 'the source documents were not available, so the issuer was not compared',
    };
  }
  if (prep.kind === 'issuerMismatch') {
    return {
      type: ConditionType.IssuerMatched,
      status: 'False',
      reason: Reason.IssuerMismatch,
      message: `the API server's issuer ${JSON.stringify(prep.issuer)} differs from spec.issuerURL ${JSON.stringify(prep.expected)}; ${KEPT}`,
    };
  }
  return {
    type: ConditionType.IssuerMatched,
    status: 'True',
    reason: Reason.IssuerMatches,
    message: `the API server's issuer is ${prep.issuer}`,
  };
}

/** Published: whether the bucket holds the rendered documents. */
function published({ spec, outcome }: StatusInput): ConditionInput {
  const prep = outcome.preparation;
  if (outcome.publishError) {
    return {
      type: ConditionType.Published,
      status: 'False',
      reason: STORAGE_REASONS[outcome.publishError.code] ?? Reason.StorageError,
      message: `${outcome.publishError.message}; ${KEPT}`,
    };
  }
  if (prep?.kind !== 'ready' || !outcome.written) {
    return {
      type: ConditionType.Published,
      status: 'Unknown',
      reason: Reason.NotAttempted,
      message: `nothing was published because an earlier step failed; ${KEPT}`,
    };
  }
  const rewritten =
    prep.sourceJwksURI !== spec.jwksURI
      ? `; jwks_uri rewritten from ${prep.sourceJwksURI} to ${spec.jwksURI}`
      : '';
  const wrote = `wrote ${outcome.written.map((w) => `${w.object.key} (${w.why})`).join(', ')}`;
  const refused = prep.retention.changes.filter((c) => c.kind === 'refused');
  if (refused.length > 0) {
    return {
      type: ConditionType.Published,
      status: 'True',
      reason: Reason.RetainedKeysRefused,
      message: `${outcome.written.length > 0 ? wrote : 'the bucket holds the current documents'}; not published: ${refusedSummary(refused)}${rewritten}`,
    };
  }
  if (outcome.written.length > 0) {
    return {
      type: ConditionType.Published,
      status: 'True',
      reason: Reason.DocumentsPublished,
      message: `${wrote}${rewritten}`,
    };
  }
  return {
    type: ConditionType.Published,
    status: 'True',
    reason: Reason.UpToDate,
    message: `the bucket holds the current documents${rewritten}`,
  };
}

/** Verified: what an anonymous reader of the public issuer saw. */
function verified({ spec, outcome }: StatusInput): ConditionInput {
  if (!spec.verification.enabled) {
    return {
      type: ConditionType.Verified,
      status: 'Unknown',
      reason: Reason.VerificationDisabled,
      message:
        'spec.verification.enabled is false: the public issuer is not read back, and Ready does not wait for it',
    };
  }
  if (outcome.verdict) return { type: ConditionType.Verified, ...outcome.verdict };
  return {
    type: ConditionType.Verified,
    status: 'Unknown',
    reason: Reason.NotAttempted,
    message: 'the public issuer was not read back because an earlier step failed',
  };
}

/** KeysTrusted: whether relying parties can verify tokens of every published key yet. */
function keysTrusted({ prev, spec, outcome, now, signingKeyID }: StatusInput): ConditionInput {
  const prep = outcome.preparation;
  const published = prep?.kind === 'ready' && outcome.written !== undefined;
  const keys = published ? prep.retention.records : (prev?.keys as KeyRecord[] | undefined);
  return keyTrust(keys, signingKeyID, now, cacheLifetimeMs(spec.cacheControl), spec.relyingParties).condition;
}

/**
 * The step conditions, in the order a sync takes the steps: Ready takes its reason from the first
 * that fails (the policy chain of cert-manager's readiness controller).
 */
const CHECKS: readonly ((input: StatusInput) => ConditionInput)[] = [
  sourceAvailable,
  issuerMatched,
  published,
  verified,
  keysTrusted,
];

/** Ready: the first failing step condition, or what is served from where. */
function ready(conds: readonly ConditionInput[], { spec, outcome }: StatusInput): ConditionInput {
  // KeysTrusted informs a rotation; the documents are published and current without it.
  const failing = conds.find(
    (c) =>
      c.status !== 'True' &&
      c.type !== ConditionType.KeysTrusted &&
      !(c.type === ConditionType.Verified && !spec.verification.enabled),
  );
  if (failing) {
    return { type: ConditionType.Ready, status: 'False', reason: failing.reason, message: failing.message };
  }
  const prep = outcome.preparation;
  return {
    type: ConditionType.Ready,
    status: 'True',
    reason: Reason.Ready,
    message: `${spec.issuerURL} serves ${prep?.kind === 'ready' ? prep.keys.length : 0} key(s) from ${storageURL(spec.storage)}`,
  };
}

export function nextStatus(
  prev: OidcPublisherStatus | undefined,
  generation: number,
  spec: ResolvedSpec,
  outcome: SyncOutcome,
  now: Date,
): OidcPublisherStatus {
  const prep = outcome.preparation;
  // The canary's kid is the API server's signing key now: a change is written at once, and it
  // goes when the canary does.
  const canary = spec.verification.enabled && spec.verification.canary !== undefined;
  const { signingKeyID: prevKid, ...prevVerification } = prev?.verification ?? {};
  const signingKeyID = canary ? (outcome.signingKeyID ?? prevKid) : undefined;
  const input: StatusInput = { prev, spec, outcome, now, signingKeyID };
  const conds = CHECKS.map((check) => check(input));
  conds.push(ready(conds, input));

  const status: OidcPublisherStatus = {
    ...prev,
    observedGeneration: generation,
    conditions: mergeConditions(prev?.conditions, conds, generation, now),
    storageURL: storageURL(spec.storage),
  };
  if (prep?.kind === 'ready' || prep?.kind === 'issuerMismatch') status.issuer = prep.issuer;
  if (prep?.kind === 'ready' && outcome.written) {
    status.jwksURI = spec.jwksURI;
    status.sourceJWKSURI = prep.sourceJwksURI;
    status.keyCount = prep.keys.length;
    status.keys = prep.retention.records;
    status.objects = prep.objects.map((o) => ({
      key: o.key,
      url: o.url,
      sha256: o.sha256,
      contentType: o.contentType,
    }));
    if (outcome.written.length > 0) status.lastPublishTime = stamp(now);
  }
  // Times and latency are refreshed with lastSyncTime, not on every sync, so a sync that changed nothing writes no status.
  status.verification = { ...prevVerification, ...(signingKeyID !== undefined ? { signingKeyID } : {}) };
  if (Object.keys(status.verification).length === 0) delete status.verification;
  const changed = !sameStatus({ ...status, lastSyncTime: undefined }, { ...prev, lastSyncTime: undefined });
  const lastSync = prev?.lastSyncTime ? Date.parse(prev.lastSyncTime) : 0;
  if (changed || now.getTime() - lastSync >= SYNC_HEARTBEAT_MS) {
    status.lastSyncTime = stamp(now);
    if (outcome.verdict?.status === 'True') {
      status.verification = {
        lastVerifiedTime: stamp(now),
        ...(outcome.observation ? { latencyMilliseconds: Math.round(outcome.observation.latencyMs) } : {}),
        ...(signingKeyID !== undefined ? { signingKeyID } : {}),
      };
    }
  } else {
    status.lastSyncTime = prev?.lastSyncTime;
  }
  return status;
}
