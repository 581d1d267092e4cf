import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  jwkThumbprint,
  type PublicJwk,
  renderJwks,
  sha256Hex,
  validateJwks,
} from '../../src/core/documents.ts';
import {
  type KeyRecord,
  MAX_RETAINED_KEYS,
  needsStoredJwks,
  provenKeys,
  retainKeys,
  type StoredJwks,
  storedJwks,
} from '../../src/core/keys.ts';
import { macKey, macProblem, type RecordSeal, recordMac } from '../../src/core/record-mac.ts';
import { EC_PUBLIC, jwksJson, OKP_PUBLIC, RSA_PRIVATE, RSA_PUBLIC, sortedKeys } from './fixtures.ts';

const NOW = new Date('2025-06-01T12:00:00.000Z');
const H = 3_600_000;
const DAY = 24 * H;
/** `ms` from NOW, as status stamps times. */
const at = (ms: number): string => new Date(NOW.getTime() + ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The fixtures' keys as the source's JWKS validates them: public parameters only. */
const [RSA, EC, ED] = validateJwks(jwksJson([RSA_PUBLIC, EC_PUBLIC, OKP_PUBLIC])) as [
  PublicJwk,
  PublicJwk,
  PublicJwk,
];
const BY_KID = new Map([RSA, EC, ED].map((k) => [k.kid, k]));
/** Key material of another RSA key pair. */
const OTHER_RSA_MATERIAL = {
  n: generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }).n,
};
/** The kid rsa-1 with other key material. */
const [SWAPPED] = validateJwks(jwksJson([{ ...RSA_PUBLIC, ...OTHER_RSA_MATERIAL }])) as [PublicJwk];

/** A record as an earlier sync wrote it to status. */
function rec(key: PublicJwk, firstSeen: string, retiredAt?: string, expiresAt?: string): KeyRecord {
  return {
    kid: key.kid,
    kty: key.kty,
    alg: key.alg,
    firstSeen,
    ...(retiredAt ? { retiredAt } : {}),
    ...(expiresAt ? { expiresAt } : {}),
    jwk: { ...key },
  };
}

/** A record without its jwk, the way statuses before key retention recorded keys. */
function bare(key: PublicJwk): KeyRecord {
  return { kid: key.kid, kty: key.kty, alg: key.alg } as KeyRecord;
}

/** A record summarised without its jwk: kid firstSeen [retiredAt expiresAt]. */
function summary(r: KeyRecord): string {
  return [r.kid, r.firstSeen, r.retiredAt, r.expiresAt].filter((x) => x !== undefined).join(' ');
}

/** The JWKS the operator wrote to storage, read back with the SHA-256 recorded with it. */
function stored(keys: readonly unknown[], recordedSha256?: string): StoredJwks {
  const body = Buffer.from(`${JSON.stringify({ keys })}\n`);
  return storedJwks(body, recordedSha256 ?? sha256Hex(body));
}

/** What the operator published before the syncs of these tables: the three fixture keys. */
const STORED = storedJwks(renderJwks([RSA, EC, ED]), sha256Hex(renderJwks([RSA, EC, ED])));

const PUBLIC_MEMBERS = new Set(['kty', 'kid', 'use', 'alg', 'crv', 'n', 'e', 'x', 'y']);
const PRIVATE_VALUES = ['d', 'p', 'q', 'dp', 'dq', 'qi'].map((f) => RSA_PRIVATE[f] as string);

