/**
 * StoreFactory: credentials come from one read of their Secret per sync, and a
 * store is reused while its target and credentials stay the same.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StorageTarget } from '../../src/core/spec.ts';
import { StoreFactory } from '../../src/stores/factory.ts';

function secrets(data: Record<string, string>) {
  const reads: string[] = [];
  return {
    reads,
    async readSecret(namespace: string, name: string): Promise<Map<string, Buffer>> {
      reads.push(`${namespace}/${name}`);
      return new Map(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)]));
    },
  };
}

const target: StorageTarget = {
  kind: 's3',
  bucket: 'b',
  region: 'eu-west-1',
  prefix: 'p',
  forcePathStyle: true,
  endpoint: 'https://127.0.0.1:9',
  credentialsSecret: 's3-writer',
};

describe('StoreFactory', () => {
  it('reads an S3 credentials Secret once per get, whatever the number of keys it uses', async () => {
    const reader = secrets({ AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret' });
    const factory = new StoreFactory({
      secrets: reader,
      namespace: 'ns',
      timeoutMs: 1000,
      allowedHosts: ['s3=127.0.0.1'],
    });
    try {
      const first = await factory.get(target, 'pub');
      assert.deepEqual(reader.reads, ['ns/s3-writer']);
      assert.equal(
        await factory.get(target, 'pub'),
        first,
        'the same store while the credentials stay the same',
      );
      assert.deepEqual(reader.reads, ['ns/s3-writer', 'ns/s3-writer']);
    } finally {
      factory.close();
    }
  });

  it('gives each prefix of a bucket its own store (sharing one S3 client), and a new one when the credentials change', async () => {
    let secret = 'secret';
    const reader = {
      async readSecret(): Promise<Map<string, Buffer>> {
        return new Map([
          ['AWS_ACCESS_KEY_ID', Buffer.from('id')],
          ['AWS_SECRET_ACCESS_KEY', Buffer.from(secret)],
        ]);
      },
    };
    const factory = new StoreFactory({
      secrets: reader,
      namespace: 'ns',
      timeoutMs: 1000,
      allowedHosts: ['s3=127.0.0.1'],
    });
    try {
      const a = await factory.get(target, 'pub');
      const b = await factory.get({ ...target, prefix: 'q' }, 'pub');
      assert.equal(a.describe, 's3://b/p');
      assert.equal(b.describe, 's3://b/q');
      assert.notEqual(a, b);
      secret = 'rotated';
      const a2 = await factory.get(target, 'pub');
      assert.notEqual(a2, a, 'rotated credentials make a new store');
      assert.equal(a2.describe, 's3://b/p');
    } finally {
      factory.close();
    }
  });

  it('names the missing key of a credentials Secret', async () => {
    const factory = new StoreFactory({
      secrets: secrets({ AWS_ACCESS_KEY_ID: 'id' }),
      namespace: 'ns',
      timeoutMs: 1000,
      allowedHosts: ['s3=127.0.0.1'],
    });
    await assert.rejects(
      factory.get(target, 'pub'),
      /Secret ns\/s3-writer has no key "AWS_SECRET_ACCESS_KEY"/,
    );
  });
});
