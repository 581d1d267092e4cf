/**
 * The operator as users run it: the image built from the Dockerfile, installed as Pods on the
 * bed's real node with `kubectl apply -k` of config/default (the image overridden by a kustomize
 * overlay, as a user pins their own build) and then with `helm install` of the chart. Observed
 * only from outside: kubectl, anonymous HTTPS to the bucket, jose, the metrics Service.
 *
 * Needs root (a real node): npm run test:node.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { Bed } from '../bed/bed.ts';
import { type BuiltImage, buildProjectImage, PROJECT_IMAGE_REPO } from '../bed/container-image.ts';
import { request } from '../bed/http.ts';
import { NODE_NETWORK } from '../bed/node.ts';
import { writeOverlay } from '../bed/overlay.ts';
import { toolPaths } from '../bed/tools.ts';
import {
  createSecret,
  eventually,
  metricSum,
  OPERATOR_NAMESPACE,
  ROOT,
  verifyAsRelyingParty,
} from '../e2e/harness.ts';

const execFileAsync = promisify(execFile);
const NS = OPERATOR_NAMESPACE;
const PUBLISHER = 'cluster-issuer';
const PREFIX = 'public/cluster-a';
const AUDIENCE = 'bed-relying-party';
const SELECTOR = 'app.kubernetes.io/name=oidc-publisher';

interface PodView {
  metadata: { name: string; creationTimestamp: string; deletionTimestamp?: string };
  status: { phase: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

/** GET on a new connection each time, so a Service's balancing picks an endpoint per scrape. */
function scrape(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
  });
}

function timed(label: string, since: number): void {
  process.stderr.write(`  ${label}: ${((Date.now() - since) / 1000).toFixed(1)}s\n`);
}

