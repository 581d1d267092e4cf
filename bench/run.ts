/**
 * npm run bench: performance figures of oidc-publisher against a real bed
 * (kube-apiserver + etcd + MinIO on loopback) that it starts and stops itself.
 *
 *   node bench/run.ts                 the full run (about 12 minutes)
 *   node bench/run.ts --quick         a smoke run: few iterations, 20 publishers, short windows
 *   node bench/run.ts --json          print only the JSON object
 *   node bench/run.ts --only publish,noop,rotation,coldstart,fleet,serve
 *   node bench/run.ts --fleet 500 --concurrency 4 --profile /tmp/prof
 *   node bench/run.ts --from-source   run src/cli.ts (type stripping) instead of the built JavaScript
 *   node bench/run.ts --node-args='--max-semi-space-size=2'   Node flags for the operator and serve
 *                                     processes (default: the image's, from the Dockerfile)
 *
 * A human table goes to stdout, followed by one JSON object on the last line;
 * progress goes to stderr. docs/performance.md explains every figure.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { parseArgs } from 'node:util';
import { Bed } from '../test/bed/bed.ts';
import { imageNode } from '../test/bed/image.ts';
import { ROOT } from '../test/e2e/harness.ts';
import { buildOperator } from './build.ts';
import { setUpOperator } from './fixtures.ts';
import { eagerCloudSdks, staticPackages } from './lazy.ts';
import {
  createSinglePublisher,
  deleteSinglePublisher,
  type FleetResult,
  measureColdStart,
  measureFleet,
  measureNoop,
  measureRotation,
  type NoopResult,
  type RotationResult,
} from './operator-measures.ts';
import { measurePublish, type PublishResult } from './publish.ts';
import { measureServe, type ServeResult } from './serve-measure.ts';
import { cpuModel, load, percentile, round } from './stats.ts';

const STEPS = ['publish', 'noop', 'coldstart', 'rotation', 'fleet', 'serve'] as const;
type Step = (typeof STEPS)[number];

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
    fleet: { type: 'string' },
    concurrency: { type: 'string' },
    profile: { type: 'string' },
    'from-source': { type: 'boolean', default: false },
    'node-args': { type: 'string' },
  },
  strict: true,
});
const quick = values.quick ?? false;
const only = new Set((values.only?.split(',') ?? STEPS) as Step[]);
for (const s of only)
  if (!STEPS.includes(s)) throw new Error(`--only: unknown step ${s}; one of ${STEPS.join(', ')}`);

const SYNC_INTERVAL_MS = 10_000;
const plan = quick
  ? {
      publishIterations: 10,
      noopSyncs: 2,
      idleMs: 0,
      coldStarts: 1,
      rotations: 1,
      fleet: 20,
      // A 10s interval, so that the short window sees syncs.
      fleetSyncInterval: '10s',
      fleetSettleMs: 2_000,
      fleetWindowMs: 20_000,
      serveMs: 2_000,
    }
  : {
      publishIterations: 100,
      noopSyncs: 6,
      idleMs: 60_000,
      coldStarts: 5,
      rotations: 5,
      fleet: 500,
      fleetSyncInterval: '1m',
      fleetSettleMs: 10_000,
      fleetWindowMs: 120_000,
      serveMs: 10_000,
    };
const fleetCount = values.fleet ? Number(values.fleet) : plan.fleet;
const concurrency = values.concurrency ? Number(values.concurrency) : 4;
const profileDir = values.profile;
const nodeArgs = values['node-args']?.split(' ').filter(Boolean) ?? imageNodeArgs();
if (profileDir) mkdirSync(profileDir, { recursive: true });

/** The Node flags the image runs with: its NODE_OPTIONS and those between "node" and the script in its ENTRYPOINT. */
function imageNodeArgs(): string[] {
  const { nodeOptions, entrypointFlags } = imageNode(ROOT);
  return [...nodeOptions, ...entrypointFlags];
}

