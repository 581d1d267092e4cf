import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConditionType, Reason } from '../../src/api/conditions.ts';
import type { OidcPublisherStatus } from '../../src/api/types.ts';
import { findCondition } from '../../src/core/conditions.ts';
import { type Preparation, planWrites, prepare } from '../../src/core/plan.ts';
import { invalidSpecStatus, nextStatus, SYNC_HEARTBEAT_MS, type SyncOutcome } from '../../src/core/status.ts';
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
  sortedKeys,
} from './fixtures.ts';

const T0 = new Date('2025-01-01T00:00:00.000Z');
const T0_STAMP = '2025-01-01T00:00:00Z';
const at = (ms: number): Date => new Date(T0.getTime() + ms);
const stampAt = (ms: number): string =>
  at(ms)
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z');

const SPEC = resolvedSpec();
const READY = prepare(SPEC, { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC, EC_PUBLIC]) });
if (READY.kind !== 'ready') throw new Error(`fixture: expected a ready preparation, got ${READY.kind}`);
const INVALID = prepare(SPEC, { discovery: discoveryJson(), jwks: jwksJson([]) });
const MISMATCH = prepare(SPEC, {
  discovery: discoveryJson({ issuer: 'https://kubernetes.default.svc' }),
  jwks: jwksJson([RSA_PUBLIC]),
});

const PUBLISHED: SyncOutcome = {
  preparation: READY,
  written: planWrites(READY.objects, [undefined, undefined]),
};
const UP_TO_DATE: SyncOutcome = { preparation: READY, written: [] };

/** Each condition as "Type=Status/Reason", in order. */
function summary(status: OidcPublisherStatus): string[] {
  return (status.conditions ?? []).map((c) => `${c.type}=${c.status}/${c.reason}`);
}

function assertConditions(status: OidcPublisherStatus, expected: string[]): void {
  const got = summary(status);
  assert.deepEqual(got, expected, `expected [${expected.join(', ')}], got [${got.join(', ')}]`);
}

