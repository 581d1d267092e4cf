/**
 * The fleet acceptance of the "reach" issue: 100 OidcPublishers reading three
 * sources (three kubeconfig Secrets) reach Ready; when one source's API server
 * goes down, only its publishers turn Ready=False/SourceUnreachable, and the
 * others keep syncing on time.
 *
 * The bed has one API server, so the three sources are three ServiceAccounts
 * on it, each in an inline kubeconfig Secret; the third reaches it through a
 * loopback TCP proxy that this test closes to take that source down. Observed
 * from outside: status through the API, and the operator's "up to date" log
 * lines (with their times) for the syncs that change nothing.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { before, describe, it } from 'node:test';
import type { Bed } from '../bed/bed.ts';
import { request } from '../bed/http.ts';
import { useBed } from '../bed/shared.ts';
import {
  applyYaml,
  createSecret,
  eventually,
  installOperator,
  OperatorProcess,
  samplePublisher,
} from './harness.ts';

const PUBLISHERS = 100;
const SOURCES = ['source-a', 'source-b', 'source-c'] as const;
/** The source behind the proxy, taken down by the test. */
const DOWN = 'source-c';
const SYNC_INTERVAL_MS = 10_000;
/** How late a sync may come after its interval: queueing behind the others, and a loaded machine. */
const MARGIN_MS = 5_000;

/** A loopback TCP proxy to the API server; close() refuses new connections and cuts the open ones. */
async function tcpProxy(target: URL): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

interface Listed {
  items: {
    metadata: { name: string; generation?: number };
    spec: { source?: { kubeconfigSecretRef?: { name: string } } };
    status?: { conditions?: { type: string; status: string; reason: string; observedGeneration?: number }[] };
  }[];
}

