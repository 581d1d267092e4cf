/**
 * The directory store of `publish --to file://<dir>`: its key rules (pure), and
 * its behaviour on a real temporary directory: atomic writes, metadata for
 * head(), a second publish that writes nothing, and no write outside <dir>.
 */
import assert from 'node:assert/strict';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { publishObjects } from '../../src/controller/publish-objects.ts';
import { sha256Hex } from '../../src/core/documents.ts';
import { prepare, type RenderedObject } from '../../src/core/plan.ts';
import { OidcPublisherError } from '../../src/errors.ts';
import { FileStore, keySegments, METADATA_DIR, parseMetadata } from '../../src/stores/file.ts';
import { discoveryJson, jwksJson, RSA_PUBLIC, resolvedSpec } from './fixtures.ts';

describe('file store keys', () => {
  it('splits a key into its path segments', () => {
    assert.deepEqual(keySegments('.well-known/openid-configuration'), [
      '.well-known',
      'openid-configuration',
    ]);
    assert.deepEqual(keySegments('a/openid/v1/jwks'), ['a', 'openid', 'v1', 'jwks']);
  });

  const refused: [string, string][] = [
    ['an empty key', ''],
    ['an absolute key', '/etc/passwd'],
    ['a .. segment', 'a/../../etc/passwd'],
    ['a . segment', 'a/./b'],
    ['an empty segment', 'a//b'],
    ['a trailing slash', 'a/b/'],
    ['a backslash', 'a\\..\\b'],
    ['a NUL', 'a\u0000b'],
    ['the metadata directory', `${METADATA_DIR}/x.json`],
  ];
  for (const [what, key] of refused) {
    it(`refuses ${what}`, () => {
      assert.throws(
        () => keySegments(key),
        (err: unknown) => err instanceof OidcPublisherError && err.code === 'STORAGE_ERROR',
      );
    });
  }

  it('parses metadata, ignoring what is not a string field of a JSON object', () => {
    assert.deepEqual(parseMetadata('{"contentType":"a","cacheControl":"b","sha256":"c","x":1}'), {
      contentType: 'a',
      cacheControl: 'b',
      sha256: 'c',
    });
    assert.deepEqual(parseMetadata('{"contentType":1}'), {});
    assert.deepEqual(parseMetadata('[1]'), {});
    assert.deepEqual(parseMetadata('not json'), {});
  });
});

