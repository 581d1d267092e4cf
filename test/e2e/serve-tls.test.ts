/**
 * `oidc-publisher serve` over HTTPS, end to end, on a bed of its own: one
 * process serves two clusters (the bed's API server and a second one,
 * "cluster B") with --publisher, each on its issuer's host and path; its
 * certificate, in a directory laid out and updated as the kubelet updates a
 * mounted Secret, is rotated several times while clients make requests
 * continuously, each on a new connection checked against the bed's CA, and not
 * one request may fail; after the bed's API server rotates its signing key and
 * drops the old one, the old key stays in the served JWKS for --key-retention,
 * then leaves. Observed only from outside: HTTPS, /metrics, jose.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { type Bed, type ConsumerApiserver, freePort } from '../bed/bed.ts';
import { type Ca, issueCert } from '../bed/pki.ts';
import { SecretVolume } from '../bed/secret-volume.ts';
import { useBed } from '../bed/shared.ts';
import { eventually, metricSum, ROOT } from './harness.ts';

const NAMESPACE = 'oidc-issuer';
const SERVICE_ACCOUNT = 'oidc-issuer-server';
const DISCOVERY = '.well-known/openid-configuration';
const JWKS = 'openid/v1/jwks';
const KEY_RETENTION_S = 20;
const HSTS_MAX_AGE_S = 600;

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The serial number of the certificate the server presented. */
  serial: string;
}

/** A GET on a new connection, the server's chain checked against `ca` (never skipped). */
function get(url: string, ca: Buffer, host?: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca,
        agent: false,
        servername: 'localhost',
        timeout: 10_000,
        ...(host ? { headers: { host } } : {}),
      },
      (res) => {
        const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), serial }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

class ServeProcess {
  readonly output: string[] = [];
  readonly exited: Promise<number>;

  readonly child: ChildProcess;
  readonly base: string;
  readonly health: string;

  constructor(child: ChildProcess, base: string, health: string) {
    this.child = child;
    this.base = base;
    this.health = health;
    const collect = (chunk: Buffer) =>
      this.output.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 0))),
    );
  }

  async metrics(): Promise<string> {
    return (await fetch(`${this.health}/metrics`)).text();
  }

  async stop(): Promise<number> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

