import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OidcPublisherStatus } from '../../src/api/types.ts';
import { type EventSpec, eventsFor, KEYS_CHANGED } from '../../src/core/events.ts';
import { planWrites, prepare, type RenderedObject } from '../../src/core/plan.ts';
import type { SyncOutcome } from '../../src/core/status.ts';
import { discoveryJson, jwksJson, OKP_PUBLIC, resolvedSpec } from './fixtures.ts';

const PREP = prepare(resolvedSpec(), { discovery: discoveryJson(), jwks: jwksJson([OKP_PUBLIC]) });
if (PREP.kind !== 'ready') throw new Error(`fixture: expected a ready preparation, got ${PREP.kind}`);
const [JWKS, DISCOVERY] = PREP.objects as [RenderedObject, RenderedObject];

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
      name: 'records the writes of a first publish, and no Ready event for a first success',
      prev: undefined,
      next: status('True', 'Ready', ['ed-1']),
      outcome: WROTE_JWKS,
      expected: ['Normal DocumentsPublished Publish: wrote openid/v1/jwks (missing)'],
    },
    {
      name: 'records nothing for a sync that wrote nothing and stayed ready',
      prev: status('True', 'Ready', ['ed-1']),
      next: status('True', 'Ready', ['ed-1']),
      outcome: WROTE_NOTHING,
      expected: [],
    },
    {
      name: 'records which kids were added and removed when a write changed the key set',
      prev: status('True', 'Ready', ['a', 'b']),
      next: status('True', 'Ready', ['b', 'c', 'd']),
      outcome: WROTE_JWKS,
      expected: [
        'Normal DocumentsPublished Publish: wrote openid/v1/jwks (missing)',
        `Normal ${KEYS_CHANGED} Publish: published key set changed: added c, d; removed a`,
      ],
    },
    {
      name: 'records no key change when the previous status had no keys',
      prev: status('True', 'Ready'),
      next: status('True', 'Ready', ['a']),
      outcome: WROTE_JWKS,
      expected: ['Normal DocumentsPublished Publish: wrote openid/v1/jwks (missing)'],
    },
    {
      name: 'records no key change when nothing was written',
      prev: status('True', 'Ready', ['a']),
      next: status('True', 'Ready', ['b']),
      outcome: WROTE_NOTHING,
      expected: [],
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