describe('retainKeys', () => {
  const cases: {
    name: string;
    source: PublicJwk[];
    previous: KeyRecord[] | undefined;
    retentionMs?: number;
    /** Kids of the published keys, sorted. */
    published: string[];
    /** The new records, in order, as summary() prints them. */
    records: string[];
    changes: string[];
    nextExpiryInMs?: number;
  }[] = [
    {
      name: 'publishes a new key at once, first seen now',
      source: [RSA],
      previous: undefined,
      published: ['rsa-1'],
      records: [`rsa-1 ${at(0)}`],
      changes: ['added rsa-1'],
    },
    {
      name: 'adds a key next to the ones status already records',
      source: [RSA, EC],
      previous: [rec(RSA, at(-10 * DAY))],
      published: ['ec-1', 'rsa-1'],
      records: [`ec-1 ${at(0)}`, `rsa-1 ${at(-10 * DAY)}`],
      changes: ['added ec-1'],
    },
    {
      name: 'keeps firstSeen of a key the source still serves, with no change',
      source: [RSA],
      previous: [rec(RSA, at(-10 * DAY))],
      published: ['rsa-1'],
      records: [`rsa-1 ${at(-10 * DAY)}`],
      changes: [],
    },
    {
      name: 'gives a key recorded before retention existed a firstSeen of now, with no change',
      source: [RSA],
      previous: [bare(RSA)],
      published: ['rsa-1'],
      records: [`rsa-1 ${at(0)}`],
      changes: [],
    },
    {
      name: 'retires a key that left the source and still publishes it until now + retention',
      source: [EC],
      previous: [rec(RSA, at(-10 * DAY)), rec(EC, at(-DAY))],
      published: ['ec-1', 'rsa-1'],
      records: [`ec-1 ${at(-DAY)}`, `rsa-1 ${at(-10 * DAY)} ${at(0)} ${at(DAY)}`],
      changes: ['retired rsa-1'],
      nextExpiryInMs: DAY,
    },
    {
      name: 'keeps publishing a retired key before its expiry, with no change',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-10 * DAY), at(-23 * H), at(H))],
      published: ['ec-1', 'rsa-1'],
      records: [`ec-1 ${at(-DAY)}`, `rsa-1 ${at(-10 * DAY)} ${at(-23 * H)} ${at(H)}`],
      changes: [],
      nextExpiryInMs: H,
    },
    {
      name: 'keeps publishing a retired key one second before its expiry',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-10 * DAY), at(-DAY + 1000))],
      published: ['ec-1', 'rsa-1'],
      records: [`ec-1 ${at(-DAY)}`, `rsa-1 ${at(-10 * DAY)} ${at(-DAY + 1000)} ${at(1000)}`],
      changes: [],
      nextExpiryInMs: 1000,
    },
    {
      name: 'removes a retired key at its expiry',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-10 * DAY), at(-DAY), at(0))],
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['removed rsa-1'],
    },
    {
      name: 'removes a retired key long after its expiry',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-100 * DAY), at(-30 * DAY), at(-29 * DAY))],
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['removed rsa-1'],
    },
    {
      name: 'applies a shortened retention at once: a key past the new retention is removed',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-10 * DAY), at(-2 * H), at(22 * H))],
      retentionMs: H,
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['removed rsa-1'],
    },
    {
      name: 'applies a shortened retention at once: expiresAt follows the new retention, not the stored one',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-10 * DAY), at(-2 * H), at(22 * H))],
      retentionMs: 3 * H,
      published: ['ec-1', 'rsa-1'],
      records: [`ec-1 ${at(-DAY)}`, `rsa-1 ${at(-10 * DAY)} ${at(-2 * H)} ${at(H)}`],
      changes: [],
      nextExpiryInMs: H,
    },
    {
      name: 'restores a retired key the source serves again, keeping its firstSeen',
      source: [RSA, EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-10 * DAY), at(-H), at(23 * H))],
      published: ['ec-1', 'rsa-1'],
      records: [`ec-1 ${at(-DAY)}`, `rsa-1 ${at(-10 * DAY)}`],
      changes: ['restored rsa-1'],
    },
    {
      name: 'removes a record without a jwk rather than publishing it',
      source: [EC],
      previous: [rec(EC, at(-DAY)), bare(RSA)],
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['removed rsa-1'],
    },
    {
      name: 'removes a retired record without a jwk even before its expiry',
      source: [EC],
      previous: [rec(EC, at(-DAY)), { ...bare(RSA), firstSeen: at(-DAY), retiredAt: at(-H) }],
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['removed rsa-1'],
    },
    {
      name: 'refuses a record whose jwk names another kid (not what the operator published)',
      source: [EC],
      previous: [rec(EC, at(-DAY)), { ...rec(RSA, at(-DAY)), jwk: { ...RSA, kid: 'other' } }],
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['refused rsa-1'],
    },
    {
      name: 'refuses a record whose jwk has no alg (not what the operator published)',
      source: [EC],
      previous: [rec(EC, at(-DAY)), { ...rec(RSA, at(-DAY)), jwk: { ...RSA, alg: undefined } }],
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['refused rsa-1'],
    },
    {
      name: 'refuses an RSA record whose jwk has no modulus (not what the operator published)',
      source: [EC],
      previous: [rec(EC, at(-DAY)), { ...rec(RSA, at(-DAY)), jwk: { ...RSA, n: undefined } }],
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['refused rsa-1'],
    },
    {
      name: 'refuses an EC record whose jwk has no y coordinate (not what the operator published)',
      source: [RSA],
      previous: [rec(RSA, at(-DAY)), { ...rec(EC, at(-DAY)), jwk: { ...EC, y: undefined } }],
      published: ['rsa-1'],
      records: [`rsa-1 ${at(-DAY)}`],
      changes: ['refused ec-1'],
    },
    {
      name: 'refuses an OKP record whose jwk has no x coordinate (not what the operator published)',
      source: [RSA],
      previous: [rec(RSA, at(-DAY)), { ...rec(ED, at(-DAY)), jwk: { ...ED, x: undefined } }],
      published: ['rsa-1'],
      records: [`rsa-1 ${at(-DAY)}`],
      changes: ['refused ed-1'],
    },
    {
      name: 'keeps publishing an OKP record, which has no y',
      source: [RSA],
      previous: [rec(RSA, at(-DAY)), rec(ED, at(-DAY))],
      published: ['ed-1', 'rsa-1'],
      records: [`ed-1 ${at(-DAY)} ${at(0)} ${at(DAY)}`, `rsa-1 ${at(-DAY)}`],
      changes: ['retired ed-1'],
      nextExpiryInMs: DAY,
    },
    {
      name: 'removes a key that left the source at once when retention is 0',
      source: [EC],
      previous: [rec(RSA, at(-10 * DAY)), rec(EC, at(-DAY))],
      retentionMs: 0,
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['removed rsa-1'],
    },
    {
      name: 'treats an unreadable retiredAt as retired now',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-10 * DAY), 'yesterday')],
      published: ['ec-1', 'rsa-1'],
      records: [`ec-1 ${at(-DAY)}`, `rsa-1 ${at(-10 * DAY)} ${at(0)} ${at(DAY)}`],
      changes: [],
      nextExpiryInMs: DAY,
    },
    {
      name: 'reports the soonest expiry of several retained keys',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(ED, at(-DAY), at(-2 * H)), rec(RSA, at(-DAY), at(-20 * H))],
      published: ['ec-1', 'ed-1', 'rsa-1'],
      records: [
        `ec-1 ${at(-DAY)}`,
        `ed-1 ${at(-DAY)} ${at(-2 * H)} ${at(22 * H)}`,
        `rsa-1 ${at(-DAY)} ${at(-20 * H)} ${at(4 * H)}`,
      ],
      changes: [],
      nextExpiryInMs: 4 * H,
    },
    {
      name: 'retires every key when the source serves new ones only, and sorts records by kid',
      source: [RSA],
      previous: [rec(EC, at(-DAY)), rec(ED, at(-2 * DAY))],
      published: ['ec-1', 'ed-1', 'rsa-1'],
      records: [
        `ec-1 ${at(-DAY)} ${at(0)} ${at(DAY)}`,
        `ed-1 ${at(-2 * DAY)} ${at(0)} ${at(DAY)}`,
        `rsa-1 ${at(0)}`,
      ],
      changes: ['added rsa-1', 'retired ec-1', 'retired ed-1'],
      nextExpiryInMs: DAY,
    },
    {
      name: 'sorts records by kid whatever the source order',
      source: [RSA, ED, EC],
      previous: undefined,
      published: ['ec-1', 'ed-1', 'rsa-1'],
      records: [`ec-1 ${at(0)}`, `ed-1 ${at(0)}`, `rsa-1 ${at(0)}`],
      changes: ['added rsa-1', 'added ed-1', 'added ec-1'],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const got = retainKeys(c.source, c.previous, NOW, c.retentionMs ?? DAY, STORED);
      const published = got.published.map((k) => k.kid).sort();
      assert.deepEqual(
        published,
        c.published,
        `published: expected [${c.published.join(', ')}], got [${published.join(', ')}]`,
      );
      const records = got.records.map(summary);
      assert.deepEqual(
        records,
        c.records,
        `records: expected [${c.records.join('; ')}], got [${records.join('; ')}]`,
      );
      const changes = got.changes.map((x) => `${x.kind} ${x.kid}`);
      assert.deepEqual(
        changes,
        c.changes,
        `changes: expected [${c.changes.join(', ')}], got [${changes.join(', ')}]`,
      );
      assert.equal(
        got.nextExpiryInMs,
        c.nextExpiryInMs,
        `nextExpiryInMs: expected ${c.nextExpiryInMs}, got ${got.nextExpiryInMs}`,
      );
      // Every record carries the key's own public parameters, so a retired key can be published again.
      for (const r of got.records) {
        const key = BY_KID.get(r.kid)!;
        assert.deepEqual(
          r.jwk,
          { ...key },
          `${r.kid}: expected jwk ${JSON.stringify(key)}, got ${JSON.stringify(r.jwk)}`,
        );
        assert.equal(r.kty, key.kty, `${r.kid}: expected kty ${key.kty}, got ${r.kty}`);
        assert.equal(r.alg, key.alg, `${r.kid}: expected alg ${key.alg}, got ${r.alg}`);
      }
      for (const k of got.published) {
        const key = BY_KID.get(k.kid)!;
        assert.deepEqual(
          k,
          { ...key },
          `${k.kid}: expected ${JSON.stringify(key)}, got ${JSON.stringify(k)}`,
        );
      }
    });
  }

  it('records no private parameter, though the source key pair has them', () => {
    const retired = retainKeys([EC], [rec(RSA, at(-DAY)), rec(EC, at(-DAY))], NOW, DAY, STORED);
    const fresh = retainKeys([RSA, EC, ED], undefined, NOW, DAY);
    for (const r of [...retired.records, ...fresh.records]) {
      const extra = Object.keys(r.jwk ?? {}).filter((m) => !PUBLIC_MEMBERS.has(m));
      assert.deepEqual(extra, [], `${r.kid}: expected public members only, got also ${extra.join(', ')}`);
    }
    const text = JSON.stringify([retired, fresh]);
    for (const v of PRIVATE_VALUES) {
      assert.ok(!text.includes(v), 'expected no private RSA parameter value in records or published keys');
    }
  });

  it('keeps only the public members of a stored key, whatever else its record holds', () => {
    const tampered = { ...rec(RSA, at(-DAY), at(-H)), jwk: { ...RSA_PRIVATE, kid: RSA.kid } } as KeyRecord;
    const got = retainKeys([EC], [tampered], NOW, DAY, STORED);
    const text = JSON.stringify(got);
    for (const v of PRIVATE_VALUES) {
      assert.ok(!text.includes(v), `expected no private RSA parameter in ${text.slice(0, 200)}...`);
    }
    assert.deepEqual(
      got.published.map((k) => k.kid),
      [EC.kid, RSA.kid],
    );
  });

  it('retains a kid repeated in status once', () => {
    const got = retainKeys(
      [EC],
      [rec(RSA, at(-DAY), at(-H)), rec(RSA, at(-2 * DAY), at(-H))],
      NOW,
      DAY,
      STORED,
    );
    assert.deepEqual(
      got.published.map((k) => k.kid),
      [EC.kid, RSA.kid],
      `expected each kid once, got ${got.published.map((k) => k.kid).join(', ')}`,
    );
    assert.deepEqual(
      got.records.map((r) => r.kid),
      [EC.kid, RSA.kid].sort(),
    );
  });

  it('gives the same result for records read back from the API server with members sorted', () => {
    const previous = [rec(EC, at(-DAY)), rec(RSA, at(-10 * DAY), at(-H), at(23 * H))];
    const a = retainKeys([EC], previous, NOW, DAY, STORED);
    const b = retainKeys([EC], sortedKeys(previous), NOW, DAY, STORED);
    assert.deepEqual(b, a, `expected ${JSON.stringify(a)}, got ${JSON.stringify(b)}`);
  });
});

