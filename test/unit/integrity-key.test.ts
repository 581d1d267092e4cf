/**
 * The record MAC key's Secret: filled once, shared by replicas racing to fill it, given the held
 * key back when emptied or changed while a key is held, and never logged. The API server's answers come
 * from an in-memory Secret with resourceVersions (the e2e tests run the real one).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import {
  CHECK_MS,
  INTEGRITY_SECRET,
  INTEGRITY_SECRET_KEY,
  IntegrityKey,
} from '../../src/controller/integrity-key.ts';
import { macKey } from '../../src/core/record-mac.ts';
import { OidcPublisherError } from '../../src/errors.ts';
import type { OwnSecret } from '../../src/kube/cluster-client.ts';
import { createLogger } from '../../src/log.ts';

const NS = 'oidc-publisher-system';
const T0 = new Date('2025-06-01T12:00:00Z');
const later = (ms: number) => new Date(T0.getTime() + ms);

/**
 * One Secret as the API server keeps it, as the manifests install it (empty, with labels): an
 * update with a stale resourceVersion, or of a Secret that is gone, is a conflict.
 */
class SecretServer {
  secret: { rv: number; object: Record<string, unknown>; data: Map<string, Buffer> } | undefined;
  rv = 0;
  failure: Error | undefined;
  calls: string[] = [];
  /** Runs before a write lands: another writer racing this one. */
  beforeWrite: (() => void) | undefined;

  constructor() {
    this.set(undefined);
  }

  /** The Secret as someone else writes it (the manifests applied, another key put in). */
  set(data: Buffer | undefined): void {
    const rv = ++this.rv;
    this.secret = {
      rv,
      object: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: INTEGRITY_SECRET,
          namespace: NS,
          resourceVersion: String(rv),
          labels: { from: 'manifests' },
        },
      },
      data: new Map(data ? [[INTEGRITY_SECRET_KEY, data]] : []),
    };
  }

  async readOwnSecret(namespace: string, name: string): Promise<OwnSecret | undefined> {
    assert.deepEqual([namespace, name], [NS, INTEGRITY_SECRET]);
    this.calls.push('get');
    if (this.failure) throw this.failure;
    return this.secret && { object: structuredClone(this.secret.object), data: new Map(this.secret.data) };
  }

  async updateOwnSecret(
    _namespace: string,
    _name: string,
    read: OwnSecret,
    data: readonly (readonly [string, Uint8Array])[],
  ): Promise<'written' | 'conflict'> {
    this.calls.push('update');
    if (this.failure) throw this.failure;
    const race = this.beforeWrite;
    this.beforeWrite = undefined;
    race?.();
    const rv = (read.object.metadata as { resourceVersion?: string }).resourceVersion;
    if (!this.secret || String(this.secret.rv) !== rv) return 'conflict';
    const next = ++this.rv;
    this.secret = {
      rv: next,
      object: {
        ...read.object,
        metadata: { ...(read.object.metadata as object), resourceVersion: String(next) },
      },
      data: new Map(data.map(([k, v]) => [k, Buffer.from(v)])),
    };
    return 'written';
  }

  get stored(): Buffer | undefined {
    return this.secret?.data.get(INTEGRITY_SECRET_KEY);
  }
}

function harness(server = new SecretServer(), fill = 1) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l));
        cb();
      },
    }),
  });
  let n = fill;
  const keys = new IntegrityKey(server, NS, log, { newSecret: () => Buffer.alloc(32, n++) });
  return { server, keys, lines };
}

