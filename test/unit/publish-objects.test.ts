/**
 * publishObjects, the publish step the controller and `publish` share: HEAD
 * both, write only what differs, JWKS first, nothing at all in a dry run.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { publishObjects } from '../../src/controller/publish-objects.ts';
import { prepare, type RenderedObject, type StoredObject } from '../../src/core/plan.ts';
import type { PutOptions } from '../../src/stores/store.ts';
import { discoveryJson, jwksJson, RSA_PUBLIC, resolvedSpec } from './fixtures.ts';

/** A store in memory that records its calls. */
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
      objects.set(key, { ...opts });
    },
  };
}

function rendered(): RenderedObject[] {
  const p = prepare(resolvedSpec(), { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC]) });
  assert.equal(p.kind, 'ready');
  return p.kind === 'ready' ? p.objects : [];
}

const stored = (o: RenderedObject): StoredObject => ({
  sha256: o.sha256,
  contentType: o.contentType,
  cacheControl: o.cacheControl,
});

describe('publishObjects', () => {
  it('writes missing objects, the JWKS before the discovery document, and reports each write', async () => {
    const objects = rendered();
    const store = memoryStore();
    const written: string[] = [];
    const result = await publishObjects(store, objects, {
      written: (w) => written.push(`${w.object.key}:${w.why}`),
    });
    assert.deepEqual(store.calls.slice(2), ['PUT openid/v1/jwks', 'PUT .well-known/openid-configuration']);
    assert.deepEqual(written, ['openid/v1/jwks:missing', '.well-known/openid-configuration:missing']);
    assert.deepEqual(
      result.writes.map((w) => w.object.role),
      ['jwks', 'discovery'],
    );
    assert.deepEqual(result.upToDate, []);
  });

  it('writes nothing the second time, and reports both objects as skipped', async () => {
    const objects = rendered();
    const store = memoryStore();
    await publishObjects(store, objects);
    store.calls.length = 0;
    const skipped: string[] = [];
    const result = await publishObjects(store, objects, { skipped: (o) => skipped.push(o.key) });
    assert.deepEqual(
      store.calls.filter((c) => c.startsWith('PUT')),
      [],
    );
    assert.deepEqual(result.writes, []);
    assert.deepEqual(skipped, ['openid/v1/jwks', '.well-known/openid-configuration']);
  });

  it('plans but makes no write in a dry run', async () => {
    const objects = rendered();
    const [jwks, discovery] = objects;
    assert.ok(jwks && discovery);
    const store = memoryStore({
      [jwks.key]: stored(jwks),
      [discovery.key]: { ...stored(discovery), sha256: 'old' },
    });
    const written: string[] = [];
    const result = await publishObjects(store, objects, {
      dryRun: true,
      written: (w) => written.push(w.why),
    });
    assert.deepEqual(store.calls.sort(), ['HEAD .well-known/openid-configuration', 'HEAD openid/v1/jwks']);
    assert.deepEqual(written, [], 'no write is reported as made');
    assert.deepEqual(
      result.writes.map((w) => `${w.object.role}:${w.why}`),
      ['discovery:content changed'],
    );
    assert.deepEqual(
      result.upToDate.map((o) => o.role),
      ['jwks'],
    );
  });

  it('rewrites everything with rewrite, whatever HEAD says', async () => {
    const objects = rendered();
    const store = memoryStore(Object.fromEntries(objects.map((o) => [o.key, stored(o)])));
    const result = await publishObjects(store, objects, { rewrite: true });
    assert.deepEqual(
      result.writes.map((w) => w.why),
      ['served content differs', 'served content differs'],
    );
  });

  it('stops at the first failed write: no discovery document pointing at a JWKS that is not there', async () => {
    const objects = rendered();
    const store = memoryStore();
    const failing = {
      head: store.head,
      async put(key: string) {
        store.calls.push(`PUT ${key}`);
        throw new Error('PUT failed');
      },
    };
    await assert.rejects(publishObjects(failing, objects), /PUT failed/);
    assert.deepEqual(
      store.calls.filter((c) => c.startsWith('PUT')),
      ['PUT openid/v1/jwks'],
    );
  });
  it('with a memo, writes an object that differs from what it last wrote without a HEAD first', async () => {
    const objects = rendered();
    const store = memoryStore();
    const memo = new Map<string, StoredObject>();
    await publishObjects(store, objects, { memo });
    store.calls.length = 0;
    const changed = objects.map((o) => ({ ...o, cacheControl: 'public, max-age=60' }));
    const result = await publishObjects(store, changed, { memo });
    assert.deepEqual(store.calls, ['PUT openid/v1/jwks', 'PUT .well-known/openid-configuration']);
    assert.deepEqual(
      result.writes.map((w) => w.why),
      ['headers changed', 'headers changed'],
    );
    assert.equal(
      memo.get(objects[0]?.key ?? '')?.cacheControl,
      'public, max-age=60',
      'the memo follows the writes',
    );
  });

  it('with a memo, still HEADs what it believes in place, so a deleted object is written again', async () => {
    const objects = rendered();
    const store = memoryStore();
    const memo = new Map<string, StoredObject>();
    await publishObjects(store, objects, { memo });
    store.objects.clear();
    store.calls.length = 0;
    const result = await publishObjects(store, objects, { memo });
    assert.deepEqual(store.calls.slice(0, 2).sort(), [
      'HEAD .well-known/openid-configuration',
      'HEAD openid/v1/jwks',
    ]);
    assert.deepEqual(
      result.writes.map((w) => w.why),
      ['missing', 'missing'],
    );
  });

  it('forgets an object whose write failed, and HEADs it next time', async () => {
    const objects = rendered();
    const store = memoryStore();
    const memo = new Map<string, StoredObject>();
    await publishObjects(store, objects, { memo });
    const failing = {
      head: store.head,
      async put() {
        throw new Error('PUT failed');
      },
    };
    const changed = objects.map((o) => ({ ...o, cacheControl: 'public, max-age=60' }));
    await assert.rejects(publishObjects(failing, changed, { memo }), /PUT failed/);
    assert.equal(memo.has(objects[0]?.key ?? ''), false, 'the JWKS, whose write failed, is forgotten');
  });
});
