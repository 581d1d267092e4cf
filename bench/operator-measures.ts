/**
 * The measurements of a running operator process: requests per unchanged
 * sync, memory when idle, cold start, key rotation propagation, and a fleet.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Bed } from '../test/bed/bed.ts';
import { request } from '../test/bed/http.ts';
import { applyYaml, metricSum } from '../test/e2e/harness.ts';
import { CountingProxy, countDelta } from './apiserver-proxy.ts';
import { ISSUER_PREFIX, kubeconfigFor, publisher, sourceSecrets } from './fixtures.ts';
import { BenchOperator, isSyncOf, type LogLine } from './operator.ts';
import { procCpuSeconds, procMemoryMb } from './stats.ts';

/** The publisher of the single-publisher measurements; its objects are the bed's issuer. */
export const SINGLE = 'bench-single';

export type Progress = (message: string) => void;

/** What every measurement of an operator process needs. */
export interface OperatorContext {
  bed: Bed;
  /** The operator's kubeconfig (its ServiceAccount). */
  kubeconfig: string;
  /** The entry point to run (see LaunchOptions.entry). */
  entry: string;
  /** Node flags for every operator process. */
  nodeArgs: string[];
  progress: Progress;
}

export async function createSinglePublisher(bed: Bed, syncInterval: string): Promise<void> {
  await applyYaml(bed, JSON.stringify(publisher(bed, { name: SINGLE, prefix: ISSUER_PREFIX, syncInterval })));
}

export interface NoopResult {
  syncs: number;
  /** GETs of the two issuer documents per sync: what a sync asks of its source API server. */
  sourceRequests: number;
  /** Every request the operator made to the API server per sync, its own calls included. */
  allApiserverRequests: number;
  secretReads: number;
  /** The operator's own requests per sync by kind (see RequestKind), the source's excluded. */
  operatorRequests: Record<string, number>;
  storageReads: number;
  storageWrites: number;
  /** VmRSS of the same process once it ran `idleAfterS` seconds. */
  rssIdleMb: number;
  /** Its anonymous part (RssAnon): heaps and stacks, without the mapped pages of the node binary. */
  rssIdleAnonMb: number;
  idleAfterS: number;
}

/**
 * Runs the operator through a counting proxy with one publisher at syncInterval 10s, lets it
 * settle, then counts the requests of `syncs` unchanged syncs at the servers.
 */
export async function measureNoop(ctx: OperatorContext, syncs: number, idleMs: number): Promise<NoopResult> {
  const { bed, kubeconfig, entry, nodeArgs, progress } = ctx;
  const pki = join(bed.dir, 'pki');
  const proxy = await CountingProxy.start(bed.apiserverURL, {
    cert: readFileSync(join(pki, 'serving.crt')),
    key: readFileSync(join(pki, 'serving.key')),
    ca: bed.ca,
  });
  const viaProxy = kubeconfigFor(kubeconfig, proxy.url, 'operator-via-proxy', bed);
  const op = await BenchOperator.launch(bed, viaProxy, { entry, nodeArgs });
  try {
    await op.waitReady();
    const isSync = isSyncOf(SINGLE);
    // Settle: the first sync publishes, adding the finalizer wakes a second; wait for an unchanged one.
    let line = await op.waitForLog((l) => l.oidcpublisher === SINGLE && l.msg === 'up to date', 90_000);
    progress(
      `noop: first unchanged sync ${((line.at - op.spawnedAt) / 1000).toFixed(1)} s after the start; before it: ${op.logs
        .filter((l) => l.oidcpublisher === SINGLE && l.at < line.at)
        .map((l) => `${((l.at - op.spawnedAt) / 1000).toFixed(1)}s ${l.msg}`)
        .join('; ')}`,
    );
    let index = op.logs.indexOf(line) + 1;
    const proxyBefore = proxy.counts();
    const s3Before = await bed.s3RequestCounts();
    for (let i = 0; i < syncs; i++) {
      line = await op.waitForLog(isSync, 30_000, index);
      index = op.logs.indexOf(line) + 1;
      if (line.msg !== 'up to date')
        throw new Error(`sync ${i + 1} of ${syncs} wrote objects: ${JSON.stringify(line)}`);
      progress(`noop sync ${i + 1}/${syncs}`);
    }
    const proxyDelta = countDelta(proxyBefore, proxy.counts());
    const s3Delta = countDelta(s3Before, await bed.s3RequestCounts());
    const per = (n: number) => n / syncs;
    const sum = (m: Map<string, number>, keys?: string[]) =>
      [...m].filter(([k]) => !keys || keys.includes(k)).reduce((a, [, v]) => a + v, 0);
    const api = sum(proxyDelta);
    const source = proxyDelta.get('source') ?? 0;
    const secret = proxyDelta.get('secret') ?? 0;
    const waitIdle = op.spawnedAt + idleMs - Date.now();
    if (waitIdle > 0) {
      progress(`waiting ${Math.round(waitIdle / 1000)} s for the idle RSS`);
      await sleep(waitIdle);
    }
    return {
      syncs,
      sourceRequests: per(source),
      allApiserverRequests: per(api),
      secretReads: per(secret),
      operatorRequests: Object.fromEntries(
        [...proxyDelta].filter(([k, v]) => k !== 'source' && v > 0).map(([k, v]) => [k, per(v)]),
      ),
      storageReads: per(sum(s3Delta, ['GetObject', 'HeadObject'])),
      storageWrites: per(sum(s3Delta, ['PutObject', 'CopyObject', 'DeleteObject', 'DeleteObjects'])),
      rssIdleMb: procMemoryMb(op.pid),
      rssIdleAnonMb: procMemoryMb(op.pid, 'RssAnon'),
      idleAfterS: (Date.now() - op.spawnedAt) / 1000,
    };
  } finally {
    await op.stop();
    await proxy.close();
  }
}