describe('IntegrityKey', () => {
  it('writes a new key into the empty Secret the manifests installed, keeps its labels, and reads it only once a minute', async () => {
    const { server, keys, lines } = harness();
    const key = await keys.get(T0);
    assert.deepEqual(server.stored, Buffer.alloc(32, 1), 'the Secret holds the new key');
    assert.deepEqual((server.secret?.object.metadata as { labels?: object } | undefined)?.labels, {
      from: 'manifests',
    });
    assert.equal(key.id, macKey(Buffer.alloc(32, 1)).id);
    assert.deepEqual(server.calls, ['get', 'update']);
    assert.equal((await keys.get(later(CHECK_MS - 1))).id, key.id);
    assert.deepEqual(server.calls, ['get', 'update'], 'no API call within a minute');
    await keys.get(later(CHECK_MS));
    assert.deepEqual(server.calls, ['get', 'update', 'get'], 'checked again after a minute');
    assert.ok(lines.some((l) => l.msg === 'wrote a new key into the record MAC key Secret'));
    const text = JSON.stringify(lines);
    for (const form of ['base64', 'hex', 'base64url'] as const)
      assert.ok(!text.includes(Buffer.alloc(32, 1).toString(form)), `the key is never logged (${form})`);
  });

  it('uses the key the Secret holds', async () => {
    const { server, keys } = harness();
    server.set(Buffer.alloc(48, 5));
    assert.equal((await keys.get(T0)).id, macKey(Buffer.alloc(48, 5)).id);
    assert.deepEqual(server.calls, ['get']);
  });

  it('two replicas racing to fill it settle on the first key written', async () => {
    const server = new SecretServer();
    const a = harness(server, 1);
    const b = harness(server, 7);
    // b's update lands between a's read and a's update.
    server.beforeWrite = () => server.set(Buffer.alloc(32, 7));
    const keyA = await a.keys.get(T0);
    const keyB = await b.keys.get(T0);
    assert.equal(
      keyA.id,
      macKey(Buffer.alloc(32, 7)).id,
      "a read the winner's key after its update conflicted",
    );
    assert.equal(keyB.id, keyA.id, 'both seal with one key');
    assert.deepEqual(server.stored, Buffer.alloc(32, 7));
  });

  it('concurrent syncs share one check', async () => {
    const { server, keys } = harness();
    const got = await Promise.all([keys.get(T0), keys.get(T0), keys.get(T0)]);
    assert.equal(new Set(got.map((k) => k.id)).size, 1);
    assert.deepEqual(server.calls, ['get', 'update']);
  });

  it('seals with the held key while the Secret is gone, and writes it back when the Secret is applied again', async () => {
    const { server, keys, lines } = harness();
    const key = await keys.get(T0);
    server.secret = undefined;
    assert.equal((await keys.get(later(CHECK_MS))).id, key.id);
    assert.ok(
      lines.some(
        (l) => l.level === 'error' && /Secret is gone; sealing with the key held/.test(String(l.msg)),
      ),
    );
    server.set(undefined);
    assert.equal((await keys.get(later(2 * CHECK_MS))).id, key.id);
    assert.deepEqual(server.stored, Buffer.alloc(32, 1), 'the held key is back in the Secret');
  });

  it('puts the held key back when the Secret holds another key or none, and says so in an error', async () => {
    for (const replaced of [Buffer.alloc(32, 9), Buffer.alloc(4, 9), undefined]) {
      const { server, keys, lines } = harness();
      const key = await keys.get(T0);
      server.set(replaced);
      assert.equal((await keys.get(later(CHECK_MS))).id, key.id, 'still seals with the held key');
      assert.deepEqual(server.stored, Buffer.alloc(32, 1), 'the held key was put back');
      assert.ok(
        lines.some(
          (l) => l.level === 'error' && /put back the key the records are sealed with/.test(String(l.msg)),
        ),
      );
    }
  });

  it('without a held key, no Secret or an API failure is INTEGRITY_KEY_UNAVAILABLE; with one, the held key is used', async () => {
    const { server, keys } = harness();
    server.secret = undefined;
    await assert.rejects(
      keys.get(T0),
      (e: unknown) =>
        e instanceof OidcPublisherError &&
        e.code === 'INTEGRITY_KEY_UNAVAILABLE' &&
        /oidc-publisher-system\/oidc-publisher-integrity: it does not exist: .*apply them again/.test(
          e.message,
        ),
    );
    server.set(undefined);
    server.failure = new OidcPublisherError('KUBE_API_ERROR', 'update Secret: HTTP 403 Forbidden');
    await assert.rejects(
      keys.get(T0),
      (e: unknown) =>
        e instanceof OidcPublisherError &&
        e.code === 'INTEGRITY_KEY_UNAVAILABLE' &&
        /HTTP 403/.test(e.message),
    );
    server.failure = undefined;
    const key = await keys.get(T0);
    server.failure = new Error('ECONNRESET');
    assert.equal((await keys.get(later(CHECK_MS))).id, key.id);
  });
});
