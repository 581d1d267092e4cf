/**
 * Ownership of published objects: an OidcPublisher overwrites or deletes only
 * what it wrote (its UID in the object's metadata), what it recorded writing
 * before owners were recorded (no owner, the hash of its status.objects), or
 * nothing at all (absent). Everything else is left alone.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deleteObjects, publishObjects, type WriteMemo } from '../../src/controller/publish-objects.ts';
import {
  type Claim,
  claimOf,
  type Ownership,
  planWrites,
  prepare,
  type RenderedObject,
  refuseForeign,
  type StoredObject,
} from '../../src/core/plan.ts';
import {
  azureMetadataKey,
  HASH_METADATA_KEY,
  OWNER_NAME_METADATA_KEY,
  OWNER_UID_METADATA_KEY,
  objectMetadata,
  type PutOptions,
  readMetadata,
} from '../../src/stores/store.ts';
import { discoveryJson, jwksJson, RSA_PUBLIC, resolvedSpec } from './fixtures.ts';

const ME = { uid: 'uid-me', name: 'me' };
const ownership = (recorded: Record<string, string> = {}): Ownership => ({
  owner: ME,
  recorded: new Map(Object.entries(recorded)),
});

describe('claimOf', () => {
  const cases: [string, StoredObject | undefined, Record<string, string>, Claim][] = [
    ['nothing at the key', undefined, {}, 'absent'],
    ['its own UID', { sha256: 'a', ownerUID: 'uid-me', ownerName: 'me' }, {}, 'owned'],
    ['its own UID, whatever the hash', { sha256: 'zzz', ownerUID: 'uid-me' }, { k: 'a' }, 'owned'],
    ['another UID', { sha256: 'a', ownerUID: 'uid-other', ownerName: 'other' }, {}, 'foreign'],
    [
      'another UID with the hash it recorded (the name is reused, the UID is not)',
      { sha256: 'a', ownerUID: 'uid-other', ownerName: 'me' },
      { k: 'a' },
      'foreign',
    ],
    ['an empty owner UID', { sha256: 'a', ownerUID: '' }, { k: 'a' }, 'foreign'],
    ['no owner, the hash it recorded (an earlier version wrote it)', { sha256: 'a' }, { k: 'a' }, 'recorded'],
    ['no owner, another hash', { sha256: 'b' }, { k: 'a' }, 'foreign'],
    ['no owner, no hash', {}, { k: 'a' }, 'foreign'],
    ['no owner, nothing recorded', { sha256: 'a' }, {}, 'foreign'],
    ['no owner, the hash recorded for another key', { sha256: 'a' }, { other: 'a' }, 'foreign'],
  ];
  for (const [name, stored, recorded, want] of cases) {
    it(`${name}: ${want}`, () => {
      assert.equal(claimOf('k', stored, ownership(recorded)), want);
    });
  }
});

function rendered(): RenderedObject[] {
  const p = prepare(resolvedSpec(), { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC]) });
  assert.equal(p.kind, 'ready');
  return p.kind === 'ready' ? p.objects : [];
}

const asStored = (o: RenderedObject, extra: StoredObject = {}): StoredObject => ({
  sha256: o.sha256,
  contentType: o.contentType,
  cacheControl: o.cacheControl,
  ...extra,
});

describe('planWrites with an owner', () => {
  it('rewrites an object it recorded writing so that it records the owner, and leaves owned ones', () => {
    const objects = rendered();
    const [jwks, discovery] = objects as [RenderedObject, RenderedObject];
    const writes = planWrites(
      objects,
      [asStored(jwks), asStored(discovery, { ownerUID: ME.uid })],
      false,
      ME,
    );
    assert.deepEqual(
      writes.map((w) => `${w.object.role}:${w.why}`),
      ['jwks:owner not recorded'],
    );
  });

  it('without an owner (oidc-publisher publish) plans as before', () => {
    const objects = rendered();
    assert.deepEqual(
      planWrites(
        objects,
        objects.map((o) => asStored(o)),
      ),
      [],
    );
  });
});

describe('refuseForeign', () => {
  it('names every foreign object and whose it is, in one OBJECT_NOT_OWNED', () => {
    const err = refuseForeign(
      ['a', 'b', 'c'],
      [{ ownerUID: 'uid-x', ownerName: 'x', sha256: '1' }, undefined, { sha256: '2' }],
      ownership(),
      'nothing was written',
    );
    assert.equal(err?.code, 'OBJECT_NOT_OWNED');
    assert.match(err?.message ?? '', /a was written by OidcPublisher "x" \(uid uid-x\)/);
    assert.match(err?.message ?? '', /c exists and was not written by this OidcPublisher/);
    assert.doesNotMatch(err?.message ?? '', /\bb\b was/);
    assert.match(err?.message ?? '', /delete them from the bucket/);
  });

  it('refuses nothing when every object is absent, owned or recorded', () => {
    assert.equal(
      refuseForeign(
        ['a', 'b', 'c'],
        [undefined, { ownerUID: ME.uid }, { sha256: 'h' }],
        ownership({ c: 'h' }),
        '',
      ),
      undefined,
    );
  });
});

/** A store in memory that records its calls; objects carry the metadata put gave them. */
function memoryStore(initial: Record<string, StoredObject> = {}) {
  const objects = new Map<string, StoredObject>(Object.entries(initial));
  const calls: string[] = [];
  return {
    calls,
    objects,
    async head(key: string) {
      calls.push(`HEAD ${key}`);
      return objects.get(key);
    },
    async put(key: string, _body: Buffer, opts: PutOptions) {
      calls.push(`PUT ${key}`);
      objects.set(
        key,
        readMetadata(objectMetadata(opts), {
          contentType: opts.contentType,
          cacheControl: opts.cacheControl,
        }),
      );
    },
    async delete(key: string) {
      calls.push(`DELETE ${key}`);
      objects.delete(key);
    },
  };
}