/** A key pair nobody but the one who patched the status holds, valid by every check. */
const FORGED: PublicJwk = (() => {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const { n, e } = publicKey.export({ format: 'jwk' });
  return { kty: 'RSA', kid: 'forged', use: 'sig', alg: 'RS256', n: n as string, e: e as string };
})();
/** A 512-bit RSA key for encryption, with alg "none": fails every key check. */
const WEAK = (() => {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 512 });
  const { n, e } = publicKey.export({ format: 'jwk' });
  return { kty: 'RSA', kid: 'weak', use: 'enc', alg: 'none', n: n as string, e: e as string };
})() as unknown as PublicJwk;
const FAR_FUTURE = '2999-01-01T00:00:00Z';

describe('retainKeys: status.keys is not key material', () => {
  const cases: {
    name: string;
    source: PublicJwk[];
    previous: KeyRecord[];
    stored: StoredJwks | undefined;
    published: string[];
    /** The new records, as summary() prints them. */
    records: string[];
    changes: string[];
  }[] = [
    {
      name: 'does not publish a forged record with a far-future retiredAt, and drops it from status',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(FORGED, at(-DAY), FAR_FUTURE, FAR_FUTURE)],
      stored: STORED,
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['refused forged'],
    },
    {
      name: 'does not publish a forged record even when the source serves no other retired key',
      source: [EC],
      previous: [rec(FORGED, at(0))],
      stored: STORED,
      published: ['ec-1'],
      records: [`ec-1 ${at(0)}`],
      changes: ['added ec-1', 'refused forged'],
    },
    {
      name: 'refuses other parameters recorded under a kid the operator published',
      source: [EC],
      previous: [rec(EC, at(-DAY)), { ...rec(RSA, at(-DAY), at(-H)), jwk: { ...FORGED, kid: RSA.kid } }],
      stored: STORED,
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['refused rsa-1'],
    },
    {
      name: 'refuses a weak key (512-bit RSA, alg none, use enc) even when storage holds it too',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(WEAK, at(-DAY), at(-H))],
      stored: stored([RSA, EC, WEAK]),
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['refused weak'],
    },
    {
      name: 'clamps a future retiredAt to now and recomputes expiresAt from the retention',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-DAY), FAR_FUTURE, FAR_FUTURE)],
      stored: STORED,
      published: ['ec-1', 'rsa-1'],
      records: [`ec-1 ${at(-DAY)}`, `rsa-1 ${at(-DAY)} ${at(0)} ${at(DAY)}`],
      changes: [],
    },
    {
      name: 'ignores a far-future expiresAt: a retired key leaves at retiredAt + retention',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-DAY), at(-2 * DAY), FAR_FUTURE)],
      stored: STORED,
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['removed rsa-1'],
    },
    {
      name: 'clamps a future firstSeen to now, for a source key and a retired one',
      source: [EC],
      previous: [rec(EC, FAR_FUTURE), rec(RSA, FAR_FUTURE, at(-H))],
      stored: STORED,
      published: ['ec-1', 'rsa-1'],
      records: [`ec-1 ${at(0)}`, `rsa-1 ${at(-H)} ${at(-H)} ${at(23 * H)}`],
      changes: [],
    },
    {
      name: 'takes no retired key from a stored JWKS whose bytes do not match the recorded SHA-256',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-DAY), at(-H))],
      stored: stored([RSA, EC], 'f'.repeat(64)),
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['refused rsa-1'],
    },
    {
      name: 'takes no retired key when the stored JWKS is missing',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-DAY), at(-H))],
      stored: { state: 'missing' },
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['refused rsa-1'],
    },
    {
      name: 'takes no retired key when the stored JWKS was not read',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-DAY), at(-H))],
      stored: undefined,
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['refused rsa-1'],
    },
    {
      name: 'refuses a kid the stored JWKS repeats',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-DAY), at(-H))],
      stored: stored([RSA, RSA, EC]),
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: ['refused rsa-1'],
    },
    {
      name: 'publishes only the source keys when storage holds a key status does not record',
      source: [EC],
      previous: [rec(EC, at(-DAY))],
      stored: stored([FORGED, EC]),
      published: ['ec-1'],
      records: [`ec-1 ${at(-DAY)}`],
      changes: [],
    },
    {
      name: 'keeps a retired key whose record and stored copy agree (restart mid-retention)',
      source: [EC],
      previous: [rec(EC, at(-DAY)), rec(RSA, at(-DAY), at(-H), at(23 * H))],
      stored: STORED,
      published: ['ec-1', 'rsa-1'],
      records: [`ec-1 ${at(-DAY)}`, `rsa-1 ${at(-DAY)} ${at(-H)} ${at(23 * H)}`],
      changes: [],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const got = retainKeys(c.source, c.previous, NOW, DAY, c.stored);
      const published = got.published.map((k) => k.kid).sort();
      assert.deepEqual(
        published,
        c.published,
        `published: expected [${c.published.join(', ')}], got [${published.join(', ')}]`,
      );
      const records = got.records.map(summary);
      assert.deepEqual(
        records,
        c.records,
        `records: expected [${c.records.join('; ')}], got [${records.join('; ')}]`,
      );
      const changes = got.changes.map((x) => `${x.kind} ${x.kid}`);
      assert.deepEqual(
        changes,
        c.changes,
        `changes: expected [${c.changes.join(', ')}], got [${changes.join(', ')}]`,
      );
      for (const ch of got.changes.filter((x) => x.kind === 'refused'))
        assert.ok(ch.why, `a refused record says why: ${JSON.stringify(ch)}`);
      const text = JSON.stringify(got);
      for (const k of [FORGED, WEAK])
        assert.ok(
          !text.includes(k.n as string),
          `expected no trace of ${k.kid}'s modulus in ${text.slice(0, 200)}...`,
        );
      const fromStorage = got.published
        .filter((k) => !c.source.some((s) => s.kid === k.kid))
        .map((k) => k.kid);
      assert.deepEqual(
        got.fromStorage.sort(),
        fromStorage.sort(),
        'every retained key is reported as taken from storage',
      );
    });
  }

  it('says why a record is refused', () => {
    const why = (stored: StoredJwks | undefined, r: KeyRecord): string =>
      retainKeys([EC], [r], NOW, DAY, stored).changes.find((x) => x.kind === 'refused')?.why ??
      '(not refused)';
    const retired = rec(RSA, at(-DAY), at(-H));
    assert.match(why(STORED, rec(FORGED, at(-DAY))), /does not hold this kid/);
    assert.match(why(stored([RSA], '0'.repeat(64)), retired), /does not match the SHA-256 recorded/);
    assert.match(why({ state: 'missing' }, retired), /JWKS in storage is missing/);
    assert.match(
      why(stored([RSA, WEAK]), rec(WEAK, at(-DAY))),
      /shorter than 2048 bits.*"use" "enc"|"use" "enc".*shorter/s,
    );
    assert.match(why(stored([RSA, WEAK]), rec(WEAK, at(-DAY))), /"alg" "none"/);
    assert.match(why(STORED, { ...retired, jwk: { ...FORGED, kid: RSA.kid } }), /other key parameters/);
  });

  it(`keeps at most ${MAX_RETAINED_KEYS} retired keys, the most recently retired`, () => {
    const many = Array.from({ length: MAX_RETAINED_KEYS + 2 }, (_, i) => ({ ...EC, kid: `ec-${1000 + i}` }));
    const previous = many.map((k, i) => rec(k, at(-DAY), at(-(i + 1) * 1000)));
    const got = retainKeys([RSA], previous, NOW, DAY, stored(many));
    assert.equal(got.published.length, MAX_RETAINED_KEYS + 1, 'the source key and the bound of retired keys');
    const removed = got.changes.filter((c) => c.kind === 'removed').map((c) => c.kid);
    assert.deepEqual(removed, ['ec-1100', 'ec-1101'], 'the two retired longest ago leave');
  });
});