describe('a fleet of 100 publishers over 3 sources, one of which goes down', () => {
  let bed: Bed;
  let op: OperatorProcess | undefined;
  let proxy: Awaited<ReturnType<typeof tcpProxy>> | undefined;
  const useOwn = useBed(
    { gcs: false },
    {
      beforeStop: async () => {
        await op?.stop('SIGTERM');
        await proxy?.close();
      },
    },
  );
  const sourceOf = (i: number) => SOURCES[i % SOURCES.length] ?? 'source-a';
  const nameOf = (i: number) => `fleet-${String(i).padStart(3, '0')}`;

  /** Every publisher's Ready condition, by name, read as the bed admin. */
  async function readiness(): Promise<Map<string, { status: string; reason: string; source: string }>> {
    const res = await request(`${bed.apiserverURL}/apis/oidcpublisher.io/v1alpha1/oidcpublishers`, {
      ca: bed.ca,
      cert: readFileSync(bed.state.admin.cert),
      key: readFileSync(bed.state.admin.key),
    });
    assert.equal(res.status, 200, 'list OidcPublishers');
    const out = new Map<string, { status: string; reason: string; source: string }>();
    for (const p of (res.json() as Listed).items) {
      const ready = p.status?.conditions?.find(
        (c) => c.type === 'Ready' && c.observedGeneration === p.metadata.generation,
      );
      out.set(p.metadata.name, {
        status: ready?.status ?? 'Unknown',
        reason: ready?.reason ?? '',
        source: p.spec.source?.kubeconfigSecretRef?.name ?? '',
      });
    }
    return out;
  }

  /** When each publisher's syncs that changed nothing ended, from the operator's log lines. */
  function syncTimes(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const l of op?.logs() ?? []) {
      if (l.msg !== 'up to date' && l.msg !== 'published') continue;
      const name = String(l.oidcpublisher);
      const times = out.get(name) ?? [];
      times.push(Date.parse(String(l.time)));
      out.set(name, times);
    }
    return out;
  }

  before(async () => {
    bed = useOwn();
    const kubeconfig = await installOperator(bed);
    await createSecret(bed, 's3-writer', {
      AWS_ACCESS_KEY_ID: bed.state.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: bed.state.s3.secretAccessKey,
    });
    proxy = await tcpProxy(new URL(bed.apiserverURL));
    for (const source of SOURCES) {
      await bed.serviceAccountKubeconfig('fleet-sources', source);
      await applyYaml(
        bed,
        `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: issuer-reader-${source}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:service-account-issuer-discovery
subjects:
- kind: ServiceAccount
  name: ${source}
  namespace: fleet-sources
`,
      );
      const token = await bed.mintToken({ namespace: 'fleet-sources', serviceAccount: source });
      const server = source === DOWN ? proxy.url : bed.apiserverURL;
      await createSecret(bed, source, { kubeconfig: bed.inlineKubeconfig(token, server) });
    }
    const items = Array.from({ length: PUBLISHERS }, (_, i) =>
      samplePublisher(bed, {
        name: nameOf(i),
        spec: {
          syncInterval: `${SYNC_INTERVAL_MS / 1000}s`,
          source: { kubeconfigSecretRef: { name: sourceOf(i) } },
        },
        // The first keeps the issuer URL served, which every publisher reads back.
        s3: { prefix: i === 0 ? 'public/cluster-a' : `fleet/${nameOf(i)}` },
      }),
    );
    await bed.kubectl(['create', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }),
    });
    op = await OperatorProcess.start(bed, kubeconfig, ['--leader-elect', 'false']);
  });

  it('brings all 100 publishers to Ready', async () => {
    let last = new Map<string, { status: string; reason: string; source: string }>();
    await eventually(
      `${PUBLISHERS} publishers Ready`,
      async () => {
        last = await readiness();
        return [...last.values()].filter((r) => r.status === 'True').length === PUBLISHERS ? true : undefined;
      },
      120_000,
    ).catch((err: Error) => {
      const notReady = [...last].filter(([, r]) => r.status !== 'True').slice(0, 5);
      throw new Error(`${err.message}; not Ready, for example: ${JSON.stringify(notReady)}`);
    });
  });

  it("turns only the down source's publishers SourceUnreachable, while the others keep syncing on time", async () => {
    // Every publisher has finished a sync since the operator started.
    await eventually(
      'a sync that changed nothing for every publisher',
      async () => {
        const times = syncTimes();
        return Array.from({ length: PUBLISHERS }, (_, i) => nameOf(i)).every(
          (n) => (times.get(n)?.length ?? 0) > 0,
        )
          ? true
          : undefined;
      },
      60_000,
    );

    const outage = Date.now();
    await proxy?.close();
    const downs = Array.from({ length: PUBLISHERS }, (_, i) => i)
      .filter((i) => sourceOf(i) === DOWN)
      .map(nameOf);
    const healthy = Array.from({ length: PUBLISHERS }, (_, i) => i)
      .filter((i) => sourceOf(i) !== DOWN)
      .map(nameOf);

    // Every publisher of the down source notices at its next sync.
    let view = new Map<string, { status: string; reason: string; source: string }>();
    await eventually(
      `the ${downs.length} publishers of ${DOWN} Ready=False/SourceUnreachable`,
      async () => {
        view = await readiness();
        return downs.every((n) => view.get(n)?.reason === 'SourceUnreachable') ? true : undefined;
      },
      SYNC_INTERVAL_MS + 2 * MARGIN_MS + 10_000,
    );
    const allDown = Date.now();

    // The healthy ones keep syncing for another full interval after that.
    const until = allDown + SYNC_INTERVAL_MS + MARGIN_MS;
    while (Date.now() < until) await new Promise((r) => setTimeout(r, 500));
    view = await readiness();
    const times = syncTimes();

    const notReady = healthy.filter((n) => view.get(n)?.status !== 'True');
    assert.deepEqual(notReady, [], `healthy publishers that are not Ready: ${notReady.join(', ')}`);
    const wronglyUp = downs.filter((n) => view.get(n)?.reason !== 'SourceUnreachable');
    assert.deepEqual(wronglyUp, [], `publishers of ${DOWN} that are not SourceUnreachable`);

    const late: string[] = [];
    for (const n of healthy) {
      // The last sync before the outage, then every one until the end: no gap longer than the interval and margin.
      const all = times.get(n) ?? [];
      const before = all.filter((t) => t <= outage).at(-1) ?? outage;
      const during = all.filter((t) => t > outage && t <= until);
      let previous = before;
      for (const t of [...during, until]) {
        if (t - previous > SYNC_INTERVAL_MS + MARGIN_MS) {
          late.push(
            `${n}: no sync for ${((t - previous) / 1000).toFixed(1)} s after ${new Date(previous).toISOString()}`,
          );
          break;
        }
        previous = t;
      }
      if (!during.some((t) => t - outage <= SYNC_INTERVAL_MS + MARGIN_MS)) {
        late.push(`${n}: no sync within ${(SYNC_INTERVAL_MS + MARGIN_MS) / 1000} s of the outage`);
      }
    }
    assert.deepEqual(
      late,
      [],
      `healthy publishers must keep syncing every ${SYNC_INTERVAL_MS / 1000} s (+${MARGIN_MS / 1000} s) while ${DOWN} is down`,
    );
  });
});
