/**
 * Azurite (Azure Blob) in the bed behaving like Azure where the operator relies
 * on it, and the Azure Blob store against it: headers and metadata kept from PUT
 * to anonymous GET, private containers refusing anonymous reads, and SDK errors
 * mapped to ours.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { OidcPublisherError } from '../../src/errors.ts';
import { AZURE_HASH_METADATA_KEY, AzureBlobStore } from '../../src/stores/azure-blob.ts';
import { EndpointPolicy } from '../../src/stores/endpoints.ts';
import type { AzureInfo } from '../bed/azurite.ts';
import { createBlobServiceClient } from '../bed/azurite.ts';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { useBed } from '../bed/shared.ts';

const JWKS_TYPE = 'application/jwk-set+json';
const CACHE = 'public, max-age=300';

describe('Azurite (Azure Blob), in a bed of its own', () => {
  // The run's shared bed has no Azurite (it is optional); both suites share this one.
  const useOwn = useBed({ azure: true, gcs: false });
  let bed: Bed;
  let azure: AzureInfo;
  before(() => {
    bed = useOwn();
    assert.ok(bed.state.azure, 'the bed runs Azurite');
    azure = bed.state.azure;
  });

  describe('test bed: Azurite (Azure Blob)', () => {
    it('serves a blob of the public container to anonymous HTTPS GETs with its contentType and cacheControl', async () => {
      const container = createBlobServiceClient(azure, bed.ca).getContainerClient(azure.container);
      const key = `bed-check/${Date.now()}/openid/v1/jwks`;
      const body = JSON.stringify({ keys: [] });
      await container.getBlockBlobClient(key).upload(body, Buffer.byteLength(body), {
        blobHTTPHeaders: { blobContentType: JWKS_TYPE, blobCacheControl: CACHE },
      });
      const res = await request(`${azure.accountURL}/${azure.container}/${key}`, { ca: bed.ca });
      assert.equal(res.status, 200, `anonymous GET: expected 200, got ${res.status}: ${res.text()}`);
      assert.equal(res.text(), body);
      assert.equal(res.headers['content-type'], JWKS_TYPE);
      assert.equal(res.headers['cache-control'], CACHE);
    });

    it('refuses anonymous reads of a container without public access', async () => {
      const service = createBlobServiceClient(azure, bed.ca);
      const name = `private-${Date.now()}`;
      const container = service.getContainerClient(name);
      await container.create();
      await container.getBlockBlobClient('secret.json').upload('{"secret":1}', 12);
      const signed = await container.getBlobClient('secret.json').downloadToBuffer();
      assert.equal(signed.toString(), '{"secret":1}', 'the blob exists for signed requests');
      const res = await request(`${azure.accountURL}/${name}/secret.json`, { ca: bed.ca });
      assert.ok(
        res.status === 403 || res.status === 404,
        `anonymous GET of a private container: expected 403 or 404, got ${res.status}`,
      );
      assert.ok(!res.text().includes('"secret"'), 'the refusal does not carry the blob');
    });
  });

  describe('AzureBlobStore against Azurite', () => {
    const stores: AzureBlobStore[] = [];
    const store = async (
      over: { container?: string; connectionString?: string; accountURL?: string } = {},
    ) => {
      // The connection string names the endpoint it is for: the account's, moved with accountURL.
      const accountURL = over.accountURL ?? azure.accountURL;
      const s = await AzureBlobStore.create({
        accountURL,
        account: azure.account,
        container: over.container ?? azure.container,
        prefix: 'store-check',
        connectionString:
          over.connectionString ?? azure.connectionString.replace(azure.accountURL, accountURL),
        timeoutMs: 1500,
        endpoints: EndpointPolicy.of(['azureBlob=127.0.0.1']),
      });
      stores.push(s);
      return s;
    };
    after(() => {
      for (const s of stores) s.close();
    });

    it('writes, reads back headers and hash, serves anonymously, and deletes idempotently', async () => {
      const s = await store();
      assert.equal(s.describe, `azblob://devstoreaccount1/${azure.container}/store-check`);
      const key = `store-check/${Date.now()}/openid/v1/jwks`;
      const body = Buffer.from('{"keys":[]}');
      const sha256 = createHash('sha256').update(body).digest('hex');
      assert.equal(await s.head(key), undefined, 'a missing blob has no metadata');
      assert.equal(await s.get(key), undefined, 'a missing blob has no content');
      await s.put(key, body, { contentType: JWKS_TYPE, cacheControl: CACHE, sha256 });
      assert.deepEqual(await s.head(key), { sha256, contentType: JWKS_TYPE, cacheControl: CACHE });
      assert.deepEqual(await s.get(key), body);
      const res = await request(`${azure.accountURL}/${azure.container}/${key}`, { ca: bed.ca });
      assert.equal(res.status, 200);
      assert.equal(res.headers[`x-ms-meta-${AZURE_HASH_METADATA_KEY}`], sha256, 'the hash is blob metadata');
      await s.delete(key);
      assert.equal(await s.head(key), undefined, 'deleted');
      await s.delete(key);
    });

    it('maps a missing container to STORAGE_BUCKET_NOT_FOUND, on HEAD and on PUT', async () => {
      const s = await store({ container: 'no-such-container' });
      for (const op of [
        () => s.head('k'),
        () => s.put('k', Buffer.from('x'), { contentType: 'text/plain', cacheControl: CACHE, sha256: 'x' }),
      ]) {
        await assert.rejects(
          op(),
          (err: unknown) => err instanceof OidcPublisherError && err.code === 'STORAGE_BUCKET_NOT_FOUND',
        );
      }
    });

    it('maps a wrong account key to STORAGE_ACCESS_DENIED without echoing the key', async () => {
      const wrongKey = Buffer.from('definitely-not-the-account-key').toString('base64');
      const s = await store({
        connectionString: `AccountName=${azure.account};AccountKey=${wrongKey};BlobEndpoint=${azure.accountURL}`,
      });
      await assert.rejects(
        s.put('store-check/denied', Buffer.from('x'), {
          contentType: 'text/plain',
          cacheControl: CACHE,
          sha256: 'x',
        }),
        (err: unknown) =>
          err instanceof OidcPublisherError &&
          err.code === 'STORAGE_ACCESS_DENIED' &&
          !err.message.includes(wrongKey),
      );
    });

    it('maps a closed port to STORAGE_UNREACHABLE', async () => {
      const s = await store({ accountURL: `https://127.0.0.1:1/${azure.account}` });
      await assert.rejects(
        s.head('k'),
        (err: unknown) => err instanceof OidcPublisherError && err.code === 'STORAGE_UNREACHABLE',
      );
    });

    it('gives up after the storage timeout on a server that never answers', async () => {
      const sockets = new Set<Socket>();
      const silent = createServer((socket) => sockets.add(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const address = silent.address();
        assert.ok(address && typeof address === 'object');
        const s = await store({ accountURL: `https://127.0.0.1:${address.port}/${azure.account}` });
        const started = Date.now();
        await assert.rejects(
          s.head('k'),
          (err: unknown) =>
            err instanceof OidcPublisherError &&
            err.code === 'STORAGE_UNREACHABLE' &&
            /timed out/.test(err.message),
        );
        const took = Date.now() - started;
        assert.ok(took < 5000, `gave up after ${took} ms, expected about the 1500 ms timeout`);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });
  });
});