describe('storedJwks', () => {
  const body = renderJwks([RSA]);
  const cases: {
    name: string;
    body: Uint8Array | undefined;
    sha: string | undefined;
    state: string;
    why?: RegExp;
  }[] = [
    {
      name: 'verifies bytes that hash to the recorded SHA-256',
      body,
      sha: sha256Hex(body),
      state: 'verified',
    },
    { name: 'reports a missing object', body: undefined, sha: undefined, state: 'missing' },
    {
      name: 'refuses an object without a recorded SHA-256',
      body,
      sha: undefined,
      state: 'unverified',
      why: /no recorded/,
    },
    {
      name: 'refuses bytes changed in storage',
      body: Buffer.from(JSON.stringify({ keys: [FORGED] })),
      sha: sha256Hex(body),
      state: 'unverified',
      why: /does not match/,
    },
    {
      name: 'refuses bytes that are not JSON, though they match',
      body: Buffer.from('not json'),
      sha: sha256Hex(Buffer.from('not json')),
      state: 'unverified',
      why: /not valid JSON/,
    },
    {
      name: 'refuses a JSON document without keys',
      body: Buffer.from('{}'),
      sha: sha256Hex(Buffer.from('{}')),
      state: 'unverified',
      why: /no "keys"/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = storedJwks(c.body, c.sha);
      assert.equal(got.state, c.state, `expected ${c.state}, got ${JSON.stringify(got).slice(0, 200)}`);
      if (c.why) assert.match(got.state === 'unverified' ? got.why : '', c.why);
    });
  }
});

