/**
 * `oidc-publisher serve` end to end against the shared bed: the command run as
 * a child process with the least-privilege ServiceAccount of config/serve,
 * observed only over HTTP (the documents, /healthz, /readyz, /metrics).
 *
 * The API server cannot be made to answer 500, so one case uses a stand-in
 * HTTPS server (the bed's serving certificate) that answers 500 or replays the
 * real API server's documents on demand.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { parseAllDocuments } from 'yaml';
import { type Bed, freePort } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { useBed } from '../bed/shared.ts';
import { applyYaml, eventually, metricSum, ROOT } from './harness.ts';

const NAMESPACE = 'oidc-issuer';
const SERVICE_ACCOUNT = 'oidc-issuer-server';
const DISCOVERY = '/.well-known/openid-configuration';
const JWKS = '/openid/v1/jwks';

interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
}

/** An HTTP request to a serve process, by plain fetch (serve-tls.test.ts covers HTTPS). */
async function http(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

class ServeProcess {
  readonly child: ChildProcess;
  readonly output: string[] = [];
  readonly exited: Promise<number>;
  readonly base: string;
  readonly health: string;

  private constructor(child: ChildProcess, port: number, healthPort: number) {
    this.child = child;
    this.base = `http://127.0.0.1:${port}`;
    this.health = `http://127.0.0.1:${healthPort}`;
    const collect = (chunk: Buffer) =>
      this.output.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 0))),
    );
  }

  static async start(bed: Bed, kubeconfig: string, args: string[] = []): Promise<ServeProcess> {
    const [port, healthPort] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'src', 'cli.ts'),
        'serve',
        '--kubeconfig',
        kubeconfig,
        '--issuer',
        bed.issuer,
        '--listen',
        `127.0.0.1:${port}`,
        '--health-addr',
        `127.0.0.1:${healthPort}`,
        '--log-level',
        'debug',
        ...args,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '/tmp',
          NODE_EXTRA_CA_CERTS: bed.state.caFile,
        },
      },
    );
    const p = new ServeProcess(child, port, healthPort);
    await eventually(
      'serve to listen',
      async () =>
        (await fetch(`${p.health}/healthz`).catch(() => undefined))?.status === 200 ? true : undefined,
      20_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${p.output.join('\n')}`);
    });
    return p;
  }

  async readyz(): Promise<number> {
    return (await fetch(`${this.health}/readyz`)).status;
  }

  async metrics(): Promise<string> {
    return (await fetch(`${this.health}/metrics`)).text();
  }

  async stop(): Promise<number> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

/** A loopback TCP proxy to the API server, that the test can cut and restore. */
class TcpProxy {
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  readonly port: number;
  readonly #target: number;

  constructor(port: number, target: number) {
    this.port = port;
    this.#target = target;
  }

  async open(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.#target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.#server = server;
  }

  /** Stops listening and cuts every connection: the API server is now unreachable through it. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('oidc-publisher serve: the issuer documents over HTTP from memory', () => {
  const started: ServeProcess[] = [];
  // The serve processes stop before a bed of the suite's own would (there is none with the shared bed).
  const useShared = useBed(undefined, {
    beforeStop: async () => {
      for (const p of started) {
        assert.equal(await p.stop(), 0, `serve exits 0 on SIGTERM:\n${p.output.slice(-5).join('\n')}`);
      }
    },
  });
  let bed: Bed;
  let kubeconfig: string;
  const start = async (config: string, args: string[] = []) => {
    const p = await ServeProcess.start(bed, config, args);
    started.push(p);
    return p;
  };
  /** What the API server itself serves, read as the bed admin. */
  let upstream: { discovery: Buffer; jwks: Buffer };

  before(async () => {
    bed = useShared();
    // The shipped least-privilege RBAC of config/serve, applied as is; the Deployment is not run.
    const rendered = await bed.kubectl(['kustomize', join(ROOT, 'config', 'serve')]);
    const rbac = parseAllDocuments(rendered)
      .map((d) => d.toJSON() as { kind: string })
      .filter((o) => ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind));
    assert.equal(
      rbac.length,
      4,
      'config/serve has a Namespace, a ServiceAccount, a ClusterRole and its binding',
    );
    await applyYaml(bed, rbac.map((o) => JSON.stringify(o)).join('\n---\n'));
    kubeconfig = await bed.serviceAccountKubeconfig(NAMESPACE, SERVICE_ACCOUNT);
    const ca = bed.ca;
    const cert = readFileSync(bed.state.admin.cert);
    const key = readFileSync(bed.state.admin.key);
    const [d, j] = await Promise.all(
      [DISCOVERY, JWKS].map((p) => request(`${bed.apiserverURL}${p}`, { ca, cert, key })),
    );
    assert.equal(d?.status, 200);
    assert.equal(j?.status, 200);
    upstream = { discovery: d?.body ?? Buffer.alloc(0), jwks: j?.body ?? Buffer.alloc(0) };
  });

  it('config/serve is accepted by the API server (server-side dry run), every object of it', async () => {
    const out = await bed.kubectl(['apply', '--dry-run=server', '-k', join(ROOT, 'config', 'serve')]);
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 7, out);
    for (const kind of ['deployment.apps', 'service', 'ingress.networking.k8s.io', 'clusterrole.rbac']) {
      assert.ok(
        lines.some((l) => l.startsWith(kind)),
        `${kind} in:\n${out}`,
      );
    }
    const role = await bed.kubectl(['get', 'clusterrole', SERVICE_ACCOUNT, '-o', 'json']);
    assert.deepEqual((JSON.parse(role) as { rules: unknown[] }).rules, [
      { nonResourceURLs: [DISCOVERY, JWKS], verbs: ['get'] },
    ]);
    const can = (what: string[]) =>
      bed
        .kubectl(['auth', 'can-i', ...what, `--as=system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`])
        .then((o) => o.trim())
        .catch(() => 'no');
    assert.equal(await can(['get', JWKS]), 'yes');
    assert.equal(await can(['get', '/metrics']), 'no', 'nothing but the two documents');
    assert.equal(await can(['list', 'secrets', '-A']), 'no');
  });

  describe('with a least-privilege ServiceAccount', () => {
    let serve: ServeProcess;
    before(async () => {
      serve = await start(kubeconfig, ['--path-prefix', '/cluster-a']);
      await eventually('the first good read', async () =>
        (await serve.readyz()) === 200 ? true : undefined,
      );
    });

    it('serves the discovery document: 200, application/json, Cache-Control, ETag, jwks_uri rewritten', async () => {
      const r = await http(`${serve.base}/cluster-a${DISCOVERY}`);
      assert.equal(r.status, 200, r.body.toString());
      assert.equal(r.headers.get('content-type'), 'application/json');
      assert.equal(r.headers.get('cache-control'), 'public, max-age=300');
      assert.equal(
        r.headers.get('etag'),
        `"${createHash('sha256').update(r.body).digest('hex')}"`,
        'strong ETag: the sha256',
      );
      const doc = JSON.parse(r.body.toString()) as { issuer: string; jwks_uri: string };
      const source = JSON.parse(upstream.discovery.toString()) as { jwks_uri: string };
      assert.equal(doc.issuer, bed.issuer);
      assert.equal(doc.jwks_uri, `${bed.issuer}/openid/v1/jwks`);
      assert.notEqual(source.jwks_uri, doc.jwks_uri, "the API server's own jwks_uri is not passed through");
    });

    it('serves the JWKS as application/jwk-set+json with the public keys, good to verify a token', async () => {
      const r = await http(`${serve.base}/cluster-a${JWKS}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'application/jwk-set+json');
      assert.equal(r.headers.get('cache-control'), 'public, max-age=300');
      const jwks = JSON.parse(r.body.toString()) as { keys: Record<string, unknown>[] };
      assert.deepEqual(
        jwks.keys.map((k) => k.kid),
        [bed.signingKey.kid],
      );
      for (const k of jwks.keys) for (const p of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.ok(!(p in k));
      const token = await bed.mintToken({
        namespace: NAMESPACE,
        serviceAccount: SERVICE_ACCOUNT,
        audience: 'rp',
      });
      const { payload } = await jwtVerify(
        token,
        createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]),
        {
          issuer: bed.issuer,
          audience: 'rp',
        },
      );
      assert.equal(payload.sub, `system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`);
    });

    it('answers HEAD with the same headers and no body', async () => {
      const get = await http(`${serve.base}/cluster-a${JWKS}`);
      const head = await http(`${serve.base}/cluster-a${JWKS}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.body.length, 0);
      for (const h of ['content-type', 'content-length', 'cache-control', 'etag']) {
        assert.equal(head.headers.get(h), get.headers.get(h), h);
      }
    });

    it('answers 304 to If-None-Match with the ETag, and 200 to another', async () => {
      const first = await http(`${serve.base}/cluster-a${DISCOVERY}`);
      const etag = first.headers.get('etag') ?? '';
      const again = await http(`${serve.base}/cluster-a${DISCOVERY}`, { headers: { 'if-none-match': etag } });
      assert.equal(again.status, 304);
      assert.equal(again.body.length, 0);
      assert.equal(again.headers.get('etag'), etag);
      const other = await http(`${serve.base}/cluster-a${DISCOVERY}`, {
        headers: { 'if-none-match': '"x"' },
      });
      assert.equal(other.status, 200);
    });

    it('answers 404 to every other path, and 405 with Allow to other methods', async () => {
      for (const path of [
        '/',
        DISCOVERY,
        JWKS,
        '/cluster-a/',
        `/cluster-a${JWKS}/`,
        '/cluster-a/openid/v1/jwks.json',
        '/metrics',
      ]) {
        const r = await http(`${serve.base}${path}`);
        assert.equal(r.status, 404, `GET ${path}`);
        assert.equal(r.headers.get('cache-control'), 'no-store');
      }
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        const r = await http(`${serve.base}/cluster-a${JWKS}`, {
          method,
          body: method === 'DELETE' ? null : '{}',
        });
        assert.equal(r.status, 405, method);
        assert.equal(r.headers.get('allow'), 'GET, HEAD');
      }
    });

    it('counts requests by path and status and records the last good read on /metrics', async () => {
      const text = await serve.metrics();
      assert.ok(
        metricSum(
          text,
          `oidc_publisher_serve_requests_total\\{issuer="[^"]*",path="/cluster-a${JWKS}",status="200"\\}`,
        ) >= 2,
        text,
      );
      assert.ok(
        metricSum(
          text,
          'oidc_publisher_serve_requests_total\\{issuer="[^"]*",path="other",status="404"\\}',
        ) >= 7,
      );
      assert.ok(
        metricSum(
          text,
          `oidc_publisher_serve_requests_total\\{issuer="[^"]*",path="/cluster-a${JWKS}",status="405"\\}`,
        ) >= 4,
      );
      assert.ok(
        metricSum(
          text,
          'oidc_publisher_serve_requests_total\\{issuer="[^"]*",path="/cluster-a/.well-known/openid-configuration",status="304"\\}',
        ) >= 1,
      );
      const last = metricSum(text, 'oidc_publisher_serve_last_refresh_success_timestamp_seconds');
      assert.ok(last > Date.now() / 1000 - 120 && last <= Date.now() / 1000 + 1, `last refresh ${last}`);
      assert.equal(metricSum(text, 'oidc_publisher_serve_published_keys'), 1);
    });
  });

  it('keeps serving the last good documents while the API server is unreachable; /readyz turns 503 after --stale-after', async () => {
    const proxy = new TcpProxy(await freePort(), bed.state.apiserver.port);
    await proxy.open();
    const through = join(bed.dir, `serve-proxy-${proxy.port}.kubeconfig`);
    writeFileSync(
      through,
      readFileSync(kubeconfig, 'utf8').replace(bed.apiserverURL, `https://127.0.0.1:${proxy.port}`),
      {
        mode: 0o600,
      },
    );
    const serve = await start(through, ['--sync-interval', '1s', '--stale-after', '3s']);
    try {
      await eventually('the first good read', async () =>
        (await serve.readyz()) === 200 ? true : undefined,
      );
      const before = await http(`${serve.base}${JWKS}`);
      assert.equal(before.status, 200);
      await proxy.close();
      const cutAt = Date.now();
      await eventually('a failed read', async () =>
        metricSum(
          await serve.metrics(),
          'oidc_publisher_serve_refresh_total\\{issuer="[^"]*",result="SOURCE_UNREACHABLE"\\}',
        ) > 0
          ? true
          : undefined,
      );
      // Until it goes stale and after, the documents are the last good ones, never an error.
      let readyzTurned = 0;
      while (Date.now() - cutAt < 6000) {
        const r = await http(`${serve.base}${JWKS}`);
        assert.equal(r.status, 200, 'the last good JWKS is still served');
        assert.deepEqual(r.body, before.body);
        assert.equal(r.headers.get('etag'), before.headers.get('etag'));
        assert.equal((await fetch(`${serve.health}/healthz`)).status, 200, '/healthz stays 200');
        if (!readyzTurned && (await serve.readyz()) === 503) readyzTurned = Date.now() - cutAt;
        await sleep(250);
      }
      assert.ok(readyzTurned >= 2000, `/readyz turned 503 ${readyzTurned} ms after the cut, not before ~3s`);
      assert.equal(await serve.readyz(), 503);
      // The API server back: ready again at the next read.
      await proxy.open();
      await eventually(
        'ready again',
        async () => ((await serve.readyz()) === 200 ? true : undefined),
        20_000,
      );
    } finally {
      await proxy.close();
    }
  });

  it('never passes a 401 from the API server through: 503 until a good read, not ready', async () => {
    const bogus = join(bed.dir, 'serve-bogus-token.kubeconfig');
    writeFileSync(bogus, readFileSync(kubeconfig, 'utf8').replace(/token: .*/, 'token: not-a-real-token'), {
      mode: 0o600,
    });
    const serve = await start(bogus, ['--sync-interval', '1s', '--stale-after', '3s']);
    await eventually('a refused read', async () =>
      metricSum(
        await serve.metrics(),
        'oidc_publisher_serve_refresh_total\\{issuer="[^"]*",result="SOURCE_UNAUTHORIZED"\\}',
      ) >= 2
        ? true
        : undefined,
    );
    for (const path of [DISCOVERY, JWKS]) {
      const r = await http(`${serve.base}${path}`);
      assert.equal(r.status, 503, `${path}: ${r.body.toString()}`);
      assert.equal(r.headers.get('cache-control'), 'no-store');
      assert.doesNotMatch(r.body.toString(), /Unauthorized|"kind"/, 'no upstream body');
    }
    assert.equal(await serve.readyz(), 503);
  });

  describe('against a stand-in API server that answers 500 on demand', () => {
    // A real API server cannot be made to answer 500 on its issuer endpoints; this stand-in
    // serves with the bed's certificate and either fails or replays the real documents.
    let standIn: HttpsServer;
    let mode: 'fail' | 'good' = 'fail';
    let standInConfig: string;

    before(async () => {
      const pki = join(bed.dir, 'pki');
      standIn = createHttpsServer(
        { cert: readFileSync(join(pki, 'serving.crt')), key: readFileSync(join(pki, 'serving.key')) },
        (req, res) => {
          const body =
            req.url === DISCOVERY ? upstream.discovery : req.url === JWKS ? upstream.jwks : undefined;
          if (mode === 'fail' || !body) {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(
              '{"kind":"Status","status":"Failure","message":"etcdserver: request timed out","code":500}',
            );
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        },
      );
      const port = await freePort();
      await new Promise<void>((resolve) => standIn.listen(port, '127.0.0.1', resolve));
      standInConfig = join(bed.dir, 'serve-stand-in.kubeconfig');
      writeFileSync(
        standInConfig,
        readFileSync(kubeconfig, 'utf8').replace(bed.apiserverURL, `https://127.0.0.1:${port}`),
        {
          mode: 0o600,
        },
      );
    });
    after(() => {
      standIn.closeAllConnections();
      standIn.close();
    });

    it('answers 503 while the source answers 500, serves once it answers, and keeps the last good through 500s', async () => {
      const serve = await start(standInConfig, ['--sync-interval', '1s', '--stale-after', '30s']);
      await eventually('a failed read', async () =>
        metricSum(
          await serve.metrics(),
          'oidc_publisher_serve_refresh_total\\{issuer="[^"]*",result="SOURCE_HTTP_ERROR"\\}',
        ) >= 2
          ? true
          : undefined,
      );
      for (const path of [DISCOVERY, JWKS]) {
        const r = await http(`${serve.base}${path}`);
        assert.equal(r.status, 503, `${path} before any good read`);
        assert.doesNotMatch(r.body.toString(), /etcdserver|Status/, 'no upstream body');
      }
      mode = 'good';
      await eventually('documents served', async () =>
        (await http(`${serve.base}${JWKS}`)).status === 200 ? true : undefined,
      );
      const good = await http(`${serve.base}${JWKS}`);
      mode = 'fail';
      const failuresBefore = metricSum(
        await serve.metrics(),
        'oidc_publisher_serve_refresh_total\\{issuer="[^"]*",result="SOURCE_HTTP_ERROR"\\}',
      );
      await eventually('more failed reads', async () =>
        metricSum(
          await serve.metrics(),
          'oidc_publisher_serve_refresh_total\\{issuer="[^"]*",result="SOURCE_HTTP_ERROR"\\}',
        ) >=
        failuresBefore + 2
          ? true
          : undefined,
      );
      const later = await http(`${serve.base}${JWKS}`);
      assert.equal(later.status, 200, 'the 500 is not passed through');
      assert.deepEqual(later.body, good.body);
      assert.equal(await serve.readyz(), 200, 'still within --stale-after');
    });
  });
});
