import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OidcPublisherStatus } from '../../src/api/types.ts';
import { type EventSpec, eventsFor } from '../../src/core/events.ts';
import type { KeyRecord } from '../../src/core/keys.ts';
import { type Preparation, planWrites, prepare, type RenderedObject } from '../../src/core/plan.ts';
import type { SyncOutcome } from '../../src/core/status.ts';
import { discoveryJson, jwksJson, OKP_PUBLIC, RSA_PUBLIC, resolvedSpec, storedJwksOf } from './fixtures.ts';

const NOW = new Date('2025-06-01T12:00:00Z');
const DAY = 24 * 3_600_000;
const ED_RECORD: KeyRecord = {
  kid: 'ed-1',
  kty: 'OKP',
  firstSeen: '2025-05-01T00:00:00Z',
  jwk: { ...OKP_PUBLIC },
};
const RSA_RECORD: KeyRecord = {
  kid: 'rsa-1',
  kty: 'RSA',
  firstSeen: '2025-04-01T00:00:00Z',
  jwk: { ...RSA_PUBLIC },
};

function prepared(previous: KeyRecord[] | undefined): Extract<Preparation, { kind: 'ready' }> {
  const p = prepare(
    resolvedSpec(),
    { discovery: discoveryJson(), jwks: jwksJson([OKP_PUBLIC]) },
    { previous, now: NOW, stored: storedJwksOf() },
  );
  if (p.kind !== 'ready') throw new Error(`fixture: expected a ready preparation, got ${p.kind}`);
  return p;
}

/** The source serves ed-1, which status already records: no key changes. */
const PREP = prepared([ED_RECORD]);
const [JWKS, DISCOVERY] = PREP.objects as [RenderedObject, RenderedObject];
/** ed-1 is new: the first publish. */
const FIRST = prepared(undefined);
/** The source dropped rsa-1 and serves ed-1: ed-1 added, rsa-1 retired. */
const ROTATED = prepared([RSA_RECORD]);
/** rsa-1 was retired two days ago: its retention (a day) ended. */
const EXPIRED = prepared([
  ED_RECORD,
  { ...RSA_RECORD, retiredAt: new Date(NOW.getTime() - 2 * DAY).toISOString() },
]);
/** rsa-1 was retired an hour ago: retained, its key taken from the stored JWKS. */
const RETAINED = prepared([
  ED_RECORD,
  { ...RSA_RECORD, retiredAt: new Date(NOW.getTime() - 3_600_000).toISOString() },
]);
/** A record someone added to status: a key the operator never published. */
const forged = (kid: string): KeyRecord => ({
  kid,
  kty: 'OKP',
  firstSeen: '2025-05-01T00:00:00Z',
  retiredAt: '2999-01-01T00:00:00Z',
  jwk: { ...OKP_PUBLIC, kid },
});
const FORGED = prepared([ED_RECORD, forged('forged')]);
const MANY_FORGED = prepared([
  ED_RECORD,
  ...Array.from({ length: 12 }, (_, i) => forged(`forged-${i + 10}`)),
]);
const wrote = (p: typeof PREP): SyncOutcome => ({
  preparation: p,
  written: planWrites(p.objects, [undefined, { ...(p.objects[1] as RenderedObject) }]),
});

const WROTE_JWKS: SyncOutcome = {
  preparation: PREP,
  written: planWrites(PREP.objects, [undefined, { ...DISCOVERY }]),
};
const WROTE_NOTHING: SyncOutcome = {
  preparation: PREP,
  written: planWrites(PREP.objects, [{ ...JWKS }, { ...DISCOVERY }]),
};
const FAILED: SyncOutcome = { sourceError: { code: 'SOURCE_UNREACHABLE', message: 'down' } };

/** A status with only what eventsFor reads: the Ready condition and the keys. */
function status(ready: 'True' | 'False' | undefined, reason = 'Ready', kids?: string[]): OidcPublisherStatus {
  return {
    ...(ready
      ? {
          conditions: [
            {
              type: 'Ready',
              status: ready,
              reason,
              message: `${reason} message`,
              lastTransitionTime: '2025-01-01T00:00:00Z',
            },
          ],
        }
      : {}),
    ...(kids ? { keys: kids.map((kid) => ({ kid, kty: 'OKP', alg: 'EdDSA' })) } : {}),
  };
}

const show = (events: EventSpec[]): string[] =>
  events.map((e) => `${e.type} ${e.reason} ${e.action}: ${e.note}`);

