import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConditionType, Reason } from '../../src/api/conditions.ts';
import type { OidcPublisherStatus } from '../../src/api/types.ts';
import { findCondition } from '../../src/core/conditions.ts';
import type { KeyRecord } from '../../src/core/keys.ts';
import { type Preparation, planWrites, prepare, type RawDocuments } from '../../src/core/plan.ts';
import {
  invalidSpecStatus,
  nextStatus,
  SYNC_HEARTBEAT_MS,
  type SyncOutcome,
  sameStatus,
} from '../../src/core/status.ts';
import { judge, type Observation } from '../../src/core/verify.ts';
import type { ErrorCode } from '../../src/errors.ts';
import {
  discoveryJson,
  EC_PUBLIC,
  ISSUER,
  jwksJson,
  PUBLIC_JWKS_URI,
  RSA_PUBLIC,
  resolvedSpec,
  SOURCE_JWKS_URI,
  servedAs,
  sortedKeys,
  storedJwksOf,
} from './fixtures.ts';

const T0 = new Date('2025-01-01T00:00:00.000Z');
const T0_STAMP = '2025-01-01T00:00:00Z';
const H = 3_600_000;
const DAY = 24 * H;
const at = (ms: number): Date => new Date(T0.getTime() + ms);
const stampAt = (ms: number): string =>
  at(ms)
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z');

const SPEC = resolvedSpec();
const UNVERIFIED_SPEC = resolvedSpec({ verification: { enabled: false, timeoutMs: 5000, slowMs: 2000 } });
const SLOW_MS = SPEC.verification.slowMs;
const RAW: RawDocuments = { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC, EC_PUBLIC]) };

type Ready = Extract<Preparation, { kind: 'ready' }>;
function ready(p: Preparation): Ready {
  if (p.kind !== 'ready') throw new Error(`fixture: expected a ready preparation, got ${p.kind}`);
  return p;
}

/** The first sync's preparation: both keys are new at T0. */
const READY = ready(prepare(SPEC, RAW, { previous: undefined, now: T0 }));
const INVALID = prepare(SPEC, { discovery: discoveryJson(), jwks: jwksJson([]) });
const MISMATCH = prepare(SPEC, {
  discovery: discoveryJson({ issuer: 'https://kubernetes.default.svc' }),
  jwks: jwksJson([RSA_PUBLIC]),
});

/** The public issuer serves exactly READY's objects, in 123.4 ms. */
const SEEN = servedAs(READY.objects, 123.4);
const VERIFIED = judge(ISSUER, READY.objects, SEEN, SLOW_MS);
if (VERIFIED.status !== 'True') throw new Error(`fixture: expected a True verdict, got ${VERIFIED.reason}`);

const PUBLISHED: SyncOutcome = {
  preparation: READY,
  written: planWrites(READY.objects, [undefined, undefined]),
  verdict: VERIFIED,
  observation: SEEN,
};
const UP_TO_DATE: SyncOutcome = { preparation: READY, written: [], verdict: VERIFIED, observation: SEEN };

/** A later sync as the reconciler runs it: the source's keys against the previous status, verified. */
function sync(
  prev: OidcPublisherStatus | undefined,
  now: Date,
  opts: { jwks?: unknown[]; written?: 'none' | 'all'; seen?: (p: Ready) => Observation } = {},
): SyncOutcome {
  const p = ready(
    prepare(
      SPEC,
      { discovery: discoveryJson(), jwks: jwksJson(opts.jwks ?? [RSA_PUBLIC, EC_PUBLIC]) },
      { previous: prev?.keys as KeyRecord[] | undefined, now, stored: storedJwksOf() },
    ),
  );
  const seen = opts.seen?.(p) ?? servedAs(p.objects, 250);
  return {
    preparation: p,
    written: opts.written === 'all' ? planWrites(p.objects, [undefined, undefined]) : [],
    verdict: judge(ISSUER, p.objects, seen, SLOW_MS),
    observation: seen,
  };
}

const ALL_TRUE = [
  'SourceAvailable=True/DocumentsFetched',
  'IssuerMatched=True/IssuerMatches',
  'Published=True/DocumentsPublished',
  'Verified=True/Verified',
  'Ready=True/Ready',
];