describe('the operator as Pods of its image on a real node', { timeout: 900_000 }, () => {
  let bed: Bed;
  let image: BuiltImage;
  let overlay: string;
  let publicBase: string;
  const ipForwardBefore = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();

  const kubectl = (args: readonly string[], input?: string) =>
    bed.kubectl(args, input === undefined ? {} : { input });

  before(async () => {
    let t = Date.now();
    // A run cut short (CI timeout, ^C) still takes the node down: its Pods, bridge and cgroups.
    for (const signal of ['SIGINT', 'SIGTERM'] as const)
      process.once(signal, () => {
        void (bed ? bed.stop() : Promise.resolve()).finally(() => process.exit(130));
      });
    bed = await Bed.start({ node: true });
    timed('bed with a node up', t);
    t = Date.now();
    image = await buildProjectImage(join(bed.dir, 'image-build'));
    const node = bed.node;
    assert.ok(node, 'the bed runs a node');
    await node.importImage(image.tarball);
    timed(`image ${image.ref}${image.cached ? ' (cached)' : ' (built)'} in the node`, t);
    publicBase = `${bed.state.s3.endpoint}/${bed.state.s3.bucket}`;
    overlay = mkdtempSync(join(tmpdir(), 'oidc-overlay-'));
  });

  after(async () => {
    await bed?.stop();
    if (overlay) rmSync(overlay, { recursive: true, force: true });
  });

  async function pods(): Promise<PodView[]> {
    return (
      JSON.parse(await kubectl(['get', 'pods', '-n', NS, '-l', SELECTOR, '-o', 'json'])) as {
        items: PodView[];
      }
    ).items;
  }

  async function leader(): Promise<string> {
    const lease = JSON.parse(await kubectl(['get', 'lease', 'oidc-publisher', '-n', NS, '-o', 'json'])) as {
      spec: { holderIdentity?: string };
    };
    return lease.spec.holderIdentity ?? '';
  }

  /** Polls the published issuer every 100 ms until stopped; returns every failed fetch. */
  function watchIssuer(): { stop(): Promise<{ fetches: number; failures: string[] }> } {
    const ca = bed.ca;
    let running = true;
    const failures: string[] = [];
    let fetches = 0;
    const loop = (async () => {
      while (running) {
        for (const path of ['.well-known/openid-configuration', 'openid/v1/jwks']) {
          const res = await request(`${publicBase}/${PREFIX}/${path}`, { ca, timeoutMs: 2000 }).catch(
            (err: unknown) => ({ status: 0, err }),
          );
          fetches++;
          if (res.status !== 200) failures.push(`${new Date().toISOString()} ${path}: HTTP ${res.status}`);
        }
        await sleep(100);
      }
    })();
    return {
      stop: async () => {
        running = false;
        await loop;
        return { fetches, failures };
      },
    };
  }

  /** Changes the publisher's Cache-Control and waits until the bucket serves it: proves a leader reconciles. */
  async function reconciledBy(cacheControl: string): Promise<void> {
    await kubectl([
      'patch',
      'oidcpublisher',
      PUBLISHER,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { cacheControl } }),
    ]);
    const ca = bed.ca;
    await eventually(
      `the bucket to serve Cache-Control "${cacheControl}"`,
      async () => {
        const res = await request(`${publicBase}/${PREFIX}/openid/v1/jwks`, { ca });
        return res.headers['cache-control'] === cacheControl ? true : undefined;
      },
      90_000,
    );
  }

  /** Waits until the publisher is Ready; on failure, says what its conditions and the leader's log say. */
  async function publisherReady(): Promise<void> {
    try {
      await kubectl(['wait', '--for=condition=Ready', `oidcpublisher/${PUBLISHER}`, '--timeout=120s']);
    } catch (err) {
      const status = await kubectl(['get', 'oidcpublisher', PUBLISHER, '-o', 'jsonpath={.status}']).catch(
        String,
      );
      const holder = await leader().catch(() => '');
      const logs = holder
        ? await kubectl(['logs', '-n', NS, holder, '-c', 'manager', '--tail=20']).catch(String)
        : `no leader; pods: ${await kubectl(['get', 'pods', '-n', NS, '-o', 'wide']).catch(String)}`;
      throw new Error(
        `${PUBLISHER} not Ready: ${String(err)}\nstatus: ${status}\nleader ${holder} log:\n${logs}`,
      );
    }
  }

  function publisherYaml(): string {
    const doc = parse(readFileSync(join(ROOT, 'config', 'samples', 'oidcpublisher_s3.yaml'), 'utf8')) as {
      metadata: { name: string };
      spec: Record<string, unknown> & { storage: { s3: Record<string, unknown> } };
    };
    doc.metadata.name = PUBLISHER;
    doc.spec.issuerURL = bed.issuer;
    doc.spec.syncInterval = '10s';
    // Deleting it empties the prefix, so the chart's publisher of the same issuer may write there.
    doc.spec.deletionPolicy = 'Delete';
    doc.spec.storage.s3 = {
      ...doc.spec.storage.s3,
      bucket: bed.state.s3.bucket,
      region: bed.state.s3.region,
      prefix: PREFIX,
      endpoint: bed.state.s3.endpoint,
      forcePathStyle: true,
      credentialsSecretRef: { name: 's3-writer' },
    };
    return stringify(doc);
  }

  it('kubectl apply -k of config/default, the image overridden by a kustomize overlay, brings two replicas Ready', async () => {
    const t = Date.now();
    // What a user with a private CA and their own build does: trust the CA, pin the image.
    writeOverlay(overlay, {
      image: image.ref,
      ca: bed.ca,
      storageAllowedHosts: `s3=${NODE_NETWORK.hostAddress}`,
    });
    const rendered = await kubectl(['kustomize', overlay]);
    assert.match(rendered, new RegExp(`image: ${image.ref.replace(/[.]/g, '\\.')}`));
    await kubectl(['apply', '-k', overlay]);
    await kubectl(['rollout', 'status', 'deployment/oidc-publisher', '-n', NS, '--timeout=180s']);
    const ready = (await pods()).filter((p) =>
      p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    assert.equal(ready.length, 2, `two Ready Pods, got ${ready.map((p) => p.metadata.name).join(', ')}`);
    timed('apply -k to rollout complete', t);
  });

  it('an OidcPublisher goes Ready and the issuer is served anonymously from the bucket', async () => {
    const t = Date.now();
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    await kubectl(['apply', '-f', '-'], publisherYaml());
    await publisherReady();
    const res = await request(`${publicBase}/${PREFIX}/.well-known/openid-configuration`, { ca: bed.ca });
    assert.equal(res.status, 200);
    assert.equal((res.json() as { issuer: string }).issuer, bed.issuer);
    timed('OidcPublisher Ready', t);
  });

  it("a workload Pod's projected token verifies against the public issuer", async () => {
    await kubectl(['create', 'namespace', 'workload']);
    await kubectl(['create', 'serviceaccount', 'app', '-n', 'workload']);
    await kubectl(
      ['apply', '-f', '-'],
      stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'app', namespace: 'workload' },
        spec: {
          serviceAccountName: 'app',
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 1000,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'app',
              image: image.ref,
              imagePullPolicy: 'Never',
              command: ['node', '-e', 'setInterval(() => {}, 3600e3)'],
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
              volumeMounts: [{ name: 'token', mountPath: '/var/run/secrets/tokens', readOnly: true }],
            },
          ],
          volumes: [
            {
              name: 'token',
              projected: {
                sources: [
                  { serviceAccountToken: { audience: AUDIENCE, expirationSeconds: 3600, path: 'token' } },
                ],
              },
            },
          ],
        },
      }),
    );
    await kubectl(['wait', '--for=condition=Ready', 'pod/app', '-n', 'workload', '--timeout=120s']);
    const token = (
      await kubectl(['exec', '-n', 'workload', 'app', '--', 'cat', '/var/run/secrets/tokens/token'])
    ).trim();
    const payload = await verifyAsRelyingParty(bed.issuer, token, AUDIENCE, bed.ca);
    assert.equal(payload.sub, 'system:serviceaccount:workload:app');
    const pod = (payload['kubernetes.io'] as { pod?: { name?: string } } | undefined)?.pod?.name;
    assert.equal(pod, 'app', 'the token is bound to the Pod');
    // The Pod can reach the bed and nothing else: no default route, only 198.18.0.0/15.
    const routes = (await kubectl(['exec', '-n', 'workload', 'app', '--', 'cat', '/proc/net/route']))
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => {
        const [, dest = '', gw = '', , , , , mask = ''] = l.trim().split(/\s+/);
        const ip = (hex: string) =>
          (hex.match(/../g) ?? [])
            .reverse()
            .map((b) => Number.parseInt(b, 16))
            .join('.');
        return `${ip(dest)}/${ip(mask)} via ${ip(gw)}`;
      })
      .sort();
    assert.deepEqual(routes, [
      '198.18.0.0/255.254.0.0 via 198.18.0.1',
      '198.18.0.0/255.255.255.0 via 0.0.0.0',
    ]);
    assert.equal(
      readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(),
      ipForwardBefore,
      'IP forwarding on this machine is as it was',
    );
    await assert.rejects(
      verifyAsRelyingParty(bed.issuer, token, 'another-audience', bed.ca),
      /aud/,
      'a token for another audience is refused',
    );
  });

  it('the running Pod cannot write its root filesystem and runs as 65532', async () => {
    const name = (await pods())[0]?.metadata.name ?? '';
    const out = await kubectl([
      'exec',
      '-n',
      NS,
      name,
      '-c',
      'manager',
      '--',
      'node',
      '-e',
      `const fs = require('node:fs'); const tries = {};
       for (const p of ['/app/probe', '/tmp/probe', '/probe']) {
         try { fs.writeFileSync(p, 'x'); tries[p] = 'written'; } catch (e) { tries[p] = e.code; }
       }
       console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), tries }));`,
    ]);
    const seen = JSON.parse(out) as { uid: number; gid: number; tries: Record<string, string> };
    assert.deepEqual(seen, {
      uid: 65532,
      gid: 65532,
      tries: { '/app/probe': 'EROFS', '/tmp/probe': 'EROFS', '/probe': 'EROFS' },
    });
  });

  it("kubectl logs shows the operator's pino JSON lines", async () => {
    const holder = await leader();
    assert.ok(holder, 'a replica holds the lease');
    const text = await kubectl(['logs', '-n', NS, holder, '-c', 'manager']);
    const lines = text.split('\n').filter(Boolean);
    const parsed = lines.map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    });
    assert.ok(lines.length > 0, 'the leader logged');
    assert.deepEqual(
      lines.filter((_, i) => !parsed[i]),
      [],
      'every line is JSON',
    );
    assert.ok(
      parsed.every(
        (l) =>
          typeof l?.level === 'string' &&
          typeof l.time === 'string' &&
          !Number.isNaN(Date.parse(l.time)) &&
          l.app === 'oidc-publisher' &&
          typeof l.msg === 'string',
      ),
      `pino lines (level label, ISO time, app, msg):\n${lines.slice(0, 3).join('\n')}`,
    );
    assert.ok(
      parsed.some((l) => l?.oidcpublisher === PUBLISHER),
      `a line about ${PUBLISHER} in:\n${lines.slice(-10).join('\n')}`,
    );
  });

  it('/metrics is scraped through the metrics Service', async () => {
    const svc = JSON.parse(
      await kubectl(['get', 'service', 'oidc-publisher-metrics', '-n', NS, '-o', 'json']),
    ) as {
      spec: { clusterIP: string; ports: { port: number }[] };
    };
    assert.match(svc.spec.clusterIP, /^198\.19\.0\./);
    const url = `http://${svc.spec.clusterIP}:${svc.spec.ports[0]?.port}/metrics`;
    const text = await eventually('the Service to answer', async () => {
      const res = await fetch(url, { signal: AbortSignal.timeout(3000) }).catch(() => undefined);
      return res?.status === 200 ? res.text() : undefined;
    });
    assert.match(text, /^# TYPE oidc_publisher_reconcile_total counter$/m);
    // The Service balances over both replicas: scrapes see the leader (1) and the standby (0).
    const leaderValues = new Set<number>();
    for (let i = 0; i < 40 && leaderValues.size < 2; i++) {
      leaderValues.add(metricSum(await scrape(url), 'oidc_publisher_leader'));
    }
    assert.deepEqual([...leaderValues].sort(), [0, 1], 'scrapes reach the leader and the standby');
  });

  it('the leader Pod deleted: the other replica takes over, the issuer served throughout', async () => {
    const t = Date.now();
    const before = await leader();
    const others = (await pods()).map((p) => p.metadata.name).filter((n) => n !== before);
    assert.equal(others.length, 1, 'one standby');
    const watch = watchIssuer();
    let result: Awaited<ReturnType<typeof watch.stop>>;
    try {
      await kubectl(['delete', 'pod', before, '-n', NS, '--wait=false']);
      // The standby, or the Pod that replaces the deleted one when it starts first.
      const holder = await eventually(
        'another replica to hold the lease',
        async () => {
          const h = await leader();
          return h && h !== before ? h : undefined;
        },
        90_000,
      );
      timed(
        `leader deleted to ${holder === others[0] ? 'the standby' : 'its replacement'} holding the lease`,
        t,
      );
      await reconciledBy('public, max-age=120');
      await kubectl(['wait', '--for=delete', `pod/${before}`, '-n', NS, '--timeout=60s']);
    } finally {
      result = await watch.stop();
    }
    const { fetches, failures } = result;
    assert.deepEqual(failures, [], `the issuer was served throughout (${fetches} fetches)`);
    assert.ok(fetches > 0);
  });

  it('kubectl rollout restart keeps the issuer served', async () => {
    const t = Date.now();
    const old = new Set((await pods()).map((p) => p.metadata.name));
    const watch = watchIssuer();
    let result: Awaited<ReturnType<typeof watch.stop>>;
    try {
      await kubectl(['rollout', 'restart', 'deployment/oidc-publisher', '-n', NS]);
      await kubectl(['rollout', 'status', 'deployment/oidc-publisher', '-n', NS, '--timeout=180s']);
      await eventually(
        'a new Pod to hold the lease',
        async () => {
          const holder = await leader();
          return holder && !old.has(holder) ? true : undefined;
        },
        90_000,
      );
      await reconciledBy('public, max-age=180');
    } finally {
      result = await watch.stop();
    }
    const { fetches, failures } = result;
    assert.deepEqual(failures, [], `the issuer was served throughout (${fetches} fetches)`);
    timed('rollout restart', t);
  });

  it('helm install of the chart does the same: Ready replicas, Ready publisher, metrics', async () => {
    const t = Date.now();
    await kubectl(['delete', 'oidcpublisher', PUBLISHER, '--timeout=60s']);
    const gone = await request(`${publicBase}/${PREFIX}/openid/v1/jwks`, { ca: bed.ca });
    assert.notEqual(gone.status, 200, 'deleting the publisher (deletionPolicy Delete) removed its objects');
    await kubectl(['delete', '-k', overlay, '--timeout=120s']);
    await eventually(
      'the Pods to be gone',
      async () => ((await pods()).length === 0 ? true : undefined),
      60_000,
    );
    const helm = toolPaths().helm;
    const tag = image.ref.slice(PROJECT_IMAGE_REPO.length + 1);
    await execFileAsync(
      helm,
      [
        'install',
        'oidc-publisher',
        join(ROOT, 'charts', 'oidc-publisher'),
        '--namespace',
        NS,
        '--create-namespace',
        '--set',
        `image.repository=${PROJECT_IMAGE_REPO}`,
        '--set',
        `image.tag=${tag}`,
        '--set',
        'image.pullPolicy=Never',
        '--set-json',
        `storageAllowedHosts=${JSON.stringify([`s3=${NODE_NETWORK.hostAddress}`])}`,
        // The bed's object store has a certificate of the cluster's own CA, which every Pod has mounted.
        '--set',
        'extraEnv[0].name=NODE_EXTRA_CA_CERTS',
        '--set',
        'extraEnv[0].value=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt',
        '--wait',
        '--timeout',
        '180s',
      ],
      { env: { ...process.env, KUBECONFIG: bed.adminKubeconfig, HOME: bed.dir } },
    );
    const ready = (await pods()).filter((p) =>
      p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    assert.equal(ready.length, 2, 'the chart runs two Ready replicas');
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    await kubectl(['apply', '-f', '-'], publisherYaml());
    await publisherReady();
    const token = await bed.mintToken({ namespace: 'workload', serviceAccount: 'app', audience: AUDIENCE });
    const payload = await verifyAsRelyingParty(bed.issuer, token, AUDIENCE, bed.ca);
    assert.equal(payload.sub, 'system:serviceaccount:workload:app');
    const services = JSON.parse(
      await kubectl(['get', 'services', '-n', NS, '-l', SELECTOR, '-o', 'json']),
    ) as {
      items: { spec: { clusterIP: string; ports: { port: number }[] } }[];
    };
    const svc = services.items[0];
    assert.ok(svc, 'the chart has a metrics Service');
    const text = await eventually('the metrics Service to answer', async () => {
      const res = await fetch(`http://${svc.spec.clusterIP}:${svc.spec.ports[0]?.port}/metrics`, {
        signal: AbortSignal.timeout(3000),
      }).catch(() => undefined);
      return res?.status === 200 ? res.text() : undefined;
    });
    assert.match(text, /^# TYPE oidc_publisher_reconcile_total counter$/m);
    timed('helm install to a verified token', t);
  });
});
