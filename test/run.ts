/**
 * npm test: type-check, lint, build the bed's servers if they are not cached,
 * start one shared bed, and run every suite with node:test against it.
 *
 *   npm test                          everything but the fault scenarios
 *   npm test -- test/unit             only the files under these paths or globs
 *   npm run test:faults               the fault scenarios (test/faults): long, each on a bed of its own
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bed, bedCa } from './bed/bed.ts';
import { ensureTools } from './bed/tools.ts';

const root = join(import.meta.dirname, '..');
const selected = process.argv.slice(2);
const suites = selected.length
  ? selected.map((s) => (s.endsWith('.ts') ? s : `${s.replace(/\/$/, '')}/**/*.test.ts`))
  : ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'];

function step(name: string, command: string, args: string[]): void {
  const started = Date.now();
  const res = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (res.status !== 0) {
    console.error(`\n${name} failed (${command} ${args.join(' ')})`);
    process.exit(res.status ?? 1);
  }
  console.log(`${name}: ok (${((Date.now() - started) / 1000).toFixed(1)}s)`);
}

const bin = join(root, 'node_modules', '.bin');
if (selected.length === 0) {
  step('typecheck', join(bin, 'tsc'), ['--noEmit', '-p', root]);
  step('lint', join(bin, 'biome'), ['check', '.']);
  step('API types match the CRD', process.execPath, [join(root, 'scripts', 'gen-api-types.ts'), '--check']);
}

// Fault scenarios stop and start servers, so each brings a bed of its own: no shared bed for them.
const needsBed = suites.some((s) => !s.startsWith('test/unit') && !s.startsWith('test/faults'));
let bed: Bed | undefined;
// Every bed of this run shares one CA, so the test processes trust them all.
const caDir = mkdtempSync(join(tmpdir(), 'oidc-bed-ca-'));
const env: NodeJS.ProcessEnv = {
  ...process.env,
  OIDC_BED_CA_DIR: caDir,
  NODE_EXTRA_CA_CERTS: bedCa(caDir).cert,
};
if (needsBed) {
  const t0 = Date.now();
  ensureTools(['kube', 'etcd', 'minio', 'fake-gcs-server', 'helm']);
  const t1 = Date.now();
  bed = await Bed.start({ caDir });
  console.log(
    `test bed: tools ready in ${((t1 - t0) / 1000).toFixed(1)}s, bed up in ${((Date.now() - t1) / 1000).toFixed(1)}s (${bed.dir})`,
  );
  env.OIDC_BED_STATE = bed.env().OIDC_BED_STATE;
}

const stopBed = async () => {
  await bed?.stop();
  bed = undefined;
  rmSync(caDir, { recursive: true, force: true });
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void stopBed().then(() => process.exit(130));
  });
}

const code = await new Promise<number>((resolve) => {
  const child = spawn(
    process.execPath,
    ['--test', '--test-reporter=spec', '--test-timeout=600000', '--test-concurrency=2', ...suites],
    { cwd: root, stdio: 'inherit', env },
  );
  child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0)));
});
await stopBed();
process.exitCode = code;