/**
 * Each condition of the publishing pipeline as "Type=Status/Reason", in order. KeysTrusted informs
 * a rotation and has its own tables below.
 */
function summary(status: OidcPublisherStatus): string[] {
  return (status.conditions ?? [])
    .filter((c) => c.type !== ConditionType.KeysTrusted)
    .map((c) => `${c.type}=${c.status}/${c.reason}`);
}

function assertConditions(status: OidcPublisherStatus, expected: string[]): void {
  const got = summary(status);
  assert.deepEqual(got, expected, `expected [${expected.join(', ')}], got [${got.join(', ')}]`);
}

/** A status's keys as "kid kty alg firstSeen [retiredAt expiresAt]". */
function keySummary(status: OidcPublisherStatus): string[] {
  return (status.keys ?? []).map((k) =>
    [k.kid, k.kty, k.alg, k.firstSeen, k.retiredAt, k.expiresAt].filter((x) => x !== undefined).join(' '),
  );
}

describe('nextStatus', () => {
  it('reports a sync that wrote and verified objects as published, verified and ready, with keys and objects', () => {
    const status = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    assertConditions(status, ALL_TRUE);
    assert.equal(status.observedGeneration, 1);
    assert.equal(status.issuer, ISSUER);
    assert.equal(status.jwksURI, PUBLIC_JWKS_URI);
    assert.equal(status.sourceJWKSURI, SOURCE_JWKS_URI);
    assert.equal(status.storageURL, 's3://oidc/');
    assert.equal(status.keyCount, 2);
    const keys = keySummary(status);
    const expectedKeys = [`ec-1 EC ES256 ${T0_STAMP}`, `rsa-1 RSA RS256 ${T0_STAMP}`];
    assert.deepEqual(keys, expectedKeys, `expected [${expectedKeys.join('; ')}], got [${keys.join('; ')}]`);
    for (const k of status.keys ?? []) {
      const key = READY.keys.find((x) => x.kid === k.kid);
      assert.deepEqual(
        k.jwk,
        { ...key },
        `${k.kid}: expected the public key in status, got ${JSON.stringify(k.jwk)}`,
      );
    }
    assert.deepEqual(
      status.objects?.map((o) => o.key),
      ['openid/v1/jwks', '.well-known/openid-configuration'],
    );
    assert.deepEqual(
      status.objects?.map((o) => o.sha256),
      READY.objects.map((o) => o.sha256),
    );
    assert.equal(status.lastPublishTime, T0_STAMP);
    assert.equal(status.lastSyncTime, T0_STAMP);
    assert.deepEqual(status.verification, { lastVerifiedTime: T0_STAMP, latencyMilliseconds: 123 });
    const published = findCondition(status.conditions, ConditionType.Published);
    assert.match(
      published?.message ?? '',
      /^wrote openid\/v1\/jwks \(missing\), \.well-known\/openid-configuration \(missing\); jwks_uri rewritten from https:\/\/10\.96\.0\.1:443\/openid\/v1\/jwks to https:\/\/issuer\.example\.com\/openid\/v1\/jwks$/,
    );
    assert.equal(findCondition(status.conditions, ConditionType.Verified)?.message, VERIFIED.message);
    assert.match(
      findCondition(status.conditions, ConditionType.Ready)?.message ?? '',
      /serves 2 key\(s\) from s3:\/\/oidc\//,
    );
  });

  it('reports a sync that wrote nothing as up to date and keeps the last publish time', () => {
    const first = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    const status = nextStatus(first, 1, SPEC, sync(first, at(60_000)), at(60_000));
    assertConditions(status, [
      'SourceAvailable=True/DocumentsFetched',
      'IssuerMatched=True/IssuerMatches',
      'Published=True/UpToDate',
      'Verified=True/Verified',
      'Ready=True/Ready',
    ]);
    assert.equal(
      status.lastPublishTime,
      T0_STAMP,
      `expected the publish time of T0, got ${status.lastPublishTime}`,
    );
  });

  it('does not mention a rewrite when the source jwks_uri is already the public one', () => {
    const prep = prepare(SPEC, {
      discovery: discoveryJson({ jwks_uri: PUBLIC_JWKS_URI }),
      jwks: jwksJson([RSA_PUBLIC]),
    });
    const status = nextStatus(undefined, 1, SPEC, { preparation: prep, written: [] }, T0);
    const message = findCondition(status.conditions, ConditionType.Published)?.message ?? '';
    assert.doesNotMatch(message, /rewritten/, `expected no rewrite note, got ${message}`);
  });

  const sourceFailures: { name: string; code: ErrorCode; expected: string }[] = [
    {
      name: 'a missing kubeconfig Secret',
      code: 'SECRET_NOT_FOUND',
      expected: Reason.KubeconfigSecretNotFound,
    },
    {
      name: 'a forbidden kubeconfig Secret',
      code: 'SECRET_FORBIDDEN',
      expected: Reason.KubeconfigSecretNotFound,
    },
    { name: 'an unparsable kubeconfig', code: 'KUBECONFIG_INVALID', expected: Reason.KubeconfigInvalid },
    { name: 'a refused kubeconfig', code: 'KUBECONFIG_REFUSED', expected: Reason.KubeconfigRefused },
    { name: 'an unreachable API server', code: 'SOURCE_UNREACHABLE', expected: Reason.SourceUnreachable },
    { name: 'refused credentials', code: 'SOURCE_UNAUTHORIZED', expected: Reason.SourceUnauthorized },
    { name: 'an API server error status', code: 'SOURCE_HTTP_ERROR', expected: Reason.SourceError },
    { name: 'an oversized document', code: 'SOURCE_TOO_LARGE', expected: Reason.InvalidDocuments },
    { name: 'an invalid document', code: 'DOCUMENT_INVALID', expected: Reason.InvalidDocuments },
    { name: 'an error of no source class', code: 'KUBE_API_ERROR', expected: Reason.SourceError },
  ];
  for (const { name, code, expected } of sourceFailures) {
    it(`reports ${name} (${code}) as SourceAvailable False/${expected} and Ready False/${expected}`, () => {
      const status = nextStatus(undefined, 1, SPEC, { sourceError: { code, message: 'the detail' } }, T0);
      assertConditions(status, [
        `SourceAvailable=False/${expected}`,
        'IssuerMatched=Unknown/SourceNotRead',
        'Published=Unknown/NotAttempted',
        'Verified=Unknown/NotAttempted',
        `Ready=False/${expected}`,
      ]);
      assert.equal(findCondition(status.conditions, ConditionType.Ready)?.message, 'the detail');
      assert.equal(status.keys, undefined, 'expected no keys without a successful read');
      assert.equal(status.verification, undefined, 'expected no verification without a read-back');
    });
  }

  it('says the public issuer was not read back when the source failed', () => {
    const outcome: SyncOutcome = { sourceError: { code: 'SOURCE_UNREACHABLE', message: 'down' } };
    const verified = findCondition(nextStatus(undefined, 1, SPEC, outcome, T0).conditions, 'Verified');
    assert.equal(
      `${verified?.status}/${verified?.reason}: ${verified?.message}`,
      'Unknown/NotAttempted: the public issuer was not read back because an earlier step failed',
    );
  });

  it('reports invalid source documents as InvalidDocuments and says nothing was published', () => {
    const status = nextStatus(undefined, 1, SPEC, { preparation: INVALID }, T0);
    assertConditions(status, [
      'SourceAvailable=False/InvalidDocuments',
      'IssuerMatched=Unknown/SourceNotRead',
      'Published=Unknown/NotAttempted',
      'Verified=Unknown/NotAttempted',
      'Ready=False/InvalidDocuments',
    ]);
    const message = findCondition(status.conditions, ConditionType.Ready)?.message ?? '';
    assert.match(
      message,
      /"keys" is empty: .*; nothing was published, the bucket keeps the last published documents$/,
    );
  });

  it('reports an issuer mismatch with both issuers and records the source issuer', () => {
    const status = nextStatus(undefined, 1, SPEC, { preparation: MISMATCH }, T0);
    assertConditions(status, [
      'SourceAvailable=True/DocumentsFetched',
      'IssuerMatched=False/IssuerMismatch',
      'Published=Unknown/NotAttempted',
      'Verified=Unknown/NotAttempted',
      'Ready=False/IssuerMismatch',
    ]);
    const message = findCondition(status.conditions, ConditionType.IssuerMatched)?.message ?? '';
    assert.match(
      message,
      /"https:\/\/kubernetes\.default\.svc" differs from spec\.issuerURL "https:\/\/issuer\.example\.com"/,
    );
    assert.equal(status.issuer, 'https://kubernetes.default.svc');
    assert.equal(status.objects, undefined, 'expected no objects after a mismatch');
  });

  const publishFailures: { code: ErrorCode; expected: string }[] = [
    { code: 'STORAGE_ACCESS_DENIED', expected: Reason.StorageAccessDenied },
    { code: 'STORAGE_BUCKET_NOT_FOUND', expected: Reason.BucketNotFound },
    { code: 'STORAGE_UNREACHABLE', expected: Reason.StorageUnreachable },
    { code: 'STORAGE_ERROR', expected: Reason.StorageError },
    { code: 'STORAGE_CREDENTIALS_INVALID', expected: Reason.StorageCredentialsInvalid },
    { code: 'SECRET_NOT_FOUND', expected: Reason.StorageCredentialsInvalid },
    { code: 'SECRET_FORBIDDEN', expected: Reason.StorageCredentialsInvalid },
    { code: 'KUBE_API_ERROR', expected: Reason.StorageError },
  ];
  for (const { code, expected } of publishFailures) {
    it(`reports a publish failure ${code} as Published False/${expected} and Ready False/${expected}`, () => {
      const outcome: SyncOutcome = { preparation: READY, publishError: { code, message: 'denied' } };
      const status = nextStatus(undefined, 1, SPEC, outcome, T0);
      assertConditions(status, [
        'SourceAvailable=True/DocumentsFetched',
        'IssuerMatched=True/IssuerMatches',
        `Published=False/${expected}`,
        'Verified=Unknown/NotAttempted',
        `Ready=False/${expected}`,
      ]);
      assert.equal(
        findCondition(status.conditions, ConditionType.Ready)?.message,
        'denied; the bucket keeps the last published documents',
      );
      assert.equal(status.lastPublishTime, undefined, 'expected no publish time after a failed publish');
      assert.equal(status.keys, undefined, 'expected no keys recorded when nothing was published');
    });
  }

  /** What the public issuer serves instead of READY's objects, and the verdict it earns. */
  const STALE_JWKS = ready(
    prepare(
      SPEC,
      { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC]) },
      { previous: undefined, now: T0 },
    ),
  ).objects[0]!;
  const verdictFailures: { name: string; seen: Observation; expected: string }[] = [
    {
      name: 'a JWKS the public issuer does not serve anonymously',
      seen: { ...SEEN, jwks: { url: PUBLIC_JWKS_URI, status: 403 } },
      expected: Reason.NotReachable,
    },
    {
      name: 'a public discovery document naming another issuer',
      seen: {
        ...SEEN,
        discovery: { ...SEEN.discovery, json: { ...(SEEN.discovery.json as object), issuer: `${ISSUER}/` } },
      },
      expected: Reason.IssuerMismatch,
    },
    {
      name: 'a stale JWKS served from a cache',
      seen: { ...SEEN, jwks: { ...SEEN.jwks!, sha256: STALE_JWKS.sha256 } },
      expected: Reason.ContentMismatch,
    },
    {
      name: 'a JWKS served as application/json',
      seen: { ...SEEN, jwks: { ...SEEN.jwks!, contentType: 'application/json' } },
      expected: Reason.WrongContentType,
    },
    {
      name: 'an issuer that answers in 4 s',
      seen: servedAs(READY.objects, 4000),
      expected: Reason.TooSlow,
    },
  ];
  for (const { name, seen, expected } of verdictFailures) {
    it(`reports ${name} as Verified False/${expected} and Ready False/${expected}, with the documents published`, () => {
      const verdict = judge(ISSUER, READY.objects, seen, SLOW_MS);
      const outcome: SyncOutcome = { ...PUBLISHED, verdict, observation: seen };
      const status = nextStatus(undefined, 1, SPEC, outcome, T0);
      assertConditions(status, [
        'SourceAvailable=True/DocumentsFetched',
        'IssuerMatched=True/IssuerMatches',
        'Published=True/DocumentsPublished',
        `Verified=False/${expected}`,
        `Ready=False/${expected}`,
      ]);
      const ready = findCondition(status.conditions, ConditionType.Ready);
      assert.equal(ready?.message, verdict.message, `expected Ready to carry the verdict's message`);
      assert.equal(findCondition(status.conditions, ConditionType.Verified)?.message, verdict.message);
      assert.equal(status.keyCount, 2, 'expected the published keys to be recorded');
      assert.equal(status.lastPublishTime, T0_STAMP, 'expected the publish to be recorded');
      assert.equal(status.verification, undefined, 'expected no lastVerifiedTime without a success');
    });
  }

  it('turns Ready False/ContentMismatch when a verified issuer starts serving other bytes', () => {
    const first = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    const outcome = sync(first, at(60_000), {
      seen: (p) => {
        const served = servedAs(p.objects);
        return { ...served, jwks: { ...served.jwks!, sha256: STALE_JWKS.sha256 } };
      },
    });
    const status = nextStatus(first, 1, SPEC, outcome, at(60_000));
    const verified = findCondition(status.conditions, ConditionType.Verified);
    const ready = findCondition(status.conditions, ConditionType.Ready);
    assert.equal(`${verified?.status}/${verified?.reason}`, 'False/ContentMismatch');
    assert.equal(`${ready?.status}/${ready?.reason}`, 'False/ContentMismatch');
    assert.match(ready?.message ?? '', /serves other bytes than were published/);
    assert.equal(ready?.lastTransitionTime, stampAt(60_000), 'expected Ready to flip now');
    assert.deepEqual(
      status.verification,
      { lastVerifiedTime: T0_STAMP, latencyMilliseconds: 123 },
      'expected the last successful verification to be kept',
    );
  });

  it('does not report Ready before the public issuer was read back', () => {
    const outcome: SyncOutcome = { preparation: READY, written: PUBLISHED.written! };
    const status = nextStatus(undefined, 1, SPEC, outcome, T0);
    assertConditions(status, [
      'SourceAvailable=True/DocumentsFetched',
      'IssuerMatched=True/IssuerMatches',
      'Published=True/DocumentsPublished',
      'Verified=Unknown/NotAttempted',
      'Ready=False/NotAttempted',
    ]);
  });

  const disabled: { name: string; outcome: SyncOutcome; expected: string[] }[] = [
    {
      name: 'reports Verified Unknown/VerificationDisabled and Ready True when verification is off',
      outcome: { preparation: READY, written: PUBLISHED.written! },
      expected: [
        'SourceAvailable=True/DocumentsFetched',
        'IssuerMatched=True/IssuerMatches',
        'Published=True/DocumentsPublished',
        'Verified=Unknown/VerificationDisabled',
        'Ready=True/Ready',
      ],
    },
    {
      name: 'reports Ready with the failing step, not VerificationDisabled, when verification is off and the source fails',
      outcome: { sourceError: { code: 'SOURCE_UNREACHABLE', message: 'down' } },
      expected: [
        'SourceAvailable=False/SourceUnreachable',
        'IssuerMatched=Unknown/SourceNotRead',
        'Published=Unknown/NotAttempted',
        'Verified=Unknown/VerificationDisabled',
        'Ready=False/SourceUnreachable',
      ],
    },
    {
      name: 'reports Ready with the failing step when verification is off and publishing fails',
      outcome: { preparation: READY, publishError: { code: 'STORAGE_ACCESS_DENIED', message: 'denied' } },
      expected: [
        'SourceAvailable=True/DocumentsFetched',
        'IssuerMatched=True/IssuerMatches',
        'Published=False/StorageAccessDenied',
        'Verified=Unknown/VerificationDisabled',
        'Ready=False/StorageAccessDenied',
      ],
    },
  ];
  for (const { name, outcome, expected } of disabled) {
    it(name, () => {
      const status = nextStatus(undefined, 1, UNVERIFIED_SPEC, outcome, T0);
      assertConditions(status, expected);
      const verified = findCondition(status.conditions, ConditionType.Verified);
      assert.match(verified?.message ?? '', /spec\.verification\.enabled is false/);
      assert.equal(status.verification, undefined, 'expected no verification when it is off');
    });
  }

  it('records a key that left the source as retired, keeps publishing it, and drops it when retention ends', () => {
    const first = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    // The source rotated: rsa-1 is gone. The bucket already holds the same JWKS (rsa-1 is retained).
    const rotation = sync(sortedKeys(first), at(H), { jwks: [EC_PUBLIC] });
    const rotated = nextStatus(sortedKeys(first), 1, SPEC, rotation, at(H));
    assertConditions(rotated, [
      'SourceAvailable=True/DocumentsFetched',
      'IssuerMatched=True/IssuerMatches',
      'Published=True/UpToDate',
      'Verified=True/Verified',
      'Ready=True/Ready',
    ]);
    const expected = [
      `ec-1 EC ES256 ${T0_STAMP}`,
      `rsa-1 RSA RS256 ${T0_STAMP} ${stampAt(H)} ${stampAt(H + DAY)}`,
    ];
    assert.deepEqual(keySummary(rotated), expected, `got [${keySummary(rotated).join('; ')}]`);
    assert.deepEqual(
      rotated.keys,
      rotation.preparation?.kind === 'ready' ? rotation.preparation.retention.records : [],
    );
    assert.deepEqual(
      rotated.keys?.find((k) => k.kid === 'rsa-1')?.jwk,
      READY.keys.find((k) => k.kid === 'rsa-1'),
      'expected the retired key to keep its public parameters',
    );
    assert.equal(rotated.keyCount, 2, `expected 2 published keys, got ${rotated.keyCount}`);
    assert.equal(rotated.lastSyncTime, stampAt(H), 'expected the changed keys to refresh lastSyncTime');

    const expiry = sync(sortedKeys(rotated), at(H + DAY), { jwks: [EC_PUBLIC], written: 'all' });
    const expired = nextStatus(sortedKeys(rotated), 1, SPEC, expiry, at(H + DAY));
    assert.deepEqual(
      keySummary(expired),
      [`ec-1 EC ES256 ${T0_STAMP}`],
      `got [${keySummary(expired).join('; ')}]`,
    );
    assert.equal(expired.keyCount, 1, `expected 1 published key, got ${expired.keyCount}`);
    assert.match(findCondition(expired.conditions, ConditionType.Ready)?.message ?? '', /serves 1 key\(s\)/);
  });

  it('says in Published which status.keys records it refused, drops them, and stays Ready', () => {
    const first = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    // Someone adds a key of their own to the status, retired far in the future.
    const forged = {
      ...first,
      keys: [
        ...(first.keys ?? []),
        {
          kid: 'forged',
          kty: 'EC',
          alg: 'ES256',
          firstSeen: T0_STAMP,
          retiredAt: '2999-01-01T00:00:00Z',
          jwk: { ...EC_PUBLIC, kid: 'forged' },
        },
      ],
    } as OidcPublisherStatus;
    const outcome = sync(forged, at(H));
    const next = nextStatus(forged, 1, SPEC, outcome, at(H));
    assertConditions(next, [
      'SourceAvailable=True/DocumentsFetched',
      'IssuerMatched=True/IssuerMatches',
      'Published=True/RetainedKeysRefused',
      'Verified=True/Verified',
      'Ready=True/Ready',
    ]);
    assert.match(
      findCondition(next.conditions, ConditionType.Published)?.message ?? '',
      /the bucket holds the current documents; not published: status.keys record "forged" \(the JWKS the operator last published does not hold this kid\)/,
    );
    assert.deepEqual(
      next.keys?.map((k) => k.kid),
      ['ec-1', 'rsa-1'],
      'the refused record is not written back',
    );
    assert.equal(next.keyCount, 2);
  });

  it('keeps lastTransitionTime when no status flips, and sets the new generation on every condition', () => {
    const first = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    const later = nextStatus(first, 2, SPEC, sync(first, at(H)), at(H));
    assert.equal(later.conditions?.length, 6, `expected 6 conditions, got ${later.conditions?.length}`);
    // An hour on, the keys published at T0 are past their trustedAt: only KeysTrusted flipped.
    const trusted = findCondition(later.conditions, ConditionType.KeysTrusted);
    assert.equal(trusted?.status, 'True');
    assert.equal(trusted?.lastTransitionTime, stampAt(H));
    for (const c of later.conditions ?? []) {
      if (c.type === ConditionType.KeysTrusted) continue;
      assert.equal(
        c.lastTransitionTime,
        T0_STAMP,
        `${c.type}: expected ${T0_STAMP}, got ${c.lastTransitionTime}`,
      );
      assert.equal(
        c.observedGeneration,
        2,
        `${c.type}: expected observedGeneration 2, got ${c.observedGeneration}`,
      );
    }
    assert.equal(later.observedGeneration, 2);
  });

  it('moves lastTransitionTime of exactly the conditions whose status flipped', () => {
    const first = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    const outcome: SyncOutcome = {
      preparation: READY,
      publishError: { code: 'STORAGE_ERROR', message: '503' },
    };
    const failed = nextStatus(first, 1, SPEC, outcome, at(60_000));
    const times = Object.fromEntries((failed.conditions ?? []).map((c) => [c.type, c.lastTransitionTime]));
    const expected = {
      SourceAvailable: T0_STAMP,
      IssuerMatched: T0_STAMP,
      Published: stampAt(60_000),
      Verified: stampAt(60_000),
      KeysTrusted: T0_STAMP,
      Ready: stampAt(60_000),
    };
    assert.deepEqual(times, expected, `expected ${JSON.stringify(expected)}, got ${JSON.stringify(times)}`);
  });

  it('keeps lastTransitionTime when a failure changes reason but stays False', () => {
    const first = nextStatus(
      undefined,
      1,
      SPEC,
      { sourceError: { code: 'SOURCE_UNREACHABLE', message: 'a' } },
      T0,
    );
    const second = nextStatus(
      first,
      1,
      SPEC,
      { sourceError: { code: 'SOURCE_UNAUTHORIZED', message: 'b' } },
      at(60_000),
    );
    const ready = findCondition(second.conditions, ConditionType.Ready);
    assert.equal(ready?.reason, Reason.SourceUnauthorized);
    assert.equal(
      ready?.lastTransitionTime,
      T0_STAMP,
      `expected ${T0_STAMP}, got ${ready?.lastTransitionTime}`,
    );
  });

  it('keeps the last published keys, objects and verification when a later sync fails', () => {
    const first = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    const failed = nextStatus(
      first,
      1,
      SPEC,
      { sourceError: { code: 'SOURCE_UNREACHABLE', message: 'x' } },
      at(1000),
    );
    assert.deepEqual(failed.keys, first.keys);
    assert.deepEqual(failed.objects, first.objects);
    assert.deepEqual(failed.verification, first.verification);
    assert.equal(failed.lastPublishTime, T0_STAMP);
  });

  const heartbeats: {
    name: string;
    after: number;
    outcome: (prev: OidcPublisherStatus, now: Date) => SyncOutcome;
    expected: {
      lastSyncTime: string;
      verification: { lastVerifiedTime: string; latencyMilliseconds: number };
    };
    /** Whether the status equals the previous one, so that no status is written. */
    same: boolean;
  }[] = [
    {
      name: 'returns the previous status, lastSyncTime and verification included, when nothing changed within the heartbeat',
      after: SYNC_HEARTBEAT_MS - 1000,
      outcome: (prev, now) => sync(prev, now),
      expected: {
        lastSyncTime: T0_STAMP,
        verification: { lastVerifiedTime: T0_STAMP, latencyMilliseconds: 123 },
      },
      same: true,
    },
    {
      name: 'refreshes lastSyncTime and the verification once the heartbeat has passed',
      after: SYNC_HEARTBEAT_MS,
      outcome: (prev, now) => sync(prev, now),
      expected: {
        lastSyncTime: stampAt(SYNC_HEARTBEAT_MS),
        verification: { lastVerifiedTime: stampAt(SYNC_HEARTBEAT_MS), latencyMilliseconds: 250 },
      },
      same: false,
    },
    {
      name: 'refreshes lastSyncTime and the verification at once when the status changed',
      after: 1000,
      outcome: (prev, now) => sync(prev, now, { written: 'all' }),
      expected: {
        lastSyncTime: stampAt(1000),
        verification: { lastVerifiedTime: stampAt(1000), latencyMilliseconds: 250 },
      },
      same: false,
    },
    {
      name: 'refreshes lastSyncTime at once but keeps the last verification when the source fails',
      after: 1000,
      outcome: () => ({ sourceError: { code: 'SOURCE_UNREACHABLE', message: 'x' } }),
      expected: {
        lastSyncTime: stampAt(1000),
        verification: { lastVerifiedTime: T0_STAMP, latencyMilliseconds: 123 },
      },
      same: false,
    },
    {
      name: 'keeps the last successful verification when verification fails after the heartbeat',
      after: SYNC_HEARTBEAT_MS,
      outcome: (prev, now) => sync(prev, now, { seen: (p) => servedAs(p.objects, 4000) }),
      expected: {
        lastSyncTime: stampAt(SYNC_HEARTBEAT_MS),
        verification: { lastVerifiedTime: T0_STAMP, latencyMilliseconds: 123 },
      },
      same: false,
    },
  ];
  for (const { name, after, outcome, expected, same } of heartbeats) {
    for (const [variant, fromServer] of [
      ['', false],
      [', when the previous status comes from the API server with its members sorted', true],
    ] as const) {
      it(`${name}${variant}`, () => {
        const first = nextStatus(undefined, 1, SPEC, UP_TO_DATE, T0);
        const prev = fromServer ? sortedKeys(first) : first;
        const next = nextStatus(prev, 1, SPEC, outcome(prev, at(after)), at(after));
        const got = { lastSyncTime: next.lastSyncTime, verification: next.verification };
        assert.deepEqual(got, expected, `expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
        assert.equal(
          sameStatus(next, prev),
          same,
          `expected the status to be ${same ? 'equal to' : 'different from'} the previous one`,
        );
      });
    }
  }

  it('keeps returning the same status over many syncs that change nothing', () => {
    let prev = sortedKeys(nextStatus(undefined, 1, SPEC, UP_TO_DATE, T0));
    const settled = prev;
    for (let i = 1; i <= 4; i++) {
      const now = at(i * 60_000);
      const next = nextStatus(
        prev,
        1,
        SPEC,
        sync(prev, now, { seen: (p) => servedAs(p.objects, 100 + i) }),
        now,
      );
      assert.ok(sameStatus(next, settled), `sync ${i}: expected no change, got ${JSON.stringify(next)}`);
      prev = sortedKeys(next);
    }
  });
});

describe('invalidSpecStatus', () => {
  it('marks every step NotAttempted and Ready False/InvalidSpec with the message', () => {
    const status = invalidSpecStatus(undefined, 4, 'issuerURL must be an https URL', T0);
    assertConditions(status, [
      'SourceAvailable=Unknown/NotAttempted',
      'IssuerMatched=Unknown/NotAttempted',
      'Published=Unknown/NotAttempted',
      'Verified=Unknown/NotAttempted',
      'Ready=False/InvalidSpec',
    ]);
    assert.equal(
      findCondition(status.conditions, ConditionType.Ready)?.message,
      'issuerURL must be an https URL; the bucket keeps the last published documents',
    );
    assert.equal(status.observedGeneration, 4);
    assert.ok(
      status.conditions?.every((c) => c.observedGeneration === 4),
      'expected observedGeneration 4 on every condition',
    );
    assert.equal(status.lastSyncTime, T0_STAMP);
  });

  it('keeps what the previous status reported about the published documents', () => {
    const prev = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    const status = invalidSpecStatus(prev, 2, 'bad', at(60_000));
    assert.deepEqual(status.keys, prev.keys);
    assert.deepEqual(status.verification, prev.verification);
    assert.equal(status.issuer, prev.issuer);
    assert.equal(status.lastPublishTime, T0_STAMP);
    const ready = findCondition(status.conditions, ConditionType.Ready);
    assert.equal(
      ready?.lastTransitionTime,
      stampAt(60_000),
      'expected Ready to flip at the time of the invalid spec',
    );
  });

  it('leaves no condition of a verified status describing the old generation', () => {
    const prev = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    const status = invalidSpecStatus(prev, 2, 'bad', at(60_000));
    const stale = (status.conditions ?? [])
      .filter((c) => c.observedGeneration !== 2 || c.status === 'True')
      .map((c) => `${c.type}=${c.status} (generation ${c.observedGeneration})`);
    assert.deepEqual(
      stale,
      [],
      `expected every condition at generation 2 and none True, got ${stale.join(', ')}`,
    );
  });
});

// Keep the Preparation type honest in this file's fixtures.
const _kinds: Preparation['kind'][] = [READY.kind, INVALID.kind, MISMATCH.kind];
assert.deepEqual(_kinds, ['ready', 'invalid', 'issuerMismatch']);