const started = Date.now();
const progress = (message: string) =>
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${message}\n`);

interface Results {
  publish?: PublishResult;
  noop?: NoopResult;
  coldStart?: { readyMs: number[]; firstSyncMs: number[] };
  rotation?: RotationResult;
  fleet?: FleetResult;
  serve?: ServeResult | 'not measured (no serve mode)';
}

const loadStart = load();
progress(`load average ${loadStart.join(' ')}; building the operator`);
const entry = values['from-source'] ? join(ROOT, 'src', 'cli.ts') : buildOperator();
progress(`operator: ${entry}; starting the bed`);
const bed = await Bed.start({ gcs: false });
// The S3 store in this process trusts the bed's CA like the operator does through NODE_EXTRA_CA_CERTS.
setDefaultCACertificates([...getCACertificates('default'), bed.ca.toString('utf8')]);
const stopBed = async () => bed.stop();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void stopBed().finally(() => process.exit(130));
  });
}

const r: Results = {};
try {
  progress(`bed up (${bed.dir})`);
  const kubeconfig = await setUpOperator(bed);
  const ctx = { bed, kubeconfig, entry, nodeArgs, progress };

  if (only.has('publish')) {
    progress(`publish: ${plan.publishIterations} iterations, interleaved with the floor`);
    r.publish = await measurePublish(bed, plan.publishIterations);
  }
  const needSingle = only.has('noop') || only.has('coldstart') || only.has('rotation');
  if (needSingle) await createSinglePublisher(bed, `${SYNC_INTERVAL_MS / 1000}s`);
  if (only.has('noop')) {
    progress(`noop: ${plan.noopSyncs} unchanged syncs at syncInterval ${SYNC_INTERVAL_MS / 1000}s`);
    r.noop = await measureNoop(ctx, plan.noopSyncs, plan.idleMs);
  }
  if (only.has('coldstart')) {
    progress(`cold start: ${plan.coldStarts} runs`);
    r.coldStart = await measureColdStart(
      ctx,
      plan.coldStarts,
      profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [],
    );
  }
  if (only.has('rotation')) {
    progress(`rotation: ${plan.rotations} key rotations`);
    r.rotation = await measureRotation(ctx, plan.rotations, SYNC_INTERVAL_MS);
  }
  if (needSingle) await deleteSinglePublisher(ctx);
  if (only.has('fleet')) {
    progress(`fleet: ${fleetCount} publishers, --concurrency ${concurrency}`);
    r.fleet = await measureFleet(ctx, {
      count: fleetCount,
      concurrency,
      syncInterval: plan.fleetSyncInterval,
      windowMs: plan.fleetWindowMs,
      settleMs: plan.fleetSettleMs,
      ...(profileDir ? { profile: ['--cpu-prof', '--cpu-prof-dir', profileDir] } : {}),
    });
  }
  if (only.has('serve')) {
    const hasServe = /first === 'serve'/.test(readFileSync(join(ROOT, 'src', 'main.ts'), 'utf8'));
    if (!hasServe) {
      r.serve = 'not measured (no serve mode)';
    } else {
      progress('serve: keep-alive load on the JWKS, then on the API server for reference');
      await bed.serviceAccountKubeconfig('issuer-readers', 'serve-reference');
      await bed.kubectl([
        'create',
        'clusterrolebinding',
        'issuer-reader-serve-reference',
        '--clusterrole=system:service-account-issuer-discovery',
        '--serviceaccount=issuer-readers:serve-reference',
      ]);
      const token = await bed.mintToken({ namespace: 'issuer-readers', serviceAccount: 'serve-reference' });
      r.serve = await measureServe(bed, entry, nodeArgs, token, {
        connections: 16,
        durationMs: plan.serveMs,
      });
    }
  }
} finally {
  progress('stopping the bed');
  await stopBed();
}

const loadEnd = load();
const p = (values: number[] | undefined, q: number) => round(percentile(values ?? [], q), 1);
const out: Record<string, unknown> = {
  date: new Date(started).toISOString(),
  node: process.version,
  cpu: cpuModel(),
  cores: (await import('node:os')).availableParallelism(),
  quick,
  operator: `${values['from-source'] ? 'src/cli.ts' : 'built JavaScript (tsconfig.build.json)'}${nodeArgs.length ? ` with ${nodeArgs.join(' ')}` : ''}`,
  load_start: loadStart,
  load_end: loadEnd,
  duration_s: round((Date.now() - started) / 1000, 0),
  packages_at_start: staticPackages(entry),
  cloud_sdks_at_start: eagerCloudSdks(entry),
};
if (r.publish) {
  out.publish_ms = { p50: round(r.publish.publish.p50), p95: round(r.publish.publish.p95) };
  out.floor_ms = { p50: round(r.publish.floor.p50), p95: round(r.publish.floor.p95) };
  out.publish_floor_ratio = round(r.publish.ratio, 2);
  out.publish_iterations = r.publish.iterations;
}
if (r.noop) {
  out.noop_sync = {
    syncs: r.noop.syncs,
    // The goal's figure: GETs of the two nonResourceURLs.
    apiserver_requests: round(r.noop.sourceRequests, 2),
    all_apiserver_requests: round(r.noop.allApiserverRequests, 2),
    secret_reads: round(r.noop.secretReads, 2),
    operator_requests: Object.fromEntries(
      Object.entries(r.noop.operatorRequests).map(([k, v]) => [k, round(v, 2)]),
    ),
    storage_reads: round(r.noop.storageReads, 2),
    storage_writes: round(r.noop.storageWrites, 2),
  };
  out.rss_idle_mb = round(r.noop.rssIdleMb);
  out.rss_idle_anon_mb = round(r.noop.rssIdleAnonMb);
  out.rss_idle_after_s = round(r.noop.idleAfterS, 0);
}
if (r.rotation) {
  out.rotation_propagation_ms = {
    p50: p(r.rotation.samplesMs, 50),
    p100: p(r.rotation.samplesMs, 100),
    samples: r.rotation.samplesMs.map((s) => round(s, 0)),
    sync_interval_ms: SYNC_INTERVAL_MS,
  };
}
if (r.coldStart) {
  out.cold_start_ms = { p50: p(r.coldStart.readyMs, 50), max: p(r.coldStart.readyMs, 100) };
  out.first_sync_ms = { p50: p(r.coldStart.firstSyncMs, 50), max: p(r.coldStart.firstSyncMs, 100) };
}
if (r.fleet) {
  const f = r.fleet;
  out.fleet = {
    publishers: f.publishers,
    sync_interval: f.syncInterval,
    sources: f.sources,
    concurrency: f.concurrency,
    ready_s: round(f.readyS),
    rss_mb: round(f.rssMb),
    peak_rss_mb: round(f.peakRssMb),
    cpu_s_per_min: round(f.cpuSecondsPerMin, 2),
    syncs_per_min: round(f.syncsPerMin, 0),
    cpu_ms_per_sync: round(f.cpuMsPerSync, 1),
    window_s: round(f.windowS, 0),
  };
}
if (r.serve === 'not measured (no serve mode)') {
  out.serve = r.serve;
} else if (r.serve) {
  const s = r.serve;
  out.serve = {
    rps: round(s.serve.rps, 0),
    p50_ms: round(s.serve.p50, 2),
    p99_ms: round(s.serve.p99, 2),
    errors: s.serve.errors,
    apiserver_rps: round(s.apiserver.rps, 0),
    apiserver_p50_ms: round(s.apiserver.p50, 2),
    apiserver_p99_ms: round(s.apiserver.p99, 2),
    apiserver_errors: s.apiserver.errors,
    connections: s.connections,
    duration_s: s.durationS,
  };
}

if (!values.json) process.stdout.write(table(out));
process.stdout.write(`${JSON.stringify(out)}\n`);

function table(o: Record<string, unknown>): string {
  type Row = [figure: string, value: string, goal: string, ok: boolean | undefined];
  const rows: Row[] = [];
  const get = (path: string): number => {
    let v: unknown = o;
    for (const k of path.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
    return typeof v === 'number' ? v : Number.NaN;
  };
  const row = (figure: string, path: string, unit: string, goal?: number, goalText?: string) => {
    const v = get(path);
    if (Number.isNaN(v)) return;
    rows.push([
      figure,
      `${v} ${unit}`.trim(),
      goalText ?? (goal === undefined ? '' : `<= ${goal} ${unit}`.trim()),
      goal === undefined ? undefined : v <= goal,
    ]);
  };
  row('publish_ms p50', 'publish_ms.p50', 'ms');
  row('publish_ms p95', 'publish_ms.p95', 'ms');
  row('floor_ms p50', 'floor_ms.p50', 'ms');
  row('floor_ms p95', 'floor_ms.p95', 'ms');
  row('publish / floor (p50)', 'publish_floor_ratio', '', 1.3, '<= 1.3');
  row('noop sync: API server requests (issuer documents)', 'noop_sync.apiserver_requests', '', 2, '<= 2');
  row('noop sync: all requests to the API server', 'noop_sync.all_apiserver_requests', '');
  const own = (o.noop_sync as { operator_requests?: Record<string, number> } | undefined)?.operator_requests;
  if (own) {
    const kinds = Object.entries(own).map(([k, v]) => `${k} ${v}`);
    rows.push(["  the operator's own, by kind", kinds.length ? kinds.join(', ') : 'none', '', undefined]);
  }
  row('noop sync: storage reads', 'noop_sync.storage_reads', '', 2, '<= 2');
  row('noop sync: storage writes', 'noop_sync.storage_writes', '', 0, '0');
  row('rotation_propagation_ms p50', 'rotation_propagation_ms.p50', 'ms');
  row('rotation_propagation_ms p100', 'rotation_propagation_ms.p100', 'ms', SYNC_INTERVAL_MS + 1000);
  row('cold_start_ms (to /readyz) p50', 'cold_start_ms.p50', 'ms');
  row('cold_start_ms (to /readyz) max', 'cold_start_ms.max', 'ms', 1500);
  row('first sync after start p50', 'first_sync_ms.p50', 'ms');
  row('rss_idle_mb', 'rss_idle_mb', 'MB', 80);
  row('  of which anonymous (RssAnon)', 'rss_idle_anon_mb', 'MB');
  row('fleet_ready_s', 'fleet.ready_s', 's', 30);
  row('rss_fleet_mb', 'fleet.rss_mb', 'MB', 200);
  row('fleet peak RSS', 'fleet.peak_rss_mb', 'MB');
  row('fleet CPU', 'fleet.cpu_s_per_min', 'CPU-s/min', 6);
  row('fleet syncs', 'fleet.syncs_per_min', '/min');
  row('fleet CPU per sync', 'fleet.cpu_ms_per_sync', 'ms');
  row('serve JWKS requests/s', 'serve.rps', '/s');
  row('serve JWKS p99', 'serve.p99_ms', 'ms');
  row('API server JWKS requests/s', 'serve.apiserver_rps', '/s');
  row('API server JWKS p99', 'serve.apiserver_p99_ms', 'ms');
  if (typeof o.serve === 'string') rows.push(['serve', o.serve, '', undefined]);
  const eager = o.cloud_sdks_at_start as string[];
  rows.push([
    'cloud SDKs loaded at start',
    eager.length ? eager.join(', ') : 'none (dynamic import)',
    'none',
    eager.length === 0,
  ]);
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => String(r[i]).length), 6));
  const line = (cells: string[]) => `${cells.map((c, i) => c.padEnd(w[i] ?? 0)).join('  ')}\n`;
  const f = o.fleet as Record<string, number | string> | undefined;
  return [
    `oidc-publisher benchmark${o.quick ? ' (quick)' : ''}: ${String(o.date)}, Node ${String(o.node)}, ${String(o.cpu)} x${String(o.cores)}\n`,
    `load average at start ${(o.load_start as number[]).join(' ')}, at end ${(o.load_end as number[]).join(' ')}\n`,
    f
      ? `fleet: ${f.publishers} publishers over ${f.sources} sources, --concurrency ${f.concurrency}, CPU over ${f.window_s} s\n`
      : '',
    '\n',
    line(['figure', 'value', 'goal', 'met']),
    ...rows.map(([a, b, c, ok]) => line([a, b, c, ok === undefined ? '' : ok ? 'yes' : 'NO'])),
    '\n',
  ].join('');
}