describe('needsStoredJwks', () => {
  const cases: { name: string; source: string; previous: KeyRecord[] | undefined; expected: boolean }[] = [
    {
      name: 'no status: nothing retained',
      source: jwksJson([RSA_PUBLIC]),
      previous: undefined,
      expected: false,
    },
    {
      name: 'every recorded key still served',
      source: jwksJson([RSA_PUBLIC, EC_PUBLIC]),
      previous: [rec(RSA, at(-DAY)), rec(EC, at(-DAY))],
      expected: false,
    },
    {
      name: 'a recorded key left the source',
      source: jwksJson([EC_PUBLIC]),
      previous: [rec(RSA, at(-DAY)), rec(EC, at(-DAY))],
      expected: true,
    },
    {
      name: 'a record without parameters, from before retention',
      source: jwksJson([EC_PUBLIC]),
      previous: [bare(RSA)],
      expected: false,
    },
    {
      name: 'a source JWKS that does not parse',
      source: '{',
      previous: [rec(RSA, at(-DAY))],
      expected: false,
    },
    {
      name: 'a recorded kid served with another alg',
      source: jwksJson([{ ...RSA_PUBLIC, alg: 'PS256' }, EC_PUBLIC]),
      previous: [rec(RSA, at(-DAY)), rec(EC, at(-DAY))],
      expected: true,
    },
    {
      name: 'a recorded kid served with other key material',
      source: jwksJson([{ ...RSA_PUBLIC, ...OTHER_RSA_MATERIAL }, EC_PUBLIC]),
      previous: [rec(RSA, at(-DAY)), rec(EC, at(-DAY))],
      expected: true,
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(needsStoredJwks(c.source, c.previous), c.expected));
  }
});