describe('publishObjects with an ownership', () => {
  it("writes nothing at all when one object is another publisher's, and says whose", async () => {
    const objects = rendered();
    const [, discovery] = objects as [RenderedObject, RenderedObject];
    const foreign = { sha256: 'f', ownerUID: 'uid-other', ownerName: 'other' };
    const store = memoryStore({ [discovery.key]: foreign });
    await assert.rejects(
      publishObjects(store, objects, { ownership: ownership() }),
      (err: Error & { code?: string }) =>
        err.code === 'OBJECT_NOT_OWNED' && /written by OidcPublisher "other"/.test(err.message),
    );
    assert.deepEqual(
      store.calls.filter((c) => c.startsWith('PUT')),
      [],
      'not even the JWKS, which was absent',
    );
    assert.deepEqual(store.objects.get(discovery.key), foreign);
  });

  it('refuses an object without owner metadata whose hash is not the one it recorded', async () => {
    const objects = rendered();
    const [jwks] = objects as [RenderedObject];
    const store = memoryStore({ [jwks.key]: { sha256: 'someone-else' } });
    await assert.rejects(publishObjects(store, objects, { ownership: ownership({ [jwks.key]: 'mine' }) }), {
      code: 'OBJECT_NOT_OWNED',
    });
    assert.equal(store.calls.filter((c) => c.startsWith('PUT')).length, 0);
  });

  it('records its UID and name on what it writes, and takes over objects it recorded writing', async () => {
    const objects = rendered();
    const [jwks, discovery] = objects as [RenderedObject, RenderedObject];
    const store = memoryStore({ [jwks.key]: asStored(jwks) });
    const { writes } = await publishObjects(store, objects, {
      ownership: ownership({ [jwks.key]: jwks.sha256 }),
    });
    assert.deepEqual(
      writes.map((w) => `${w.object.role}:${w.why}`),
      ['jwks:owner not recorded', 'discovery:missing'],
    );
    for (const o of [jwks, discovery]) {
      assert.equal(store.objects.get(o.key)?.ownerUID, ME.uid);
      assert.equal(store.objects.get(o.key)?.ownerName, ME.name);
    }
    const again = await publishObjects(store, objects, { ownership: ownership() });
    assert.deepEqual(again.writes, [], 'its own objects are up to date');
  });

  it('HEADs before writing an object the memo remembers under another owner', async () => {
    const objects = rendered();
    const [jwks] = objects as [RenderedObject];
    const store = memoryStore({ [jwks.key]: { sha256: 'x', ownerUID: 'uid-other' } });
    const memo: WriteMemo = new Map([[jwks.key, { sha256: 'x', ownerUID: 'uid-other' }]]);
    await assert.rejects(publishObjects(store, objects, { ownership: ownership(), memo }), {
      code: 'OBJECT_NOT_OWNED',
    });
    assert.ok(
      store.calls.includes(`HEAD ${jwks.key}`),
      'the remembered object was HEADed, not written blindly',
    );
  });
});

describe('deleteObjects', () => {
  it('deletes what it owns or recorded, leaves every other object in place, in order', async () => {
    const store = memoryStore({
      mine: { sha256: '1', ownerUID: ME.uid },
      legacy: { sha256: 'h' },
      other: { sha256: '2', ownerUID: 'uid-other', ownerName: 'other' },
      stranger: { sha256: '3' },
    });
    const result = await deleteObjects(
      store,
      ['other', 'mine', 'gone', 'legacy', 'stranger'],
      ownership({ legacy: 'h', stranger: 'not-3' }),
    );
    assert.deepEqual(result.deleted, ['mine', 'gone', 'legacy']);
    assert.deepEqual(
      result.kept.map((k) => k.key),
      ['other', 'stranger'],
    );
    assert.deepEqual([...store.objects.keys()].sort(), ['other', 'stranger']);
    assert.deepEqual(
      store.calls.filter((c) => c.startsWith('DELETE')),
      ['DELETE mine', 'DELETE legacy'],
    );
  });
});

describe('owner metadata', () => {
  it('is written next to the hash, and without hyphens for Azure', () => {
    const opts: PutOptions = { contentType: 'a', cacheControl: 'b', sha256: 'h', owner: ME };
    assert.deepEqual(objectMetadata(opts), {
      [HASH_METADATA_KEY]: 'h',
      [OWNER_UID_METADATA_KEY]: 'uid-me',
      [OWNER_NAME_METADATA_KEY]: 'me',
    });
    assert.deepEqual(objectMetadata(opts, azureMetadataKey), {
      oidcpublishersha256: 'h',
      oidcpublisherowneruid: 'uid-me',
      oidcpublisherownername: 'me',
    });
    assert.deepEqual(readMetadata(objectMetadata(opts, azureMetadataKey), {}, azureMetadataKey), {
      sha256: 'h',
      ownerUID: 'uid-me',
      ownerName: 'me',
    });
  });

  it('is not written by oidc-publisher publish, which has no owner', () => {
    assert.deepEqual(objectMetadata({ contentType: 'a', cacheControl: 'b', sha256: 'h' }), {
      [HASH_METADATA_KEY]: 'h',
    });
  });

  it('is read only from own properties of the metadata', () => {
    const inherited = Object.create({ [OWNER_UID_METADATA_KEY]: 'uid-me' }) as Record<string, unknown>;
    assert.deepEqual(readMetadata(inherited, {}), {});
  });
});