export interface ColdStartResult {
  /** Spawn to /readyz 200, per run. */
  readyMs: number[];
  /** Spawn to the end of the first sync of the existing publisher, per run. */
  firstSyncMs: number[];
}

export async function measureColdStart(
  ctx: OperatorContext,
  runs: number,
  profile: string[] = [],
): Promise<ColdStartResult> {
  const { bed, kubeconfig, entry, nodeArgs } = ctx;
  const readyMs: number[] = [];
  const firstSyncMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const op = await BenchOperator.launch(bed, kubeconfig, { entry, nodeArgs: [...nodeArgs, ...profile] });
    try {
      readyMs.push(await op.waitReady(60_000, 5));
      const first = await op.waitForLog(isSyncOf(SINGLE), 60_000);
      firstSyncMs.push(first.at - op.spawnedAt);
    } finally {
      await op.stop();
    }
  }
  return { readyMs, firstSyncMs };
}

async function jwksKids(url: string, opts: Parameters<typeof request>[1]): Promise<string[]> {
  const res = await request(url, { ...opts, timeoutMs: 2000 });
  if (res.status !== 200) return [];
  return ((res.json() as { keys?: { kid?: string }[] }).keys ?? []).map((k) => k.kid ?? '');
}

export interface RotationResult {
  samplesMs: number[];
  /** Per rotation, what the operator logged for the publisher until the key was public. */
  timelines: string[];
}

/**
 * Rotates the API server's signing key `rotations` times (a restart with a new key) and
 * measures, each time, from the moment the API server serves the new key to the moment an
 * anonymous reader of the published JWKS sees it.
 */
export async function measureRotation(
  ctx: OperatorContext,
  rotations: number,
  syncIntervalMs: number,
): Promise<RotationResult> {
  const { bed, kubeconfig, entry, nodeArgs, progress } = ctx;
  const op = await BenchOperator.launch(bed, kubeconfig, { entry, nodeArgs });
  const admin = {
    ca: bed.ca,
    cert: readFileSync(bed.state.admin.cert),
    key: readFileSync(bed.state.admin.key),
  };
  const publicJwks = `${bed.issuer}/openid/v1/jwks`;
  const samplesMs: number[] = [];
  const timelines: string[] = [];
  try {
    await op.waitReady();
    await op.waitForLog(isSyncOf(SINGLE), 60_000);
    for (let r = 0; r < rotations; r++) {
      // A random phase against the sync schedule.
      await sleep(Math.random() * syncIntervalMs);
      const restartAt = Date.now();
      const fromLog = op.logs.length;
      await bed.restartApiserver({ rotate: true });
      const kid = bed.signingKey.kid;
      while (
        !(await jwksKids(`${bed.apiserverURL}/openid/v1/jwks`, admin).catch((): string[] => [])).includes(kid)
      ) {
        await sleep(10);
      }
      const served = performance.now();
      const servedAt = Date.now();
      const deadline = served + 5 * syncIntervalMs + 60_000;
      while (!(await jwksKids(publicJwks, { ca: bed.ca }).catch((): string[] => [])).includes(kid)) {
        if (performance.now() > deadline) throw new Error(`key ${kid} not published in time:\n${op.tail()}`);
        await sleep(20);
      }
      const ms = performance.now() - served;
      samplesMs.push(ms);
      const events = op.logs
        .slice(fromLog)
        .filter(
          (l: LogLine) => l.oidcpublisher === SINGLE || /watch|informer|API server is back/i.test(l.msg),
        )
        .map(
          (l) => `${((l.at - servedAt) / 1000).toFixed(2)}s ${l.msg}${l.code ? ` (${String(l.code)})` : ''}`,
        );
      timelines.push(
        `rotation ${r + 1}: apiserver down for ${((servedAt - restartAt) / 1000).toFixed(1)} s, published ${Math.round(ms)} ms after it served the key; log (s after served): ${events.join('; ')}`,
      );
      progress(timelines.at(-1) ?? '');
    }
  } finally {
    await op.stop();
  }
  return { samplesMs, timelines };
}