describe('nextStatus', () => {
  it('reports a sync that wrote objects as published and ready, with keys and objects', () => {
    const status = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    assertConditions(status, [
      'SourceAvailable=True/DocumentsFetched',
      'IssuerMatched=True/IssuerMatches',
      'Published=True/DocumentsPublished',
      'Ready=True/Ready',
    ]);
    assert.equal(status.observedGeneration, 1);
    assert.equal(status.issuer, ISSUER);
    assert.equal(status.jwksURI, PUBLIC_JWKS_URI);
    assert.equal(status.sourceJWKSURI, SOURCE_JWKS_URI);
    assert.equal(status.storageURL, 's3://oidc/');
    assert.equal(status.keyCount, 2);
    assert.deepEqual(status.keys, [
      { kid: 'rsa-1', kty: 'RSA', alg: 'RS256' },
      { kid: 'ec-1', kty: 'EC', alg: 'ES256' },
    ]);
    assert.deepEqual(
      status.objects?.map((o) => o.key),
      ['openid/v1/jwks', '.well-known/openid-configuration'],
    );
    assert.equal(status.lastPublishTime, T0_STAMP);
    assert.equal(status.lastSyncTime, T0_STAMP);
    const published = findCondition(status.conditions, ConditionType.Published);
    assert.match(
      published?.message ?? '',
      /^wrote openid\/v1\/jwks \(missing\), \.well-known\/openid-configuration \(missing\); jwks_uri rewritten from https:\/\/10\.96\.0\.1:443\/openid\/v1\/jwks to https:\/\/issuer\.example\.com\/openid\/v1\/jwks$/,
    );
    assert.match(
      findCondition(status.conditions, ConditionType.Ready)?.message ?? '',
      /serves 2 key\(s\) from s3:\/\/oidc\//,
    );
  });

  it('reports a sync that wrote nothing as up to date and keeps the last publish time', () => {
    const first = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    const status = nextStatus(first, 1, SPEC, UP_TO_DATE, at(60_000));
    assertConditions(status, [
      'SourceAvailable=True/DocumentsFetched',
      'IssuerMatched=True/IssuerMatches',
      'Published=True/UpToDate',
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
        `Ready=False/${expected}`,
      ]);
      assert.equal(findCondition(status.conditions, ConditionType.Ready)?.message, 'the detail');
      assert.equal(status.keys, undefined, 'expected no keys without a successful read');
    });
  }

  it('reports invalid source documents as InvalidDocuments and says nothing was published', () => {
    const status = nextStatus(undefined, 1, SPEC, { preparation: INVALID }, T0);
    assertConditions(status, [
      'SourceAvailable=False/InvalidDocuments',
      'IssuerMatched=Unknown/SourceNotRead',
      'Published=Unknown/NotAttempted',
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
        `Ready=False/${expected}`,
      ]);
      assert.equal(
        findCondition(status.conditions, ConditionType.Ready)?.message,
        'denied; the bucket keeps the last published documents',
      );
      assert.equal(status.lastPublishTime, undefined, 'expected no publish time after a failed publish');
    });
  }

  it('keeps lastTransitionTime when no status flips, and sets the new generation on every condition', () => {
    const first = nextStatus(undefined, 1, SPEC, PUBLISHED, T0);
    const later = nextStatus(first, 2, SPEC, UP_TO_DATE, at(3_600_000));
    for (const c of later.conditions ?? []) {
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

  it('keeps the last published keys and objects when a later sync fails', () => {
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
    assert.equal(failed.lastPublishTime, T0_STAMP);
  });

  const heartbeats: {
    name: string;
    after: number;
    outcome: SyncOutcome;
    expected: (ms: number) => string;
  }[] = [
    {
      name: 'keeps lastSyncTime when nothing changed within the heartbeat',
      after: SYNC_HEARTBEAT_MS - 1000,
      outcome: UP_TO_DATE,
      expected: () => T0_STAMP,
    },
    {
      name: 'refreshes lastSyncTime once the heartbeat has passed',
      after: SYNC_HEARTBEAT_MS,
      outcome: UP_TO_DATE,
      expected: stampAt,
    },
    {
      name: 'refreshes lastSyncTime at once when the status changed',
      after: 1000,
      outcome: { sourceError: { code: 'SOURCE_UNREACHABLE', message: 'x' } },
      expected: stampAt,
    },
  ];
  for (const { name, after, outcome, expected } of heartbeats) {
    it(name, () => {
      const prev = nextStatus(undefined, 1, SPEC, UP_TO_DATE, T0);
      const got = nextStatus(prev, 1, SPEC, outcome, at(after)).lastSyncTime;
      assert.equal(got, expected(after), `expected ${expected(after)}, got ${got}`);
    });
    it(`${name}, when the previous status comes from the API server with its members sorted`, () => {
      const prev = sortedKeys(nextStatus(undefined, 1, SPEC, UP_TO_DATE, T0));
      const got = nextStatus(prev, 1, SPEC, outcome, at(after)).lastSyncTime;
      assert.equal(got, expected(after), `expected ${expected(after)}, got ${got}`);
    });
  }
});

describe('invalidSpecStatus', () => {
  it('marks every step NotAttempted and Ready False/InvalidSpec with the message', () => {
    const status = invalidSpecStatus(undefined, 4, 'issuerURL must be an https URL', T0);
    assertConditions(status, [
      'SourceAvailable=Unknown/NotAttempted',
      'IssuerMatched=Unknown/NotAttempted',
      'Published=Unknown/NotAttempted',
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
    assert.equal(status.issuer, prev.issuer);
    assert.equal(status.lastPublishTime, T0_STAMP);
    const ready = findCondition(status.conditions, ConditionType.Ready);
    assert.equal(
      ready?.lastTransitionTime,
      stampAt(60_000),
      'expected Ready to flip at the time of the invalid spec',
    );
  });
});

// Keep the Preparation type honest in this file's fixtures.
const _kinds: Preparation['kind'][] = [READY.kind, INVALID.kind, MISMATCH.kind];
assert.deepEqual(_kinds, ['ready', 'invalid', 'issuerMismatch']);
