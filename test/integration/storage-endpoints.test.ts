/**
 * Hostile storage endpoints, against stand-in HTTP(S) servers on 127.0.0.1:
 * these are behaviours no real storage server shows (a 401 challenge naming
 * another resource, an endless error body, a token endpoint named by a
 * Secret), so each stand-in records what reached it. Stores are built the way
 * the operator builds them, through StoreFactory with a SecretReader over
 * plain data; the stand-ins count requests and the Authorization headers and
 * SAS signatures they see.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import type { StorageTarget } from '../../src/core/spec.ts';
import { OidcPublisherError } from '../../src/errors.ts';
import { StoreFactory } from '../../src/stores/factory.ts';
import { createCa, issueCert } from '../bed/pki.ts';

interface Seen {
  method: string;
  url: string;
  authorization?: string;
}

interface StandIn {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const dir = mkdtempSync(join(tmpdir(), 'storage-endpoints-'));
let tlsFiles: { cert: Buffer; key: Buffer } | undefined;

before(() => {
  // A CA of this test's own, trusted by this process only, for the HTTPS stand-ins.
  const ca = createCa(dir, 'storage-endpoints test CA');
  const server = issueCert(ca, 'stand-in', { commonName: '127.0.0.1', serverNames: ['127.0.0.1'] });
  tlsFiles = { cert: readFileSync(server.cert), key: readFileSync(server.key) };
  setDefaultCACertificates([...getCACertificates('default'), readFileSync(ca.cert, 'utf8')]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function standIn(tls: boolean, handler: Handler): Promise<StandIn> {
  const seen: Seen[] = [];
  const onRequest: Handler = (req, res) => {
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
    handler(req, res);
  };
  const server =
    tls && tlsFiles ? createHttpsServer({ ...tlsFiles }, onRequest) : createHttpServer(onRequest);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function secrets(data: Record<string, string>) {
  return {
    async readSecret(): Promise<Map<string, Buffer>> {
      return new Map(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)]));
    },
  };
}

/** The code of the OidcPublisherError `fn` rejects with, or 'resolved'. */
async function codeOf(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    return err instanceof OidcPublisherError ? err.code : `not ours: ${String(err)}`;
  }
  return 'resolved';
}

const DEV_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

