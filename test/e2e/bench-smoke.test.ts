/**
 * `npm run bench -- --quick --json` runs end to end (its own bed, every
 * measurement, few iterations) and prints one JSON object with every figure
 * docs/performance.md describes. No timing is asserted: this proves that the
 * benchmark still works, not how fast the operator is.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ROOT } from './harness.ts';

const execFileAsync = promisify(execFile);

/** Every figure of the JSON, as a dotted path to a number. */
const FIGURES = [
  'publish_ms.p50',
  'publish_ms.p95',
  'floor_ms.p50',
  'floor_ms.p95',
  'publish_floor_ratio',
  'noop_sync.apiserver_requests',
  'noop_sync.all_apiserver_requests',
  'noop_sync.secret_reads',
  'noop_sync.storage_reads',
  'noop_sync.storage_writes',
  'rotation_propagation_ms.p50',
  'rotation_propagation_ms.p100',
  'cold_start_ms.p50',
  'cold_start_ms.max',
  'first_sync_ms.p50',
  'rss_idle_mb',
  'rss_idle_anon_mb',
  'fleet.publishers',
  'fleet.ready_s',
  'fleet.rss_mb',
  'fleet.cpu_s_per_min',
  'fleet.syncs_per_min',
  'fleet.cpu_ms_per_sync',
  'serve.rps',
  'serve.p99_ms',
  'serve.apiserver_rps',
  'serve.apiserver_p99_ms',
] as const;

function at(o: unknown, path: string): unknown {
  let v = o;
  for (const k of path.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
  return v;
}

/** The dotted paths of every number in `o` that is not finite. */
function notFinite(o: unknown, path = ''): string[] {
  if (typeof o === 'number') return Number.isFinite(o) ? [] : [path];
  if (o === null) return [path];
  if (typeof o !== 'object') return [];
  return Object.entries(o as Record<string, unknown>).flatMap(([k, v]) =>
    notFinite(v, path ? `${path}.${k}` : k),
  );
}

describe('npm run bench -- --quick --json', () => {
  it('prints one JSON object with every figure, all finite', { timeout: 900_000 }, async () => {
    const { stdout, stderr } = await execFileAsync(
      process.execPath,
      [join(ROOT, 'bench', 'run.ts'), '--quick', '--json'],
      { cwd: ROOT, timeout: 900_000, maxBuffer: 64 * 1024 * 1024 },
    );
    const lines = stdout.trim().split('\n');
    assert.equal(lines.length, 1, `--json prints only the JSON object; stdout:\n${stdout}`);
    let result: unknown;
    assert.doesNotThrow(
      () => {
        result = JSON.parse(lines[0] ?? '');
      },
      `the last line is JSON; stderr:\n${stderr.slice(-2000)}`,
    );
    assert.equal(at(result, 'quick'), true);
    assert.equal(typeof at(result, 'node'), 'string');
    assert.equal(typeof at(result, 'cpu'), 'string');
    // Without a serve mode in src/main.ts the benchmark says so instead of measuring it.
    const noServe = at(result, 'serve') === 'not measured (no serve mode)';
    const missing = FIGURES.filter(
      (f) => !(noServe && f.startsWith('serve.')) && typeof at(result, f) !== 'number',
    );
    assert.deepEqual(missing, [], `figures missing from ${lines[0]}`);
    assert.deepEqual(notFinite(result), [], `figures that are not finite numbers in ${lines[0]}`);
  });
});