describe('file store on a directory', () => {
  const base = mkdtempSync(join(tmpdir(), 'oidc-file-store-'));
  after(() => rmSync(base, { recursive: true, force: true }));
  let n = 0;
  const freshDir = () => {
    const dir = join(base, `d${++n}`);
    mkdirSync(dir);
    return dir;
  };
  const objects = (prefix = ''): RenderedObject[] => {
    const spec = resolvedSpec();
    const p = prepare(
      { ...spec, storage: { ...spec.storage, prefix } },
      { discovery: discoveryJson(), jwks: jwksJson([RSA_PUBLIC]) },
    );
    assert.equal(p.kind, 'ready');
    return p.kind === 'ready' ? p.objects : [];
  };
  /** Every file under dir, relative. */
  const files = (dir: string): string[] =>
    (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
      .filter((d) => d.isFile())
      .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
      .sort();

  it('writes <dir>/<key> with the rendered bytes and its headers in the metadata, and nothing else', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    const result = await publishObjects(store, objects('issuer'));
    assert.equal(result.writes.length, 2);
    assert.deepEqual(files(dir), [
      '.oidc-publisher/issuer/.well-known/openid-configuration.json',
      '.oidc-publisher/issuer/openid/v1/jwks.json',
      'issuer/.well-known/openid-configuration',
      'issuer/openid/v1/jwks',
    ]);
    const [jwks] = objects('issuer');
    assert.ok(jwks);
    assert.deepEqual(readFileSync(join(dir, 'issuer/openid/v1/jwks')), jwks.body);
    assert.deepEqual(
      JSON.parse(readFileSync(join(dir, '.oidc-publisher/issuer/openid/v1/jwks.json'), 'utf8')),
      {
        contentType: 'application/jwk-set+json',
        cacheControl: 'public, max-age=300',
        sha256: jwks.sha256,
      },
    );
    assert.deepEqual(await store.head('issuer/openid/v1/jwks'), {
      sha256: jwks.sha256,
      contentType: 'application/jwk-set+json',
      cacheControl: 'public, max-age=300',
    });
    assert.deepEqual(await store.get('issuer/openid/v1/jwks'), jwks.body);
  });

  it('writes nothing on a second publish of the same documents', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    await publishObjects(store, objects());
    const again = await publishObjects(store, objects());
    assert.deepEqual(again.writes, []);
    assert.equal(again.upToDate.length, 2);
  });

  it('rewrites a file edited behind its back (the hash is of the bytes, not of the metadata)', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    await publishObjects(store, objects());
    writeFileSync(join(dir, 'openid/v1/jwks'), '{"keys":[]}');
    assert.equal((await store.head('openid/v1/jwks'))?.sha256, sha256Hex(Buffer.from('{"keys":[]}')));
    const again = await publishObjects(store, objects());
    assert.deepEqual(
      again.writes.map((w) => `${w.object.role}:${w.why}`),
      ['jwks:content changed'],
    );
  });

  it('rewrites a file whose metadata is gone (headers unknown)', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    await publishObjects(store, objects());
    rmSync(join(dir, METADATA_DIR), { recursive: true });
    const again = await publishObjects(store, objects());
    assert.deepEqual(
      again.writes.map((w) => w.why),
      ['headers changed', 'headers changed'],
    );
  });

  it('reports a missing object as missing, and a missing directory as STORAGE_BUCKET_NOT_FOUND', async () => {
    const store = new FileStore(freshDir());
    assert.equal(await store.head('openid/v1/jwks'), undefined);
    assert.equal(await store.get('openid/v1/jwks'), undefined);
    const gone = new FileStore(join(base, 'no-such-dir'));
    await assert.rejects(
      gone.head('openid/v1/jwks'),
      (err: unknown) => err instanceof OidcPublisherError && err.code === 'STORAGE_BUCKET_NOT_FOUND',
    );
  });

  it('refuses to write through a symbolic link to a directory outside <dir>', async () => {
    const dir = freshDir();
    const outside = freshDir();
    symlinkSync(outside, join(dir, 'openid'));
    const store = new FileStore(dir);
    await assert.rejects(publishObjects(store, objects()), /symbolic link: refusing to write through it/);
    assert.deepEqual(readdirSync(outside), [], 'nothing was written outside <dir>');
  });

  it('replaces a file that is a symbolic link, without writing to its target', async () => {
    const dir = freshDir();
    const outside = join(freshDir(), 'victim');
    writeFileSync(outside, 'untouched');
    mkdirSync(join(dir, 'openid', 'v1'), { recursive: true });
    symlinkSync(outside, join(dir, 'openid', 'v1', 'jwks'));
    const store = new FileStore(dir);
    assert.deepEqual(await store.head('openid/v1/jwks'), {}, 'a link is not taken for the object');
    await publishObjects(store, objects());
    assert.equal(readFileSync(outside, 'utf8'), 'untouched');
    const [jwks] = objects();
    assert.deepEqual(readFileSync(join(dir, 'openid/v1/jwks')), jwks?.body);
  });

  it('leaves no temporary file behind, and deletes an object with its metadata', async () => {
    const dir = freshDir();
    const store = new FileStore(dir);
    await publishObjects(store, objects());
    assert.ok(
      files(dir).every((f) => !f.endsWith('.tmp')),
      `files: ${files(dir).join(', ')}`,
    );
    await store.delete('openid/v1/jwks');
    await store.delete('openid/v1/jwks');
    assert.deepEqual(files(dir), [
      '.oidc-publisher/.well-known/openid-configuration.json',
      '.well-known/openid-configuration',
    ]);
  });
});
