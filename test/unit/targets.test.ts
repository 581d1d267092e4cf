/**
 * Overlapping storage targets: which OidcPublishers write the same objects,
 * and which one of them may (the earliest by creationTimestamp, then name).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OidcPublisherSpec } from '../../src/api/types.ts';
import { type Claimant, conflictFor, isEarlier, targetObjects } from '../../src/core/targets.ts';

type Storage = OidcPublisherSpec['storage'];
const s3 = (bucket: string, prefix?: string, extra: Record<string, unknown> = {}): Storage => ({
  s3: { bucket, region: 'eu-west-1', ...(prefix === undefined ? {} : { prefix }), ...extra },
});
const gcs = (bucket: string, prefix?: string): Storage => ({
  gcs: { bucket, ...(prefix === undefined ? {} : { prefix }) },
});
const azure = (accountURL: string, container: string, prefix?: string): Storage => ({
  azureBlob: { accountURL, container, ...(prefix === undefined ? {} : { prefix }) },
});

describe('targetObjects', () => {
  it('names both objects with backend, bucket and key', () => {
    assert.deepEqual(targetObjects(s3('b', 'clusters/a')), [
      's3/b/clusters/a/.well-known/openid-configuration',
      's3/b/clusters/a/openid/v1/jwks',
    ]);
    assert.deepEqual(targetObjects(azure('https://acct.blob.core.windows.net/', 'c')), [
      'azblob/acct/c/.well-known/openid-configuration',
      'azblob/acct/c/openid/v1/jwks',
    ]);
  });

  it('names nothing for a spec without exactly one storage', () => {
    assert.equal(targetObjects(undefined), undefined);
    assert.equal(targetObjects({} as Storage), undefined);
    assert.equal(targetObjects({ ...s3('b'), ...gcs('b') }), undefined);
  });
});

describe('conflictFor', () => {
  const at = (name: string, minute: number, storage: Storage | undefined): Claimant => ({
    name,
    creationTimestamp: `2026-01-01T00:${String(minute).padStart(2, '0')}:00Z`,
    objects: targetObjects(storage),
  });
  /** [case, self's storage, other's storage, overlap?] with the other created first. */
  const table: [string, Storage | undefined, Storage | undefined, boolean][] = [
    ['same S3 bucket and prefix', s3('b', 'p'), s3('b', 'p'), true],
    ['same bucket, prefix with and without a trailing slash', s3('b', 'p/'), s3('b', 'p'), true],
    ['same bucket, no prefix and an empty one', s3('b'), s3('b', ''), true],
    ['bucket names differ only in case', s3('B', 'p'), s3('b', 'p'), true],
    [
      'same S3 bucket through another endpoint and region (bucket names are global)',
      s3('b', 'p', { endpoint: 'https://s3.example.com', region: 'us-east-1' }),
      s3('b', 'p'),
      true,
    ],
    [
      'an S3 endpoint naming the other bucket in its host, path style (the bucket the requests reach)',
      s3('mine', 'p', { endpoint: 'https://victim.s3.us-east-1.amazonaws.com', forcePathStyle: true }),
      s3('victim', 'mine/p'),
      true,
    ],
    [
      'the same, in upper case with a trailing dot',
      s3('mine', 'p', { endpoint: 'https://VICTIM.S3.US-EAST-1.AMAZONAWS.COM.', forcePathStyle: true }),
      s3('victim', 'mine/p'),
      true,
    ],
    [
      'an S3 endpoint naming a bucket in its host, virtual-hosted style: <bucket>.<that bucket>',
      s3('mine', 'p', { endpoint: 'https://victim.s3.us-east-1.amazonaws.com' }),
      s3('mine.victim', 'p'),
      true,
    ],
    [
      'an S3 endpoint naming the other bucket, but not the prefix it writes',
      s3('mine', 'p', { endpoint: 'https://victim.s3.us-east-1.amazonaws.com', forcePathStyle: true }),
      s3('victim', 'p'),
      false,
    ],
    ['same GCS bucket and prefix', gcs('b', 'p'), gcs('b', 'p'), true],
    [
      'same Azure account and container through another host spelling',
      azure('https://ACCT.blob.core.windows.net', 'c', 'p'),
      azure('https://acct.blob.core.windows.net/', 'c', 'p'),
      true,
    ],
    [
      'same emulator account (path segment) and container',
      azure('http://127.0.0.1:10000/devstoreaccount1', 'c'),
      azure('https://localhost:10000/devstoreaccount1', 'c'),
      true,
    ],
    ['nested prefixes write different objects', s3('b', 'p/q'), s3('b', 'p'), false],
    ['a prefix that is another one with a suffix', s3('b', 'pq'), s3('b', 'p'), false],
    ['other bucket, same prefix', s3('a', 'p'), s3('b', 'p'), false],
    ['S3 and GCS buckets of one name', s3('b', 'p'), gcs('b', 'p'), false],
    [
      'other Azure container',
      azure('https://acct.blob.core.windows.net', 'c1'),
      azure('https://acct.blob.core.windows.net', 'c2'),
      false,
    ],
    [
      'other Azure account',
      azure('https://a1.blob.core.windows.net', 'c'),
      azure('https://a2.blob.core.windows.net', 'c'),
      false,
    ],
    ['an earlier spec without storage', s3('b', 'p'), undefined, false],
  ];
  for (const [name, mine, theirs, overlap] of table) {
    it(`${name}: ${overlap ? 'the later one is refused, the earlier keeps it' : 'no conflict'}`, () => {
      const earlier = at('zzz-earlier', 1, theirs);
      const later = at('aaa-later', 2, mine);
      assert.equal(conflictFor(later, [earlier, later])?.name, overlap ? 'zzz-earlier' : undefined);
      assert.equal(conflictFor(earlier, [earlier, later]), undefined, 'the earlier one is never refused');
    });
  }

  it('breaks a tie of creationTimestamp by name', () => {
    const a = at('a', 1, s3('b', 'p'));
    const b = at('b', 1, s3('b', 'p'));
    assert.equal(conflictFor(b, [a, b])?.name, 'a');
    assert.equal(conflictFor(a, [a, b]), undefined);
  });

  it('names the earliest of several, and hands the target to the next when the earliest is gone', () => {
    const a = at('a', 1, s3('b', 'p'));
    const b = at('b', 2, s3('b', 'p'));
    const c = at('c', 3, s3('b', 'p'));
    assert.equal(conflictFor(c, [c, b, a])?.name, 'a');
    assert.equal(conflictFor(b, [c, b])?.name, undefined, 'b takes over once a is deleted');
    assert.equal(conflictFor(c, [c, b])?.name, 'b');
  });

  it('orders by time, not by the text of the timestamp', () => {
    const early: Claimant = { name: 'z', creationTimestamp: '2026-01-01T09:00:00Z', objects: [] };
    const late: Claimant = { name: 'a', creationTimestamp: '2026-01-01T10:00:00+00:00', objects: [] };
    assert.equal(isEarlier(early, late), true);
    assert.equal(isEarlier(late, early), false);
    assert.equal(
      isEarlier({ name: 'a', objects: [] }, early),
      false,
      'an object without a timestamp comes last',
    );
  });
});