describe('eventsFor', () => {
  const cases: {
    name: string;
    prev: OidcPublisherStatus | undefined;
    next: OidcPublisherStatus;
    outcome: SyncOutcome;
    expected: string[];
  }[] = [
    {
      name: 'records the writes and the new key of a first publish, and no Ready event for a first success',
      prev: undefined,
      next: status('True', 'Ready', ['ed-1']),
      outcome: wrote(FIRST),
      expected: [
        'Normal DocumentsPublished Publish: wrote openid/v1/jwks (missing)',
        'Normal KeyAdded Publish: published new key ed-1',
      ],
    },
    {
      name: 'records nothing for a sync that wrote nothing and stayed ready',
      prev: status('True', 'Ready', ['ed-1']),
      next: status('True', 'Ready', ['ed-1']),
      outcome: WROTE_NOTHING,
      expected: [],
    },
    {
      name: 'records the added key and the retired one, with its expiry, on a rotation',
      prev: status('True', 'Ready', ['rsa-1']),
      next: { ...status('True', 'Ready'), keys: ROTATED.retention.records },
      outcome: wrote(ROTATED),
      expected: [
        'Normal DocumentsPublished Publish: wrote openid/v1/jwks (missing)',
        'Normal KeyAdded Publish: published new key ed-1',
        'Normal KeyRetired Publish: key rsa-1 left the source; it stays published until 2025-06-02T12:00:00Z',
      ],
    },
    {
      name: 'records the removal of a retired key whose retention ended',
      prev: status('True', 'Ready', ['ed-1', 'rsa-1']),
      next: { ...status('True', 'Ready'), keys: EXPIRED.retention.records },
      outcome: wrote(EXPIRED),
      expected: [
        'Normal DocumentsPublished Publish: wrote openid/v1/jwks (missing)',
        'Normal KeyRemoved Publish: key rsa-1 removed from the published JWKS: its retention ended',
      ],
    },
    {
      name: 'records each key republished from the stored JWKS when the JWKS is written',
      prev: status('True', 'Ready', ['ed-1', 'rsa-1']),
      next: { ...status('True', 'Ready'), keys: RETAINED.retention.records },
      outcome: wrote(RETAINED),
      expected: [
        'Normal DocumentsPublished Publish: wrote openid/v1/jwks (missing)',
        'Normal KeyRetained Publish: key rsa-1 is not served by the source; republished from the JWKS the operator last wrote to storage (its SHA-256 verified) until 2025-06-02T11:00:00Z',
      ],
    },
    {
      name: 'records no retained key when the JWKS was not written',
      prev: status('True', 'Ready', ['ed-1', 'rsa-1']),
      next: { ...status('True', 'Ready'), keys: RETAINED.retention.records },
      outcome: { preparation: RETAINED, written: [] },
      expected: [],
    },
    {
      name: 'warns about a status record it refused to publish, even when nothing was written',
      prev: status('True', 'Ready', ['ed-1', 'forged']),
      next: { ...status('True', 'Ready'), keys: FORGED.retention.records },
      outcome: { preparation: FORGED, written: [] },
      expected: [
        'Warning KeyRefused Publish: status.keys records key "forged", which the source does not serve; not published: the JWKS the operator last published does not hold this kid',
      ],
    },
    {
      name: 'warns about at most ten refused records, and counts the rest in one more',
      prev: status('True', 'Ready', ['ed-1']),
      next: { ...status('True', 'Ready'), keys: MANY_FORGED.retention.records },
      outcome: { preparation: MANY_FORGED, written: [] },
      expected: [
        ...Array.from(
          { length: 10 },
          (_, i) =>
            `Warning KeyRefused Publish: status.keys records key "forged-${i + 10}", which the source does not serve; not published: the JWKS the operator last published does not hold this kid`,
        ),
        'Warning KeyRefused Publish: 2 more status.keys records were refused and not published',
      ],
    },
    {
      name: 'records no key change when publishing failed',
      prev: status('True', 'Ready', ['rsa-1']),
      next: status('False', 'StorageError', ['rsa-1']),
      outcome: { preparation: ROTATED, publishError: { code: 'STORAGE_ERROR', message: 'boom' } },
      expected: ['Warning StorageError Sync: StorageError message'],
    },
    {
      name: 'warns with the reason and message when Ready turns False',
      prev: status('True', 'Ready', ['a']),
      next: status('False', 'SourceUnreachable', ['a']),
      outcome: FAILED,
      expected: ['Warning SourceUnreachable Sync: SourceUnreachable message'],
    },
    {
      name: 'warns on the first sync when it fails',
      prev: undefined,
      next: status('False', 'KubeconfigRefused'),
      outcome: FAILED,
      expected: ['Warning KubeconfigRefused Sync: KubeconfigRefused message'],
    },
    {
      name: 'does not repeat a warning while Ready stays False for the same reason',
      prev: status('False', 'SourceUnreachable'),
      next: status('False', 'SourceUnreachable'),
      outcome: FAILED,
      expected: [],
    },
    {
      name: 'warns again when Ready stays False for another reason',
      prev: status('False', 'SourceUnreachable'),
      next: status('False', 'SourceUnauthorized'),
      outcome: FAILED,
      expected: ['Warning SourceUnauthorized Sync: SourceUnauthorized message'],
    },
    {
      name: 'records a recovery when Ready turns True again',
      prev: status('False', 'StorageError', ['ed-1']),
      next: status('True', 'Ready', ['ed-1']),
      outcome: WROTE_NOTHING,
      expected: ['Normal Ready Sync: recovered: Ready message'],
    },
    {
      name: 'records the writes and the recovery of a sync that repaired the bucket',
      prev: status('False', 'StorageError', ['ed-1']),
      next: status('True', 'Ready', ['ed-1']),
      outcome: WROTE_JWKS,
      expected: [
        'Normal DocumentsPublished Publish: wrote openid/v1/jwks (missing)',
        'Normal Ready Sync: recovered: Ready message',
      ],
    },
  ];
  for (const { name, prev, next, outcome, expected } of cases) {
    it(name, () => {
      const got = show(eventsFor(prev, next, outcome));
      assert.deepEqual(got, expected, `expected [${expected.join(' | ')}], got [${got.join(' | ')}]`);
    });
  }
});