/** Deletes the single publisher with an operator running (its finalizer), leaving its objects (Retain). */
export async function deleteSinglePublisher(ctx: OperatorContext): Promise<void> {
  const { bed, kubeconfig, entry, nodeArgs } = ctx;
  const op = await BenchOperator.launch(bed, kubeconfig, { entry, nodeArgs });
  try {
    await op.waitReady();
    await bed.kubectl(['delete', 'oidcpublisher', SINGLE, '--timeout=60s']);
  } finally {
    await op.stop();
  }
}

export interface FleetResult {
  publishers: number;
  syncInterval: string;
  sources: number;
  concurrency: number;
  readyS: number;
  rssMb: number;
  peakRssMb: number;
  cpuSecondsPerMin: number;
  syncsPerMin: number;
  cpuMsPerSync: number;
  windowS: number;
}

interface PublisherList {
  items: {
    metadata: { generation?: number };
    status?: { conditions?: { type: string; status: string; observedGeneration?: number }[] };
  }[];
}

async function countReady(bed: Bed, admin: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<number> {
  const res = await request(`${bed.apiserverURL}/apis/oidcpublisher.io/v1alpha1/oidcpublishers`, {
    ...admin,
    timeoutMs: 10_000,
  });
  if (res.status !== 200) return 0;
  return (res.json() as PublisherList).items.filter((p) =>
    p.status?.conditions?.some(
      (c) => c.type === 'Ready' && c.status === 'True' && c.observedGeneration === p.metadata.generation,
    ),
  ).length;
}

/**
 * `count` publishers (distinct prefixes, sources spread over three kubeconfig
 * Secrets) created while no operator runs; then an operator starts and the clock runs until all
 * are Ready. Then CPU and memory at steady state over `windowMs`.
 */
export async function measureFleet(
  ctx: OperatorContext,
  opts: {
    count: number;
    concurrency: number;
    syncInterval: string;
    windowMs: number;
    settleMs: number;
    /** Extra Node flags for this process, e.g. --cpu-prof. */
    profile?: string[];
  },
): Promise<FleetResult> {
  const { bed, kubeconfig, entry, nodeArgs, progress } = ctx;
  const sources = await sourceSecrets(bed, 3);
  const items = Array.from({ length: opts.count }, (_, i) => {
    const name = `fleet-${String(i).padStart(3, '0')}`;
    return publisher(bed, {
      name,
      // One of them keeps the bed's issuer URL served, which every publisher reads back.
      prefix: i === 0 ? ISSUER_PREFIX : `fleet/${name}`,
      syncInterval: opts.syncInterval,
      sourceSecret: sources[i % sources.length] ?? '',
    });
  });
  const created = performance.now();
  await bed.kubectl(['create', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }),
  });
  progress(`created ${opts.count} publishers in ${((performance.now() - created) / 1000).toFixed(1)} s`);
  const admin = {
    ca: bed.ca,
    cert: readFileSync(bed.state.admin.cert),
    key: readFileSync(bed.state.admin.key),
  };
  const op = await BenchOperator.launch(bed, kubeconfig, {
    entry,
    args: ['--concurrency', String(opts.concurrency), '--log-level', 'info'],
    nodeArgs: [...nodeArgs, ...(opts.profile ?? [])],
  });
  try {
    let ready = 0;
    const deadline = performance.now() + 600_000;
    while (ready < opts.count) {
      if (performance.now() > deadline)
        throw new Error(`only ${ready} of ${opts.count} Ready:\n${op.tail()}`);
      if (op.child.exitCode !== null) throw new Error(`the operator exited:\n${op.tail()}`);
      await sleep(250);
      ready = await countReady(bed, admin).catch(() => ready);
    }
    const readyS = (performance.now() - op.spawnedPerf) / 1000;
    progress(`${opts.count} publishers Ready ${readyS.toFixed(1)} s after the operator started`);
    await sleep(opts.settleMs);
    const cpu0 = procCpuSeconds(op.pid);
    const syncs0 = metricSum(await op.metrics(), 'oidc_publisher_reconcile_total');
    const t0 = performance.now();
    progress(`steady state: measuring CPU for ${Math.round(opts.windowMs / 1000)} s`);
    await sleep(opts.windowMs);
    const cpu1 = procCpuSeconds(op.pid);
    const syncs1 = metricSum(await op.metrics(), 'oidc_publisher_reconcile_total');
    const minutes = (performance.now() - t0) / 60_000;
    const syncs = syncs1 - syncs0;
    return {
      publishers: opts.count,
      syncInterval: opts.syncInterval,
      sources: sources.length,
      concurrency: opts.concurrency,
      readyS,
      rssMb: procMemoryMb(op.pid),
      peakRssMb: procMemoryMb(op.pid, 'VmHWM'),
      cpuSecondsPerMin: (cpu1 - cpu0) / minutes,
      syncsPerMin: syncs / minutes,
      cpuMsPerSync: syncs > 0 ? ((cpu1 - cpu0) * 1000) / syncs : Number.NaN,
      windowS: minutes * 60,
    };
  } finally {
    await op.stop();
  }
}
