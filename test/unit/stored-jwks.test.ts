/**
 * Reading back the JWKS a publisher wrote, for key retention, from a real store (a temporary
 * directory behind the FileStore): missing, verified, bytes changed behind the operator's back,
 * and an object this publisher did not write.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readStoredJwks } from '../../src/controller/stored-jwks.ts';
import { type Ownership, prepare } from '../../src/core/plan.ts';
import { FileStore } from '../../src/stores/file.ts';
import { discoveryJson, jwksJson, RSA_PUBLIC, resolvedSpec } from './fixtures.ts';

const KEY = 'openid/v1/jwks';

describe('readStoredJwks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stored-jwks-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new FileStore(dir);
  const prep = prepare(resolvedSpec(), { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC]) });
  if (prep.kind !== 'ready') throw new Error(`fixture: expected a ready preparation, got ${prep.kind}`);
  const jwks = prep.objects[0]!;
  const ownership = (recorded: string): Ownership => ({
    owner: { uid: 'uid-1', name: 'cluster-issuer' },
    recorded: new Map([[KEY, recorded]]),
  });

  it('reports a JWKS that is not there as missing', async () => {
    assert.deepEqual(await readStoredJwks(store, KEY), { state: 'missing' });
  });

  it('returns the keys of the JWKS as written, with the hash recorded with them', async () => {
    await store.put(KEY, jwks.body, {
      contentType: jwks.contentType,
      cacheControl: jwks.cacheControl,
      sha256: jwks.sha256,
    });
    const got = await readStoredJwks(store, KEY, ownership(jwks.sha256));
    assert.equal(got.state, 'verified', JSON.stringify(got));
    assert.deepEqual(got.state === 'verified' ? got.keys.map((k) => (k as { kid: string }).kid) : [], [
      'rsa-1',
    ]);
  });

  it('refuses an object this publisher did not write (no owner, not the hash its status recorded)', async () => {
    const got = await readStoredJwks(store, KEY, ownership('0'.repeat(64)));
    assert.equal(got.state, 'unverified', JSON.stringify(got));
    assert.match(got.state === 'unverified' ? got.why : '', /not written by this OidcPublisher/);
  });

  // The directory store hashes the bytes really there on HEAD (S3, GCS and Azure return the recorded
  // hash, checked against the bytes by storedJwks): an edited file is not the content status recorded.
  it('refuses bytes changed in storage behind the operator', async () => {
    writeFileSync(join(dir, KEY), JSON.stringify({ keys: [{ ...RSA_PUBLIC, kid: 'planted' }] }));
    const got = await readStoredJwks(store, KEY, ownership(jwks.sha256));
    assert.equal(got.state, 'unverified', JSON.stringify(got));
    assert.match(got.state === 'unverified' ? got.why : '', /not the content it recorded publishing/);
  });
});
