import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConditionType, Reason } from '../../src/api/conditions.ts';
import type { OidcPublisherStatus } from '../../src/api/types.ts';
import { algorithmOf, RELYING_PARTIES, type RelyingParty, refusedBy } from '../../src/core/algorithms.ts';
import { eventsFor } from '../../src/core/events.ts';
import type { KeyRecord, PublishedKeyRecord } from '../../src/core/keys.ts';
import { cacheLifetimeMs, keyTrust, UNKNOWN_CACHE_LIFETIME_MS, withTrust } from '../../src/core/trust.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (ms: number): Date => new Date(T0 + ms);
const stamp = (ms: number): string => new Date(T0 + ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const MIN = 60_000;

function rec(kid: string, o: Partial<KeyRecord> = {}): PublishedKeyRecord {
  return { kid, kty: 'RSA', alg: 'RS256', firstSeen: stamp(0), ...o } as PublishedKeyRecord;
}

describe('cacheLifetimeMs: how long a relying party may keep the JWKS', () => {
  const cases: [string, number][] = [
    ['public, max-age=300', 300_000],
    ['max-age=30', 30_000],
    ['public, max-age=60, s-maxage=600', 660_000],
    ['s-maxage=120', 120_000],
    ['public, max-age="45"', 45_000],
    ['PUBLIC, MAX-AGE=10', 10_000],
    ['no-store', 0],
    ['public, max-age=300, no-cache', 0],
    ['public', UNKNOWN_CACHE_LIFETIME_MS],
    ['public, max-age=soon', UNKNOWN_CACHE_LIFETIME_MS],
    ['max-age=-5', UNKNOWN_CACHE_LIFETIME_MS],
  ];
  for (const [cc, want] of cases) {
    it(`${JSON.stringify(cc)} -> ${want} ms`, () => {
      assert.equal(cacheLifetimeMs(cc), want);
    });
  }
});

describe('withTrust: publishedAt and trustedAt of each record', () => {
  it('a new key is published now and trusted one cache lifetime later', () => {
    const [r] = withTrust([rec('new', { firstSeen: stamp(5 * MIN) })], undefined, at(5 * MIN), 5 * MIN);
    assert.equal(r?.publishedAt, stamp(5 * MIN));
    assert.equal(r?.trustedAt, stamp(10 * MIN));
  });

  it('keeps the recorded publishedAt, and a record from before these fields counts from firstSeen', () => {
    const previous = [
      rec('kept', { publishedAt: stamp(MIN), trustedAt: stamp(6 * MIN) }),
      rec('old', { firstSeen: stamp(2 * MIN) }),
    ];
    const got = withTrust([rec('kept'), rec('old')], previous, at(60 * MIN), 5 * MIN);
    assert.deepEqual(
      got.map((r) => [r.kid, r.publishedAt, r.trustedAt]),
      [
        ['kept', stamp(MIN), stamp(6 * MIN)],
        ['old', stamp(2 * MIN), stamp(7 * MIN)],
      ],
    );
  });

  it('a publishedAt in the future counts as now (status is writable)', () => {
    const previous = [rec('k', { publishedAt: stamp(99 * MIN) })];
    const [r] = withTrust([rec('k')], previous, at(10 * MIN), MIN);
    assert.equal(r?.publishedAt, stamp(10 * MIN));
    assert.equal(r?.trustedAt, stamp(11 * MIN));
  });

  it('trustedAt is publishedAt plus the current cache lifetime: a longer max-age makes it later, a shorter one earlier', () => {
    const previous = [rec('k', { publishedAt: stamp(0), trustedAt: stamp(5 * MIN) })];
    assert.equal(withTrust([rec('k')], previous, at(MIN), 10 * MIN)[0]?.trustedAt, stamp(10 * MIN));
    assert.equal(withTrust([rec('k')], previous, at(MIN), 30_000)[0]?.trustedAt, stamp(30_000));
  });

  // A status writer could otherwise hold KeysTrusted=False for as long as the trustedAt they wrote.
  for (const [what, trustedAt] of [
    ['a month', stamp(30 * 24 * 60 * MIN)],
    ['300 days', stamp(300 * 24 * 60 * MIN)],
    ['decades', '2099-01-01T00:00:00Z'],
  ] as const) {
    it(`a recorded trustedAt ${what} after publishedAt is clamped to publishedAt + the cache lifetime`, () => {
      const previous = [rec('k', { publishedAt: stamp(0), trustedAt })];
      assert.equal(withTrust([rec('k')], previous, at(MIN), 5 * MIN)[0]?.trustedAt, stamp(5 * MIN));
      const trust = keyTrust(previous, undefined, at(6 * MIN), 5 * MIN);
      assert.equal(
        `${trust.condition.status}/${trust.condition.reason}`,
        'True/AllKeysTrusted',
        'KeysTrusted from the records status holds (a sync that did not publish)',
      );
      assert.equal(keyTrust(previous, undefined, at(MIN), 5 * MIN).nextTrustInMs, 4 * MIN);
    });
  }

  it('trust belongs to the key material: a kid now served with other material is published now', () => {
    const jwk = (n: string) => ({ kty: 'RSA' as const, kid: 'k', alg: 'RS256', n, e: 'AQAB' });
    const previous = [
      rec('k', { publishedAt: stamp(0), trustedAt: stamp(5 * MIN), jwk: jwk('old') }),
      rec('same', { publishedAt: stamp(0), trustedAt: stamp(5 * MIN), jwk: { ...jwk('same'), kid: 'same' } }),
    ];
    const got = withTrust(
      [rec('k', { jwk: jwk('new') }), rec('same', { jwk: { ...jwk('same'), kid: 'same', alg: 'PS256' } })],
      previous,
      at(60 * MIN),
      5 * MIN,
    );
    assert.deepEqual(
      got.map((r) => [r.kid, r.publishedAt, r.trustedAt]),
      [
        ['k', stamp(60 * MIN), stamp(65 * MIN)],
        ['same', stamp(0), stamp(5 * MIN)],
      ],
    );
  });
});

describe('keyTrust: the KeysTrusted condition', () => {
  const trusted = rec('old', { publishedAt: stamp(0), trustedAt: stamp(5 * MIN) });
  const fresh = rec('new', { publishedAt: stamp(10 * MIN), trustedAt: stamp(15 * MIN) });
  const retiredFresh = rec('gone', {
    publishedAt: stamp(10 * MIN),
    trustedAt: stamp(15 * MIN),
    retiredAt: stamp(11 * MIN),
  });
  const cases: {
    name: string;
    records: KeyRecord[] | undefined;
    signing?: string;
    now: number;
    want: [string, string];
    next?: number;
    mentions?: string[];
  }[] = [
    { name: 'no key published yet', records: undefined, now: 0, want: ['Unknown', Reason.KeysNotPublished] },
    {
      name: 'every served key past trustedAt',
      records: [trusted, retiredFresh],
      now: 12 * MIN,
      want: ['True', Reason.AllKeysTrusted],
    },
    {
      name: 'a new key not yet trusted, the API server signing with the old one',
      records: [trusted, fresh],
      signing: 'old',
      now: 12 * MIN,
      want: ['False', Reason.KeyNotYetTrusted],
      next: 3 * MIN,
      mentions: ['"new" until 2026-01-01T00:15:00Z', '300s'],
    },
    {
      name: 'the API server signs with the key that is not yet trusted',
      records: [trusted, fresh],
      signing: 'new',
      now: 12 * MIN,
      want: ['False', Reason.SigningKeyNotTrusted],
      next: 3 * MIN,
      mentions: ['"new"', 'until 2026-01-01T00:15:00Z', 'canary'],
    },
    {
      name: 'the same, once the key is trusted',
      records: [trusted, fresh],
      signing: 'new',
      now: 15 * MIN,
      want: ['True', Reason.AllKeysTrusted],
    },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.want.join('/')}`, () => {
      const got = keyTrust(c.records, c.signing, at(c.now), 5 * MIN);
      assert.equal(got.condition.type, ConditionType.KeysTrusted);
      assert.deepEqual([got.condition.status, got.condition.reason], c.want, got.condition.message);
      assert.equal(got.nextTrustInMs, c.next);
      for (const m of c.mentions ?? [])
        assert.ok(got.condition.message.includes(m), `message mentions ${m}: ${got.condition.message}`);
    });
  }
});

describe('Events of KeysTrusted', () => {
  const status = (reason: string, st: 'True' | 'False', kid?: string): OidcPublisherStatus => ({
    conditions: [
      {
        type: ConditionType.KeysTrusted,
        status: st,
        reason,
        message: `m ${reason}`,
        lastTransitionTime: stamp(0),
        observedGeneration: 1,
      },
    ],
    ...(kid ? { verification: { signingKeyID: kid } } : {}),
  });

  it('warns once when the API server starts signing with a key not yet trusted, and again for another such key', () => {
    const pending = status(Reason.KeyNotYetTrusted, 'False', 'old');
    const bad = status(Reason.SigningKeyNotTrusted, 'False', 'new');
    assert.deepEqual(
      eventsFor(pending, bad, {}).map((e) => [e.type, e.reason]),
      [['Warning', Reason.SigningKeyNotTrusted]],
    );
    assert.deepEqual(eventsFor(bad, bad, {}), []);
    const other = status(Reason.SigningKeyNotTrusted, 'False', 'newer');
    assert.deepEqual(
      eventsFor(bad, other, {}).map((e) => e.reason),
      [Reason.SigningKeyNotTrusted],
    );
  });

  it('says once that every key is trusted when KeysTrusted turns True', () => {
    const pending = status(Reason.KeyNotYetTrusted, 'False');
    const ok = status(Reason.AllKeysTrusted, 'True');
    assert.deepEqual(
      eventsFor(pending, ok, {}).map((e) => [e.type, e.reason]),
      [['Normal', Reason.AllKeysTrusted]],
    );
    assert.deepEqual(eventsFor(ok, ok, {}), []);
    assert.deepEqual(eventsFor(undefined, ok, {}), []);
  });
});

describe('keyTrust with spec.relyingParties: algorithms each accepts', () => {
  const rsa = rec('rsa', { publishedAt: stamp(0), trustedAt: stamp(MIN) });
  const ec = {
    ...rec('ec', { publishedAt: stamp(0), trustedAt: stamp(MIN) }),
    kty: 'EC',
    alg: 'ES256',
  } as PublishedKeyRecord;
  const ecNoAlg = { ...ec, kid: 'ec384', alg: undefined, jwk: { crv: 'P-384' } } as PublishedKeyRecord;

  it('algorithmOf falls back to what kube-apiserver uses for the key type and curve', () => {
    assert.equal(algorithmOf(rsa), 'RS256');
    assert.equal(algorithmOf({ kty: 'RSA' }), 'RS256');
    assert.equal(algorithmOf(ecNoAlg), 'ES384');
    assert.equal(algorithmOf({ kty: 'EC', jwk: { crv: 'P-999' } }), undefined);
  });

  it('every documented relying party accepts RS256; only gcp and kubernetes accept ES256', () => {
    for (const p of RELYING_PARTIES) assert.deepEqual(refusedBy(rsa, [p]), [], p);
    assert.deepEqual(refusedBy(ec, [...RELYING_PARTIES]), ['aws', 'azure', 'vault']);
    assert.deepEqual(refusedBy(ecNoAlg, ['kubernetes', 'gcp']), ['gcp']);
  });

  const cases: {
    name: string;
    parties: RelyingParty[];
    signing?: string;
    want: [string, string];
    mentions: string[];
  }[] = [
    { name: 'no relying party declared', parties: [], want: ['True', Reason.AllKeysTrusted], mentions: [] },
    {
      name: 'gcp and kubernetes accept both keys',
      parties: ['gcp', 'kubernetes'],
      want: ['True', Reason.AllKeysTrusted],
      mentions: ['gcp, kubernetes accept their algorithms'],
    },
    {
      name: 'azure refuses the published EC key (not signing)',
      parties: ['azure'],
      signing: 'rsa',
      want: ['False', Reason.AlgorithmNotAccepted],
      mentions: ['"ec" signs with ES256, which azure (spec.relyingParties) does not accept', 'do not make'],
    },
    {
      name: 'aws and vault refuse the signing EC key',
      parties: ['aws', 'vault'],
      signing: 'ec',
      want: ['False', Reason.AlgorithmNotAccepted],
      mentions: [
        'the API server signs with it',
        'aws, vault (spec.relyingParties) do not accept',
        'refuse the cluster',
      ],
    },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.want.join('/')}`, () => {
      const got = keyTrust([rsa, ec], c.signing, at(2 * MIN), MIN, c.parties);
      assert.deepEqual([got.condition.status, got.condition.reason], c.want, got.condition.message);
      for (const m of c.mentions)
        assert.ok(got.condition.message.includes(m), `message mentions ${m}: ${got.condition.message}`);
    });
  }

  it('a key not yet trusted and one refused: the refusal is named first, the requeue still comes at trustedAt', () => {
    const fresh = rec('new', { publishedAt: stamp(0), trustedAt: stamp(5 * MIN) });
    const got = keyTrust([fresh, ec], 'rsa', at(2 * MIN), 5 * MIN, ['azure']);
    assert.equal(got.condition.reason, Reason.AlgorithmNotAccepted);
    assert.equal(got.nextTrustInMs, 3 * MIN);
  });
});