describe('Azure Blob endpoints and credentials', () => {
  it('refuses an accountURL whose host is not allowed, before any request (no Authorization ever sent)', async () => {
    const server = await standIn(true, (_req, res) => res.writeHead(404).end());
    const accountURL = `${server.url}/devstoreaccount1`;
    const factory = new StoreFactory({
      secrets: secrets({
        connectionString: `AccountName=devstoreaccount1;AccountKey=${DEV_KEY};BlobEndpoint=${accountURL}`,
      }),
      namespace: 'ns',
      timeoutMs: 3000,
      allowedHosts: [],
    });
    const target: StorageTarget = {
      kind: 'azureBlob',
      accountURL,
      account: 'devstoreaccount1',
      container: 'c1',
      prefix: '',
      credentialsSecret: { name: 'azure', key: 'connectionString' },
    };
    try {
      const code = await codeOf(async () => (await factory.get(target, 'p')).head('x'));
      assert.equal(
        server.seen.length,
        0,
        `requests reached the unlisted host: ${JSON.stringify(server.seen)}`,
      );
      assert.equal(code, 'STORAGE_ENDPOINT_REFUSED');
    } finally {
      factory.close();
      await server.close();
    }
  });

  it('never sends a SAS over plain http, even to a host allowed with http://', async () => {
    const server = await standIn(false, (_req, res) => res.writeHead(404).end());
    const accountURL = `${server.url}/acct`;
    const factory = new StoreFactory({
      secrets: secrets({
        connectionString: `BlobEndpoint=${accountURL};SharedAccessSignature=sv=2024&sig=SECRET`,
      }),
      namespace: 'ns',
      timeoutMs: 3000,
      allowedHosts: ['azureBlob=http://127.0.0.1'],
    });
    try {
      const code = await codeOf(async () =>
        (
          await factory.get(
            {
              kind: 'azureBlob',
              accountURL,
              account: 'acct',
              container: 'c1',
              prefix: '',
              credentialsSecret: { name: 'azure', key: 'connectionString' },
            },
            'p',
          )
        ).head('x'),
      );
      assert.deepEqual(server.seen, [], 'nothing, and no sig=, reached the plain-http endpoint');
      assert.equal(code, 'STORAGE_ENDPOINT_REFUSED');
    } finally {
      factory.close();
      await server.close();
    }
  });

  it("refuses a connection string whose endpoint is not accountURL: its SAS is not sent to the spec's host", async () => {
    const server = await standIn(true, (_req, res) => res.writeHead(404).end());
    const accountURL = `${server.url}/acct`;
    const factory = new StoreFactory({
      secrets: secrets({
        connectionString:
          'BlobEndpoint=https://victim.blob.core.windows.net/;SharedAccessSignature=sv=2024&sig=SECRET',
      }),
      namespace: 'ns',
      timeoutMs: 3000,
      allowedHosts: ['azureBlob=127.0.0.1'],
    });
    try {
      const code = await codeOf(async () =>
        (
          await factory.get(
            {
              kind: 'azureBlob',
              accountURL,
              account: 'acct',
              container: 'c1',
              prefix: '',
              credentialsSecret: { name: 'azure', key: 'connectionString' },
            },
            'p',
          )
        ).head('x'),
      );
      assert.deepEqual(server.seen, [], 'the SAS of another account reached the spec host');
      assert.equal(code, 'STORAGE_CREDENTIALS_INVALID');
    } finally {
      factory.close();
      await server.close();
    }
  });

  it('answers a 401 challenge naming another resource and tenant with a storage token of its own tenant only', async () => {
    const { AzureBlobStore } = await import('../../src/stores/azure-blob.ts');
    const { EndpointPolicy } = await import('../../src/stores/endpoints.ts');
    const server = await standIn(true, (_req, res) => {
      res
        .writeHead(401, {
          'www-authenticate':
            'Bearer authorization_uri=https://login.microsoftonline.com/00000000-0000-0000-0000-0000000000aa/oauth2/authorize resource_id=https://management.azure.com',
          'x-ms-error-code': 'InvalidAuthenticationInfo',
        })
        .end();
    });
    const asked: { scopes: string[]; tenantId?: string }[] = [];
    const credential = {
      async getToken(scopes: string | string[], options?: { tenantId?: string }) {
        asked.push({
          scopes: [scopes].flat(),
          ...(options?.tenantId ? { tenantId: options.tenantId } : {}),
        });
        return { token: `token-${asked.length}`, expiresOnTimestamp: Date.now() + 3_600_000 };
      },
    };
    const store = await AzureBlobStore.create({
      accountURL: `${server.url}/acct`,
      account: 'acct',
      container: 'c1',
      prefix: '',
      timeoutMs: 5000,
      // The operator's own token goes to no added host (see below): this is the publish command's
      // case, where the user's own credential goes to the endpoint they name.
      endpoints: EndpointPolicy.unrestricted(),
      tokenCredential: credential,
    });
    try {
      const code = await codeOf(() => store.head('x'));
      assert.equal(code, 'STORAGE_ACCESS_DENIED');
      assert.ok(asked.length >= 1, 'a token was asked for');
      assert.deepEqual(
        asked.filter(
          (a) => a.tenantId !== undefined || a.scopes.join() !== 'https://storage.azure.com/.default',
        ),
        [],
        'every token asked for is the storage scope, without another tenant',
      );
      assert.ok(server.seen.length >= 1);
    } finally {
      store.close();
      await server.close();
    }
  });
});