describe('oidc-publisher serve over HTTPS: two clusters, certificate rotation under load, retired keys', () => {
  let bed: Bed;
  let clusterB: ConsumerApiserver | undefined;
  let serve: ServeProcess | undefined;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        if (serve) {
          assert.equal(
            await serve.stop(),
            0,
            `serve exits 0 on SIGTERM:\n${serve.output.slice(-5).join('\n')}`,
          );
        }
        await clusterB?.stop();
      },
    },
  );
  let ca: Ca;
  let caPem: Buffer;
  let volume: SecretVolume;
  let issued = 0;
  const issue = () => {
    issued += 1;
    const files = issueCert(ca, `serve-${issued}`, {
      commonName: 'localhost',
      serverNames: ['127.0.0.1', 'localhost'],
    });
    return { 'tls.crt': readFileSync(files.cert), 'tls.key': readFileSync(files.key) };
  };
  const serialOf = (pem: Buffer) => new X509Certificate(pem).serialNumber;
  /** The two issuers' document URLs on the serve process. */
  const url = (issuer: string, doc: string) => `${serve?.base}${new URL(issuer).pathname}/${doc}`;

  before(async () => {
    bed = useOwn();
    const dir = join(bed.dir, 'serve-tls');
    mkdirSync(dir, { recursive: true });
    // The bed's CA (ca.key next to ca.crt), issuing into a directory of this suite's own.
    ca = { dir, cert: bed.state.caFile, key: join(dirname(bed.state.caFile), 'ca.key') };
    caPem = readFileSync(ca.cert);
    volume = new SecretVolume(join(dir, 'secret'), issue());
    clusterB = await bed.startConsumerApiserver({
      name: 'cluster-b',
      authenticationConfig:
        'apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt: []\n',
    });
    // The bed admin's client certificate: a ServiceAccount token would be refused once the API
    // server drops the key that signed it (the last case), as a real one would be until renewed.
    const kubeconfigA = bed.state.admin.kubeconfig;
    await bed.serviceAccountKubeconfig(NAMESPACE, SERVICE_ACCOUNT);
    const [port, healthPort] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'src', 'cli.ts'),
        'serve',
        '--publisher',
        `issuer=${bed.issuer},kubeconfig=${kubeconfigA}`,
        '--publisher',
        `issuer=${clusterB.issuer},kubeconfig=${clusterB.kubeconfig}`,
        '--tls-cert-file',
        volume.path('tls.crt'),
        '--tls-private-key-file',
        volume.path('tls.key'),
        '--hsts-max-age',
        `${HSTS_MAX_AGE_S}s`,
        '--key-retention',
        `${KEY_RETENTION_S}s`,
        '--sync-interval',
        '1s',
        '--stale-after',
        '60s',
        '--listen',
        `127.0.0.1:${port}`,
        '--health-addr',
        `127.0.0.1:${healthPort}`,
        '--log-level',
        'debug',
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
    serve = new ServeProcess(child, `https://127.0.0.1:${port}`, `http://127.0.0.1:${healthPort}`);
    const s = serve;
    await eventually(
      'both publishers read once (/readyz 200)',
      async () =>
        (await fetch(`${s.health}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined,
      60_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${s.output.slice(-20).join('\n')}`);
    });
  });

  it('serves each cluster at its issuer path over HTTPS, with HSTS; another host is 404', async () => {
    assert.ok(clusterB);
    for (const [issuer, kid] of [
      [bed.issuer, bed.signingKey.kid],
      [clusterB.issuer, undefined],
    ] as const) {
      const d = await get(url(issuer, DISCOVERY), caPem);
      assert.equal(d.status, 200, `${issuer}: ${d.body.toString()}`);
      assert.equal(d.headers['strict-transport-security'], `max-age=${HSTS_MAX_AGE_S}`);
      const doc = JSON.parse(d.body.toString()) as { issuer: string; jwks_uri: string };
      assert.equal(doc.issuer, issuer);
      assert.equal(doc.jwks_uri, `${issuer}/${JWKS}`);
      const j = await get(url(issuer, JWKS), caPem);
      assert.equal(j.status, 200);
      assert.equal(j.headers['content-type'], 'application/jwk-set+json');
      const kids = (JSON.parse(j.body.toString()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
      assert.equal(kids.length, 1, `${issuer} serves its one key: ${kids.join(', ')}`);
      if (kid) assert.deepEqual(kids, [kid]);
    }
    const a = JSON.parse((await get(url(bed.issuer, JWKS), caPem)).body.toString()) as {
      keys: { kid: string }[];
    };
    const b = JSON.parse((await get(url(clusterB.issuer, JWKS), caPem)).body.toString()) as {
      keys: { kid: string }[];
    };
    assert.notEqual(a.keys[0]?.kid, b.keys[0]?.kid, 'two clusters, two keys');
    const unknown = await get(url(bed.issuer, DISCOVERY), caPem, 'unknown.example.com');
    assert.equal(unknown.status, 404, 'an unknown host is not served');
    assert.equal(unknown.headers['strict-transport-security'], `max-age=${HSTS_MAX_AGE_S}`);
    const text = await serve?.metrics();
    for (const issuer of [bed.issuer, clusterB.issuer]) {
      assert.ok(
        metricSum(text ?? '', `oidc_publisher_serve_refresh_total\\{issuer="${issuer}",result="ok"\\}`) >= 1,
        `a good read of ${issuer}`,
      );
    }
  });

  it('rotates its certificate five times under continuous load, a bad pair in between, without one failed request', async () => {
    assert.ok(clusterB && serve);
    const targets = [bed.issuer, clusterB.issuer].flatMap((i) => [url(i, DISCOVERY), url(i, JWKS)]);
    const stats = { requests: 0, failures: [] as string[], serials: new Map<string, number>() };
    let running = true;
    const worker = async (w: number) => {
      for (let n = w; running; n++) {
        const target = targets[n % targets.length] ?? '';
        try {
          const r = await get(target, caPem);
          stats.requests += 1;
          if (r.status !== 200) stats.failures.push(`${target}: HTTP ${r.status}`);
          else if (r.headers['strict-transport-security'] !== `max-age=${HSTS_MAX_AGE_S}`)
            stats.failures.push(`${target}: no HSTS`);
          else JSON.parse(r.body.toString());
          if (!stats.serials.has(r.serial)) stats.serials.set(r.serial, Date.now());
        } catch (err) {
          stats.requests += 1;
          stats.failures.push(`${target}: ${(err as Error).message}`);
        }
      }
    };
    const workers = [0, 1, 2, 3].map((w) => worker(w));
    const metric = async (result: string) =>
      metricSum(
        (await serve?.metrics()) ?? '',
        `oidc_publisher_serve_tls_reloads_total\\{result="${result}"\\}`,
      );
    const rotated: string[] = [];
    const tookMs: number[] = [];
    try {
      await sleep(1000);
      for (let i = 0; i < 5; i++) {
        if (i === 2) {
          // A pair whose key is not the certificate's: counted as an error, the current one kept.
          const serving = [...stats.serials.keys()].at(-1);
          const x = issue();
          const y = issue();
          const errors = await metric('error');
          volume.update({ 'tls.crt': x['tls.crt'], 'tls.key': y['tls.key'] });
          await eventually(
            'the bad pair counted',
            async () => ((await metric('error')) > errors ? true : undefined),
            10_000,
          );
          const after = await get(url(bed.issuer, JWKS), caPem);
          assert.equal(after.serial, serving, 'the bad pair is not served');
        }
        const next = issue();
        const serial = serialOf(next['tls.crt']);
        const t0 = Date.now();
        volume.update(next);
        await eventually(
          'the new certificate served',
          async () => (stats.serials.has(serial) ? true : undefined),
          15_000,
        );
        tookMs.push((stats.serials.get(serial) ?? 0) - t0);
        rotated.push(serial);
        await sleep(1000);
      }
    } finally {
      running = false;
      await Promise.all(workers);
    }
    const summary = `${stats.requests} requests, ${stats.failures.length} failed, ${rotated.length} rotations seen by clients after ${tookMs.join(', ')} ms`;
    console.log(`serve TLS rotation under load: ${summary}`);
    assert.deepEqual(stats.failures.slice(0, 10), [], summary);
    assert.ok(stats.requests >= 200, `continuous load: ${summary}`);
    for (const s of rotated) assert.ok(stats.serials.has(s), `certificate ${s} was served`);
    assert.equal(
      (await get(url(bed.issuer, JWKS), caPem)).serial,
      rotated.at(-1),
      'the last certificate is served',
    );
    assert.equal(await metric('ok'), 5);
    assert.ok((await metric('error')) >= 1);
  });

  it('keeps serving the key the API server dropped for --key-retention, then drops it', async () => {
    assert.ok(serve);
    const oldKid = bed.signingKey.kid;
    const token = await bed.mintToken({
      namespace: NAMESPACE,
      serviceAccount: SERVICE_ACCOUNT,
      audience: 'rp',
    });
    // The key retires at serve's first good read after the restart: not before this.
    const restartedFrom = Date.now();
    await bed.restartApiserver({ rotate: true, dropOldKeys: true });
    const newKid = bed.signingKey.kid;
    assert.notEqual(newKid, oldKid);
    const kids = async () =>
      (
        JSON.parse((await get(url(bed.issuer, JWKS), caPem)).body.toString()) as { keys: { kid: string }[] }
      ).keys.map((k) => k.kid);
    const both = await eventually(
      'the new key served with the retired one',
      async () => {
        const k = await kids();
        return k.includes(newKid) ? k : undefined;
      },
      30_000,
    );
    assert.deepEqual(both.sort(), [newKid, oldKid].sort(), 'the retired key is still served');
    const jwks = JSON.parse((await get(url(bed.issuer, JWKS), caPem)).body.toString());
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
      issuer: bed.issuer,
      audience: 'rp',
    });
    assert.equal(
      payload.sub,
      `system:serviceaccount:${NAMESPACE}:${SERVICE_ACCOUNT}`,
      'a token of the old key still verifies',
    );
    assert.match(
      await serve.metrics(),
      new RegExp(`oidc_publisher_serve_retained_keys\\{issuer="${bed.issuer.replaceAll('.', '\\.')}"\\} 1`),
    );
    await eventually(
      'the retired key dropped',
      async () => ((await kids()).includes(oldKid) ? undefined : true),
      (KEY_RETENTION_S + 30) * 1000,
    );
    // Retirement times are kept in whole seconds, as in status.keys: up to 1 s early.
    const droppedAfter = (Date.now() - restartedFrom) / 1000;
    console.log(`serve key retention: the retired key dropped ${droppedAfter}s after the restart began`);
    assert.ok(droppedAfter >= KEY_RETENTION_S - 1, `dropped ${droppedAfter}s after the restart began`);
    assert.deepEqual(await kids(), [newKid]);
  });
});
