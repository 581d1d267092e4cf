/**
 * A GCS credentials Secret holding an external_account (workload identity
 * federation) in the accepted shape, against the bed's fake-gcs-server.
 *
 * Google's STS cannot be reached from here, so no token is exchanged: these
 * tests prove that the configuration passes the checks, that the store works
 * with it against an allowed emulator endpoint (which gets no credentials),
 * and that the SDK is configured from it (Google's STS, Google's IAM
 * credentials API, the token file) without sending anything anywhere. A
 * stand-in listener is every non-bed host the SDK might call: the metadata
 * server (GCE_METADATA_HOST) and the proxy of every other request
 * (HTTPS_PROXY). It must receive nothing.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Storage } from '@google-cloud/storage';
import type { StorageTarget } from '../../src/core/spec.ts';
import { OidcPublisherError } from '../../src/errors.ts';
import { EndpointPolicy } from '../../src/stores/endpoints.ts';
import { StoreFactory } from '../../src/stores/factory.ts';
import { gcsClientOptions } from '../../src/stores/gcs.ts';
import { GOOGLE_STS_TOKEN_URL, parseGcsCredentials } from '../../src/stores/gcs-credentials.ts';
import type { Bed } from '../bed/bed.ts';
import { useBed } from '../bed/shared.ts';

const IMPERSONATION =
  'https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/oidc-publisher@my-project.iam.gserviceaccount.com:generateAccessToken';

describe('GCS credentials Secret: an external_account with a token file', () => {
  const useShared = useBed();
  let bed: Bed;
  const dir = mkdtempSync(join(tmpdir(), 'gcs-external-account-'));
  const tokenDir = join(dir, 'gcp');
  const tokenFile = join(tokenDir, 'token');
  const seen: string[] = [];
  const standIn = createServer((req, res) => {
    seen.push(`${req.method} ${req.headers.host ?? ''}${req.url ?? ''}`);
    res.writeHead(500).end();
  });
  standIn.on('connect', (req, socket) => {
    seen.push(`CONNECT ${req.url ?? ''}`);
    socket.destroy();
  });
  const saved = new Map<string, string | undefined>();
  const setEnv = (name: string, value: string) => {
    if (!saved.has(name)) saved.set(name, process.env[name]);
    process.env[name] = value;
  };

  const configuration = () => ({
    universe_domain: 'googleapis.com',
    type: 'external_account',
    audience:
      '//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/prod-cluster/providers/kubernetes',
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    token_url: GOOGLE_STS_TOKEN_URL,
    credential_source: { file: tokenFile, format: { type: 'text' } },
    service_account_impersonation_url: IMPERSONATION,
    service_account_impersonation: { token_lifetime_seconds: 3600 },
  });

  before(async () => {
    bed = useShared();
    mkdirSync(tokenDir);
    writeFileSync(tokenFile, 'eyJhbGciOiJSUzI1NiJ9.a-projected-token-for-the-pool.sig');
    await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
    const { port } = standIn.address() as AddressInfo;
    const gcsHost = new URL(bed.state.gcs?.endpoint ?? 'https://127.0.0.1').hostname;
    setEnv('GCE_METADATA_HOST', `127.0.0.1:${port}`);
    setEnv('HTTPS_PROXY', `http://127.0.0.1:${port}`);
    setEnv('HTTP_PROXY', `http://127.0.0.1:${port}`);
    setEnv('NO_PROXY', gcsHost);
  });
  after(async () => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    standIn.closeAllConnections();
    await new Promise<void>((resolve) => standIn.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('is accepted and the store reads and writes the emulator with it, nothing sent elsewhere', async () => {
    const gcs = bed.state.gcs;
    assert.ok(gcs, 'the shared bed runs fake-gcs-server');
    const factory = new StoreFactory({
      secrets: {
        async readSecret() {
          return new Map([['credentials.json', Buffer.from(JSON.stringify(configuration()))]]);
        },
      },
      namespace: 'ns',
      timeoutMs: 5000,
      allowedHosts: [`gcs=${new URL(gcs.endpoint).hostname}`],
      gcsTokenFileDirs: [tokenDir],
    });
    const target: StorageTarget = {
      kind: 'gcs',
      bucket: gcs.bucket,
      prefix: '',
      endpoint: gcs.endpoint,
      credentialsSecret: { name: 'gcs', key: 'credentials.json' },
    };
    try {
      const store = await factory.get(target, 'p');
      const key = `external-account/${Date.now()}/openid/v1/jwks`;
      await store.put(key, Buffer.from('{"keys":[]}'), {
        contentType: 'application/jwk-set+json',
        cacheControl: 'public, max-age=300',
        sha256: '0'.repeat(64),
      });
      const got = await store.get(key);
      assert.equal(got?.toString(), '{"keys":[]}');
    } finally {
      factory.close();
    }
    assert.deepEqual(seen, [], 'requests reached a host other than the emulator');
  });

  it("configures the SDK's client from it: Google's STS, Google's impersonation URL, the token file; no request made", async () => {
    const credentials = parseGcsCredentials(JSON.stringify(configuration()), [tokenDir]);
    const storage = new Storage(
      gcsClientOptions({
        bucket: 'b',
        prefix: '',
        credentials,
        timeoutMs: 5000,
        endpoints: EndpointPolicy.of([]),
      }),
    );
    const client = (await storage.authClient.getClient()) as unknown as Record<string, unknown>;
    assert.equal(client.constructor.name, 'IdentityPoolClient');
    assert.equal(client.tokenUrl, GOOGLE_STS_TOKEN_URL);
    assert.equal(client.serviceAccountImpersonationUrl, IMPERSONATION);
    assert.equal(client.credentialSourceType, 'file');
    assert.equal(client.universeDomain, 'googleapis.com');
    assert.equal((client.subjectTokenSupplier as { filePath?: unknown }).filePath, tokenFile);
    assert.deepEqual(seen, [], 'requests reached a host other than the emulator');
  });

  it('refuses, through the factory, a token file outside the allowed directories, before any request', async () => {
    const factory = new StoreFactory({
      secrets: {
        async readSecret() {
          const hostile = { ...configuration(), credential_source: { file: join(dir, 'elsewhere') } };
          return new Map([['credentials.json', Buffer.from(JSON.stringify(hostile))]]);
        },
      },
      namespace: 'ns',
      timeoutMs: 5000,
      allowedHosts: [],
      gcsTokenFileDirs: [tokenDir],
    });
    try {
      const err = await factory
        .get(
          {
            kind: 'gcs',
            bucket: 'b',
            prefix: '',
            credentialsSecret: { name: 'gcs', key: 'credentials.json' },
          },
          'p',
        )
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.ok(err instanceof OidcPublisherError, `expected our error, got ${String(err)}`);
      assert.equal(err.code, 'STORAGE_CREDENTIALS_INVALID');
      assert.match(err.message, /credential_source\.file must be in/);
    } finally {
      factory.close();
    }
    assert.deepEqual(seen, []);
  });

  it('sends the token file only towards sts.googleapis.com when a token is asked for (the stand-in sees every other host)', async () => {
    const credentials = parseGcsCredentials(JSON.stringify(configuration()), [tokenDir]);
    const storage = new Storage(
      gcsClientOptions({
        bucket: 'b',
        prefix: '',
        credentials,
        timeoutMs: 5000,
        endpoints: EndpointPolicy.of([]),
      }),
    );
    const client = await storage.authClient.getClient();
    // Google's STS is not reachable from here: the exchange goes to the proxy stand-in and fails.
    await assert.rejects(client.getAccessToken());
    assert.ok(seen.length > 0, 'the stand-in saw nothing: it would not catch a request elsewhere either');
    assert.deepEqual([...new Set(seen)], ['CONNECT sts.googleapis.com:443']);
  });
});