describe("hosts added for one backend, and the operator's own identity", () => {
  const azureTarget = (accountURL: string, secret: boolean): StorageTarget => ({
    kind: 'azureBlob',
    accountURL,
    account: 'devstoreaccount1',
    container: 'c1',
    prefix: '',
    ...(secret ? { credentialsSecret: { name: 'azure', key: 'connectionString' } } : {}),
  });

  it('sends nothing from an azureBlob publisher to a host added for S3 only', async () => {
    const server = await standIn(true, (_req, res) => res.writeHead(404).end());
    const accountURL = `${server.url}/devstoreaccount1`;
    const factory = new StoreFactory({
      secrets: secrets({
        connectionString: `AccountName=devstoreaccount1;AccountKey=${DEV_KEY};BlobEndpoint=${accountURL}`,
      }),
      namespace: 'ns',
      timeoutMs: 3000,
      allowedHosts: ['s3=127.0.0.1', 'gcs=127.0.0.1'],
    });
    try {
      const code = await codeOf(async () =>
        (await factory.get(azureTarget(accountURL, true), 'p')).head('x'),
      );
      assert.deepEqual(server.seen, [], 'a request reached the host added for S3');
      assert.equal(code, 'STORAGE_ENDPOINT_REFUSED');
    } finally {
      factory.close();
      await server.close();
    }
  });

  it("never sends the operator's own Entra ID token to an added host, even one added for azureBlob", async () => {
    const { AzureBlobStore } = await import('../../src/stores/azure-blob.ts');
    const { EndpointPolicy } = await import('../../src/stores/endpoints.ts');
    const server = await standIn(true, (_req, res) => res.writeHead(404).end());
    let asked = 0;
    // Stands in for DefaultAzureCredential (workload identity): no Entra ID here.
    const credential = {
      async getToken() {
        asked += 1;
        return { token: 'the-operators-own-token', expiresOnTimestamp: Date.now() + 3_600_000 };
      },
    };
    try {
      const code = await codeOf(async () =>
        (
          await AzureBlobStore.create({
            accountURL: `${server.url}/devstoreaccount1`,
            account: 'devstoreaccount1',
            container: 'c1',
            prefix: '',
            timeoutMs: 3000,
            endpoints: EndpointPolicy.of(['azureBlob=127.0.0.1']),
            tokenCredential: credential,
          })
        ).head('x'),
      );
      assert.deepEqual(server.seen, [], 'the added host got a request (and with it the token)');
      assert.equal(asked, 0, 'a token was asked for');
      assert.equal(code, 'STORAGE_ENDPOINT_REFUSED');
    } finally {
      await server.close();
    }
  });

  it("never sends the operator's own AWS credentials (the default chain) to an added S3 host; a Secret's go there", async () => {
    const server = await standIn(true, (_req, res) => res.writeHead(404).end());
    // The default chain's first source: the operator's environment (the same chain reads web identity
    // and instance credentials, which this machine has not).
    const saved = { ...process.env };
    process.env.AWS_ACCESS_KEY_ID = 'AKIAOPERATOROWN';
    process.env.AWS_SECRET_ACCESS_KEY = 'operator-own-secret';
    process.env.AWS_SESSION_TOKEN = 'operator-own-session-token';
    const target = (secret: boolean): StorageTarget => ({
      kind: 's3',
      bucket: 'bucket',
      region: 'us-east-1',
      prefix: '',
      forcePathStyle: true,
      endpoint: server.url,
      ...(secret ? { credentialsSecret: 's3' } : {}),
    });
    const factory = new StoreFactory({
      secrets: secrets({ AWS_ACCESS_KEY_ID: 'AKIASECRET', AWS_SECRET_ACCESS_KEY: 'secret' }),
      namespace: 'ns',
      timeoutMs: 3000,
      allowedHosts: ['s3=127.0.0.1'],
    });
    try {
      const code = await codeOf(async () => (await factory.get(target(false), 'p')).get('x'));
      assert.equal(server.seen.length, 0, "the operator's own credentials reached the added host");
      assert.equal(code, 'STORAGE_ENDPOINT_REFUSED');
      assert.equal(await codeOf(async () => (await factory.get(target(true), 'p')).get('x')), 'resolved');
      assert.equal(server.seen.length, 1, "the Secret's credentials go to the added host");
      assert.match(server.seen[0]?.authorization ?? '', /Credential=AKIASECRET\//);
    } finally {
      for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
      factory.close();
      await server.close();
    }
  });
});

describe('error codes of a hostile endpoint, in the messages that become status', () => {
  const SESSION_TOKEN =
    'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexample+token/value0123456789abcdefghijKLMNOP==';

  it('says HTTP <status> for an S3 <Code> echoing the session token, or 40 KB long', async () => {
    let mode: 'echo' | 'long' = 'echo';
    const server = await standIn(true, (req, res) => {
      const code =
        mode === 'echo' ? String(req.headers['x-amz-security-token'] ?? 'none') : 'A'.repeat(40 * 1024);
      res
        .writeHead(mode === 'echo' ? 403 : 400, { 'content-type': 'application/xml' })
        .end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>m</Message></Error>`);
    });
    const factory = new StoreFactory({
      secrets: secrets({
        AWS_ACCESS_KEY_ID: 'id',
        AWS_SECRET_ACCESS_KEY: 'secret',
        AWS_SESSION_TOKEN: SESSION_TOKEN,
      }),
      namespace: 'ns',
      timeoutMs: 3000,
      allowedHosts: ['s3=127.0.0.1'],
    });
    const target: StorageTarget = {
      kind: 's3',
      bucket: 'bucket',
      region: 'us-east-1',
      prefix: '',
      forcePathStyle: true,
      endpoint: server.url,
      credentialsSecret: 's3',
    };
    try {
      const store = await factory.get(target, 'p');
      const echoed = await store.get('x').then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(echoed instanceof OidcPublisherError, `expected our error, got ${String(echoed)}`);
      assert.ok(server.seen.length >= 1, 'the stand-in was asked');
      assert.equal(echoed.code, 'STORAGE_ACCESS_DENIED');
      assert.equal(echoed.message, 'GET s3://bucket/x: access denied (HTTP 403)');
      mode = 'long';
      const long = await store.get('x').then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(long instanceof OidcPublisherError, `expected our error, got ${String(long)}`);
      assert.equal(long.code, 'STORAGE_ERROR');
      assert.equal(long.message, 'GET s3://bucket/x: error (HTTP 400)');
    } finally {
      factory.close();
      await server.close();
    }
  });

  it('says HTTP <status> for an Azure x-ms-error-code echoing the Authorization header, or 8 KB long', async () => {
    let mode: 'echo' | 'long' = 'echo';
    const server = await standIn(true, (req, res) => {
      // 8 KB: Node's HTTP client takes no more than 16 KB of headers.
      const code = mode === 'echo' ? String(req.headers.authorization ?? 'none') : 'A'.repeat(8 * 1024);
      res.writeHead(mode === 'echo' ? 403 : 400, { 'x-ms-error-code': code }).end();
    });
    const accountURL = `${server.url}/devstoreaccount1`;
    const factory = new StoreFactory({
      secrets: secrets({
        connectionString: `AccountName=devstoreaccount1;AccountKey=${DEV_KEY};BlobEndpoint=${accountURL}`,
      }),
      namespace: 'ns',
      timeoutMs: 3000,
      allowedHosts: ['azureBlob=127.0.0.1'],
    });
    try {
      const store = await factory.get(
        {
          kind: 'azureBlob',
          accountURL,
          account: 'devstoreaccount1',
          container: 'c1',
          prefix: '',
          credentialsSecret: { name: 'azure', key: 'connectionString' },
        },
        'p',
      );
      const echoed = await store.head('x').then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(echoed instanceof OidcPublisherError, `expected our error, got ${String(echoed)}`);
      assert.ok(
        server.seen.some((s) => s.authorization?.startsWith('SharedKey ')),
        'the stand-in was asked',
      );
      assert.equal(echoed.code, 'STORAGE_ACCESS_DENIED');
      assert.equal(echoed.message, 'HEAD azblob://devstoreaccount1/c1/x: access denied (HTTP 403)');
      mode = 'long';
      const long = await store.head('x').then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(long instanceof OidcPublisherError, `expected our error, got ${String(long)}`);
      assert.equal(long.code, 'STORAGE_ERROR');
      assert.equal(long.message, 'HEAD azblob://devstoreaccount1/c1/x: (HTTP 400)');
    } finally {
      factory.close();
      await server.close();
    }
  });
});

describe('GCS credentials Secret', () => {
  it("refuses an external_account configuration whose token_url is not Google's, its file allowed: the token_url gets nothing", async () => {
    const tokenEndpoint = await standIn(false, (_req, res) =>
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end('{"access_token":"x","expires_in":3600}'),
    );
    const tokenFile = join(dir, 'operator-token');
    writeFileSync(tokenFile, 'the-operators-own-serviceaccount-token');
    const factory = new StoreFactory({
      secrets: secrets({
        'credentials.json': JSON.stringify({
          type: 'external_account',
          audience: '//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x',
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
          token_url: `${tokenEndpoint.url}/token`,
          credential_source: { file: tokenFile },
        }),
      }),
      namespace: 'ns',
      timeoutMs: 3000,
      allowedHosts: [],
      gcsTokenFileDirs: [dir],
    });
    try {
      const code = await codeOf(async () =>
        (
          await factory.get(
            {
              kind: 'gcs',
              bucket: 'bucket',
              prefix: '',
              credentialsSecret: { name: 'gcs', key: 'credentials.json' },
            },
            'p',
          )
        ).head('x'),
      );
      assert.deepEqual(tokenEndpoint.seen, [], "the operator's token was posted to the Secret's token_url");
      assert.equal(code, 'STORAGE_CREDENTIALS_INVALID');
    } finally {
      factory.close();
      await tokenEndpoint.close();
    }
  });
});

describe('S3 endpoints and hostile answers', () => {
  const s3Secret = secrets({ AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret' });
  const s3Target = (endpoint: string): StorageTarget => ({
    kind: 's3',
    bucket: 'bucket',
    region: 'us-east-1',
    prefix: '',
    forcePathStyle: true,
    endpoint,
    credentialsSecret: 's3',
  });

  it('refuses an endpoint whose host is not allowed, before any request', async () => {
    const server = await standIn(false, (_req, res) => res.writeHead(404).end());
    const factory = new StoreFactory({
      secrets: s3Secret,
      namespace: 'ns',
      timeoutMs: 3000,
      allowedHosts: [],
    });
    try {
      const code = await codeOf(async () => (await factory.get(s3Target(server.url), 'p')).get('x'));
      assert.deepEqual(server.seen, [], 'requests reached the unlisted host');
      assert.equal(code, 'STORAGE_ENDPOINT_REFUSED');
    } finally {
      factory.close();
      await server.close();
    }
  });

  it('stops reading a huge error body at the size limit: the call fails fast and memory stays bounded', async () => {
    const TOTAL = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    const server = await standIn(false, (_req, res) => {
      res.writeHead(400, { 'content-type': 'application/xml', 'content-length': String(TOTAL) });
      let sent = 0;
      const pump = () => {
        while (sent < TOTAL) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      res.on('close', () => {
        sent = TOTAL;
      });
      pump();
    });
    const timeoutMs = 20_000;
    const factory = new StoreFactory({
      secrets: s3Secret,
      namespace: 'ns',
      timeoutMs,
      allowedHosts: ['s3=http://127.0.0.1'],
    });
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    const t0 = Date.now();
    try {
      const store = await factory.get(s3Target(server.url), 'p');
      const code = await codeOf(() => store.get('x'));
      const tookMs = Date.now() - t0;
      peak = Math.max(peak, process.memoryUsage().rss);
      const growthMiB = (peak - rss0) / 2 ** 20;
      assert.ok(server.seen.length >= 1, 'the stand-in was asked');
      assert.ok(growthMiB < 100, `RSS grew ${growthMiB.toFixed(0)} MiB reading a 256 MiB error body`);
      assert.ok(tookMs < 5000, `took ${tookMs} ms`);
      assert.equal(code, 'STORAGE_ERROR');
    } finally {
      clearInterval(sampler);
      factory.close();
      await server.close();
    }
  });

  it('gives up on an endless, trickling error body at the storage deadline', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const server = await standIn(false, (_req, res) => {
      res.writeHead(400, { 'content-type': 'application/xml' });
      const t = setInterval(() => res.write('<a>'), 50);
      timers.add(t);
      res.on('close', () => clearInterval(t));
    });
    const timeoutMs = 1500;
    const factory = new StoreFactory({
      secrets: s3Secret,
      namespace: 'ns',
      timeoutMs,
      allowedHosts: ['s3=http://127.0.0.1'],
    });
    const t0 = Date.now();
    try {
      const store = await factory.get(s3Target(server.url), 'p');
      // Bounded here too, so that a missing deadline fails the test instead of hanging it.
      const code = await codeOf(() =>
        Promise.race([
          store.get('x'),
          new Promise((_, reject) => setTimeout(() => reject(new Error('still reading after 10 s')), 10_000)),
        ]),
      );
      const tookMs = Date.now() - t0;
      assert.equal(code, 'STORAGE_UNREACHABLE');
      assert.ok(tookMs < timeoutMs + 1500, `took ${tookMs} ms with a ${timeoutMs} ms deadline`);
    } finally {
      for (const t of timers) clearInterval(t);
      factory.close();
      await server.close();
    }
  });
});
