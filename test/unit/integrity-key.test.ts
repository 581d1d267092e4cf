/**
 * The record MAC key's Secret: created once, shared by replicas racing to create it, put back
 * when deleted or changed while a key is held, and never logged. The API server's answers come
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
import type { OwnSecret, OwnSecretContent } from '../../src/kube/cluster-client.ts';
import { createLogger } from '../../src/log.ts';

const NS = 'oidc-publisher-system';
const T0 = new Date('2025-06-01T12:00:00Z');
const later = (ms: number) => new Date(T0.getTime() + ms);

/** One Secret as the API server keeps it: a create of an existing one or a stale update is a conflict. */
class SecretServer {
  secret: { rv: number; data: Map<string, Buffer> } | undefined;
  rv = 0;
  failure: Error | undefined;
  calls: string[] = [];
  /** Runs before a write lands: another writer racing this one. */
  beforeWrite: (() => void) | undefined;

  set(data: Buffer | undefined): void {
    this.secret = { rv: ++this.rv, data: new Map(data ? [[INTEGRITY_SECRET_KEY, data]] : []) };
  }

  async readOwnSecret(namespace: string, name: string): Promise<OwnSecret | undefined> {
    assert.deepEqual([namespace, name], [NS, INTEGRITY_SECRET]);
    this.calls.push('get');
    if (this.failure) throw this.failure;
    return this.secret && { resourceVersion: String(this.secret.rv), data: new Map(this.secret.data) };
  }

  async writeOwnSecret(
    _namespace: string,
    _name: string,
    content: OwnSecretContent,
    resourceVersion?: string,
  ): Promise<'written' | 'conflict'> {
    this.calls.push(resourceVersion === undefined ? 'create' : 'update');
    if (this.failure) throw this.failure;
    const race = this.beforeWrite;
    this.beforeWrite = undefined;
    race?.();
    if (resourceVersion === undefined ? this.secret : String(this.secret?.rv) !== resourceVersion)
      return 'conflict';
    this.secret = {
      rv: ++this.rv,
      data: new Map(content.data.map(([k, v]) => [k, Buffer.from(v)])),
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
  it('creates the Secret with a new key when it does not exist, and reads it only once a minute', async () => {
    const { server, keys, lines } = harness();
    const key = await keys.get(T0);
    assert.deepEqual(server.stored, Buffer.alloc(32, 1), 'the Secret holds the new key');
    assert.equal(key.id, macKey(Buffer.alloc(32, 1)).id);
    assert.deepEqual(server.calls, ['get', 'create']);
    assert.equal((await keys.get(later(CHECK_MS - 1))).id, key.id);
    assert.deepEqual(server.calls, ['get', 'create'], 'no API call within a minute');
    await keys.get(later(CHECK_MS));
    assert.deepEqual(server.calls, ['get', 'create', 'get'], 'checked again after a minute');
    assert.ok(lines.some((l) => l.msg === 'created the record MAC key Secret with a new key'));
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

  it('two replicas racing to create it settle on the first key written', async () => {
    const server = new SecretServer();
    const a = harness(server, 1);
    const b = harness(server, 7);
    // b's create lands between a's read and a's create.
    server.beforeWrite = () => {
      server.beforeWrite = undefined;
      server.set(Buffer.alloc(32, 7));
    };
    const keyA = await a.keys.get(T0);
    const keyB = await b.keys.get(T0);
    assert.equal(keyA.id, macKey(Buffer.alloc(32, 7)).id, 'a read the winner after its create conflicted');
    assert.equal(keyB.id, keyA.id, 'both seal with one key');
    assert.deepEqual(server.stored, Buffer.alloc(32, 7));
  });

  it('concurrent syncs share one check', async () => {
    const { server, keys } = harness();
    const got = await Promise.all([keys.get(T0), keys.get(T0), keys.get(T0)]);
    assert.equal(new Set(got.map((k) => k.id)).size, 1);
    assert.deepEqual(server.calls, ['get', 'create']);
  });

  it('creates a deleted Secret again with the key it holds, so no retained key is lost', async () => {
    const { server, keys, lines } = harness();
    const key = await keys.get(T0);
    server.secret = undefined;
    assert.equal((await keys.get(later(CHECK_MS))).id, key.id);
    assert.deepEqual(server.stored, Buffer.alloc(32, 1), 'the held key is back in the Secret');
    assert.ok(lines.some((l) => l.level === 'warn' && /was deleted; created it again/.test(String(l.msg))));
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

  it('writes a new key into a Secret that holds none, when no key is held', async () => {
    const { server, keys } = harness();
    server.set(undefined);
    await keys.get(T0);
    assert.deepEqual(server.stored, Buffer.alloc(32, 1));
    assert.deepEqual(server.calls, ['get', 'update']);
  });

  it('without a held key, an API failure is INTEGRITY_KEY_UNAVAILABLE; with one, the held key is used', async () => {
    const { server, keys } = harness();
    server.failure = new OidcPublisherError('KUBE_API_ERROR', 'create Secret: HTTP 403 Forbidden');
    await assert.rejects(
      keys.get(T0),
      (e: unknown) =>
        e instanceof OidcPublisherError &&
        e.code === 'INTEGRITY_KEY_UNAVAILABLE' &&
        /oidc-publisher-system\/oidc-publisher-integrity: create Secret: HTTP 403/.test(e.message),
    );
    server.failure = undefined;
    const key = await keys.get(T0);
    server.failure = new Error('ECONNRESET');
    assert.equal((await keys.get(later(CHECK_MS))).id, key.id);
  });
});