describe('retainKeys: a kid is a label, the key material (RFC 7638 thumbprint) is the key', () => {
  const cases: {
    name: string;
    previous: KeyRecord[];
    /** The summary of the rsa-1 record. */
    record: string;
    changes: string[];
  }[] = [
    {
      name: 'the source serves a recorded kid with other material: the old key removed, the new one added and first seen now',
      previous: [rec(RSA, at(-10 * DAY)), rec(EC, at(-10 * DAY))],
      record: `rsa-1 ${at(0)}`,
      changes: [`removed rsa-1 ${jwkThumbprint(RSA)}`, `added rsa-1 ${jwkThumbprint(SWAPPED)}`],
    },
    {
      name: 'a retired kid comes back with other material: not restored, a new key',
      previous: [rec(RSA, at(-10 * DAY), at(-DAY), at(0)), rec(EC, at(-10 * DAY))],
      record: `rsa-1 ${at(0)}`,
      changes: [`removed rsa-1 ${jwkThumbprint(RSA)}`, `added rsa-1 ${jwkThumbprint(SWAPPED)}`],
    },
    {
      name: 'status edited to the new material, the JWKS the operator published holds the old: still a new key',
      previous: [{ ...rec(SWAPPED, at(-10 * DAY)) }, rec(EC, at(-10 * DAY))],
      record: `rsa-1 ${at(0)}`,
      changes: [`removed rsa-1 ${jwkThumbprint(RSA)}`, `added rsa-1 ${jwkThumbprint(SWAPPED)}`],
    },
    {
      name: 'no status record, the JWKS the operator published holds other material under the kid: a new key',
      previous: [rec(EC, at(-10 * DAY))],
      record: `rsa-1 ${at(0)}`,
      changes: [`removed rsa-1 ${jwkThumbprint(RSA)}`, `added rsa-1 ${jwkThumbprint(SWAPPED)}`],
    },
    {
      name: 'the same material under another alg is the same key',
      previous: [
        { ...rec(RSA, at(-10 * DAY)), alg: 'PS256', jwk: { ...RSA, alg: 'PS256' } },
        rec(EC, at(-10 * DAY)),
      ],
      record: `rsa-1 ${at(-10 * DAY)}`,
      changes: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const source = c.name.includes('alg') ? [RSA, EC] : [SWAPPED, EC];
      const got = retainKeys(source, c.previous, NOW, DAY, STORED);
      assert.deepEqual(
        got.published.map((k) => jwkThumbprint(k)),
        source.map((k) => jwkThumbprint(k)),
        'the source keys are published, nothing retained under their kids',
      );
      assert.equal(summary(got.records.find((r) => r.kid === 'rsa-1')!), c.record);
      assert.deepEqual(
        got.changes.map((x) => [x.kind, x.kid, x.thumbprint].filter(Boolean).join(' ')),
        c.changes,
      );
    });
  }
});

describe('provenKeys: what the operator published, by kid, as status and the stored JWKS agree', () => {
  const cases: {
    name: string;
    previous: KeyRecord[];
    stored: StoredJwks;
    proven: string[];
  }[] = [
    {
      name: 'served and retired records whose material the stored JWKS holds',
      previous: [rec(RSA, at(-DAY)), rec(EC, at(-DAY), at(-H)), bare(ED)],
      stored: STORED,
      proven: ['rsa-1', 'ec-1'],
    },
    {
      name: 'a record whose material the stored JWKS does not hold under its kid (status is writable)',
      previous: [{ ...rec(RSA, at(-DAY)), jwk: { ...SWAPPED } }, rec(EC, at(-DAY))],
      stored: STORED,
      proven: ['ec-1'],
    },
    {
      name: 'a retired record past its retention',
      previous: [rec(RSA, at(-3 * DAY), at(-2 * DAY)), rec(EC, at(-DAY))],
      stored: STORED,
      proven: ['ec-1'],
    },
    {
      name: 'a stored JWKS changed in storage proves nothing',
      previous: [rec(RSA, at(-DAY)), rec(EC, at(-DAY))],
      stored: stored([RSA, EC], 'f'.repeat(64)),
      proven: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = provenKeys(c.previous, c.stored, NOW, DAY);
      assert.deepEqual([...got.keys()], c.proven);
      for (const [kid, key] of got) assert.deepEqual(key, BY_KID.get(kid), `${kid}: the stored key`);
    });
  }
});

describe('retainKeys: a retired key needs the MAC the operator sealed its record with', () => {
  const KEY = macKey(Buffer.alloc(32, 1));
  const SEAL: RecordSeal = { key: KEY, publisherUID: 'uid-a' };
  /** `r` as the operator wrote it: sealed with `seal`. */
  const sealed = (r: KeyRecord, seal: RecordSeal = SEAL): KeyRecord => ({
    ...r,
    mac: recordMac(seal, r.kid, r.jwk ?? {}, r.retiredAt),
  });
  /** The bucket and status written together: the forged key in a stored JWKS whose hash matches. */
  const BOTH = stored([RSA, EC, ED, FORGED]);
  const cases: {
    name: string;
    previous: KeyRecord[];
    stored?: StoredJwks;
    /** The kids published, the source's ec-1 first. */
    published: string[];
    why?: RegExp;
  }[] = [
    {
      name: 'keeps a retired key whose record the operator sealed (retiring now, and retired earlier)',
      previous: [sealed(rec(RSA, at(-DAY))), sealed(rec(ED, at(-DAY), at(-H)))],
      published: ['ec-1', 'rsa-1', 'ed-1'],
    },
    {
      name: 'refuses a record without a MAC, even when the stored JWKS holds the key with a matching hash',
      previous: [rec(FORGED, at(-DAY), at(-H))],
      stored: BOTH,
      published: ['ec-1'],
      why: /carries no MAC of the operator/,
    },
    {
      name: "refuses another record's MAC copied onto a forged record",
      previous: [{ ...rec(FORGED, at(-DAY), at(-H)), mac: sealed(rec(RSA, at(-DAY), at(-H))).mac }],
      stored: BOTH,
      published: ['ec-1'],
      why: /does not match its kid, key parameters and retiredAt/,
    },
    {
      name: "refuses a record another OidcPublisher's status holds (sealed for another UID)",
      previous: [sealed(rec(RSA, at(-DAY), at(-H)), { key: KEY, publisherUID: 'uid-b' })],
      published: ['ec-1'],
      why: /does not match its kid, key parameters and retiredAt/,
    },
    {
      name: 'refuses a sealed record whose retiredAt was moved forward',
      previous: [{ ...sealed(rec(RSA, at(-DAY), at(-H))), retiredAt: at(-1000) }],
      published: ['ec-1'],
      why: /does not match its kid, key parameters and retiredAt/,
    },
    {
      name: 'refuses a record sealed with another key, naming both key ids',
      previous: [
        sealed(rec(RSA, at(-DAY), at(-H)), { key: macKey(Buffer.alloc(32, 2)), publisherUID: 'uid-a' }),
      ],
      published: ['ec-1'],
      why: new RegExp(`made with integrity key [0-9a-f]{8}, the operator holds key ${KEY.id}`),
    },
    {
      name: 'refuses a MAC of no known format',
      previous: [{ ...rec(RSA, at(-DAY), at(-H)), mac: `v1.${KEY.id}.short` }],
      published: ['ec-1'],
      why: /no known format/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = retainKeys([EC], c.previous, NOW, DAY, c.stored ?? STORED, SEAL);
      assert.deepEqual(
        got.published.map((k) => k.kid),
        c.published,
        'the keys published (expected) vs. what retention published (actual)',
      );
      const refused = got.changes.filter((x) => x.kind === 'refused');
      if (c.why) {
        assert.equal(refused.length, 1, `one record refused: ${JSON.stringify(got.changes)}`);
        assert.match(refused[0]?.why ?? '', c.why);
      } else assert.deepEqual(refused, []);
      // Every record written carries a MAC that verifies, so the next sync keeps what this one kept.
      for (const r of got.records)
        assert.equal(macProblem(SEAL, r, r.jwk ?? {}), undefined, `the record of ${r.kid} is sealed`);
      const next = retainKeys([EC], got.records, NOW, DAY, stored(got.published), SEAL);
      assert.deepEqual(
        next.published.map((k) => k.kid),
        c.published,
        'the next sync publishes the same keys',
      );
    });
  }

  it('a record is sealed over its publisher, kid, key and retiredAt: the MAC changes with each', () => {
    const base = recordMac(SEAL, RSA.kid, RSA, undefined);
    assert.match(base, /^v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{43}$/);
    const variants = [
      recordMac({ ...SEAL, publisherUID: 'uid-b' }, RSA.kid, RSA, undefined),
      recordMac(SEAL, 'rsa-2', { ...RSA, kid: 'rsa-2' }, undefined),
      recordMac(SEAL, RSA.kid, { ...RSA, alg: 'RS512' }, undefined),
      recordMac(SEAL, RSA.kid, RSA, at(0)),
      recordMac({ ...SEAL, key: macKey(Buffer.alloc(32, 2)) }, RSA.kid, RSA, undefined),
    ];
    assert.equal(new Set([base, ...variants]).size, variants.length + 1, 'every variant has its own MAC');
    assert.equal(recordMac(SEAL, RSA.kid, { ...RSA }, undefined), base, 'deterministic');
  });

  it('provenKeys with a seal: only sealed records prove a key published, so status and the bucket together cannot make a kid conflict keep their key', () => {
    // The bucket and status written together: FORGED in a stored JWKS whose hash matches, and a
    // record of it without the operator's MAC (or with another record's).
    const forged = rec(FORGED, at(-DAY));
    const copied = { ...forged, mac: sealed(rec(RSA, at(-DAY))).mac };
    assert.deepEqual(
      [...provenKeys([forged], BOTH, NOW, DAY).keys()],
      [FORGED.kid],
      'without a seal, as before',
    );
    assert.deepEqual([...provenKeys([forged], BOTH, NOW, DAY, SEAL).keys()], [], 'unsealed record refused');
    assert.deepEqual([...provenKeys([copied], BOTH, NOW, DAY, SEAL).keys()], [], 'copied MAC refused');
    assert.deepEqual(
      [
        ...provenKeys(
          [sealed(rec(RSA, at(-DAY))), sealed(rec(EC, at(-DAY), at(-H)))],
          STORED,
          NOW,
          DAY,
          SEAL,
        ).keys(),
      ],
      ['rsa-1', 'ec-1'],
      'sealed records whose material the stored JWKS holds are proven',
    );
  });

  describe('the source serves a kid with new material and status was edited to match it before the sync', () => {
    // The honest record of rsa-1, sealed over the old material; the attacker (status writer) then
    // sets its jwk to what the source now serves (SWAPPED), or drops the jwk, keeping the MAC.
    const honest = sealed(rec(RSA, at(-10 * DAY)));
    const edited = { ...honest, jwk: { ...SWAPPED } };
    const { jwk: _dropped, ...withoutJwk } = honest;
    const source = JSON.stringify({ keys: [SWAPPED, EC] });
    const ecRecord = sealed(rec(EC, at(-10 * DAY)));
    for (const [name, record] of [
      ['jwk edited to the new material', edited],
      ['jwk removed', withoutJwk as KeyRecord],
    ] as const) {
      it(`${name}: the stored JWKS is read, and the key is new: removed and added, first seen now`, () => {
        assert.equal(needsStoredJwks(source, [record, ecRecord], SEAL), true, 'the stored JWKS is needed');
        for (const [what, s] of [
          ['the stored JWKS holds the old material', STORED],
          ['the stored JWKS could not be read', undefined],
        ] as const) {
          const got = retainKeys([SWAPPED, EC], [record, ecRecord], NOW, DAY, s, SEAL);
          assert.equal(
            summary(got.records.find((r) => r.kid === 'rsa-1')!),
            `rsa-1 ${at(0)}`,
            `${what}: first seen now`,
          );
          assert.ok(
            got.changes.some((c) => c.kind === 'added' && c.kid === 'rsa-1'),
            `${what}: KeyAdded for rsa-1, got ${JSON.stringify(got.changes)}`,
          );
        }
      });
    }
    it('the honest, sealed record of the key served: no stored read, no change, first seen kept', () => {
      assert.equal(needsStoredJwks(JSON.stringify({ keys: [RSA, EC] }), [honest, ecRecord], SEAL), false);
      const got = retainKeys([RSA, EC], [honest, ecRecord], NOW, DAY, undefined, SEAL);
      assert.deepEqual(got.changes, []);
      assert.equal(summary(got.records.find((r) => r.kid === 'rsa-1')!), `rsa-1 ${at(-10 * DAY)}`);
    });
    it('a record from before the MAC whose material the stored JWKS holds: the same key, first seen kept', () => {
      const legacy = rec(RSA, at(-10 * DAY));
      assert.equal(needsStoredJwks(JSON.stringify({ keys: [RSA, EC] }), [legacy, ecRecord], SEAL), true);
      const got = retainKeys([RSA, EC], [legacy, ecRecord], NOW, DAY, STORED, SEAL);
      assert.deepEqual(got.changes, []);
      assert.equal(summary(got.records.find((r) => r.kid === 'rsa-1')!), `rsa-1 ${at(-10 * DAY)}`);
    });
  });
});
